"""Metadata units in the local store (advisories, comps entries, modulemd documents): stored once
by digest, held by versions through membership ranges like packages. Nothing here commits."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, Select, and_, insert, or_, select, update
from sqlalchemy.orm import Session

from iss_plugin.adapters.backends.local.rows import batched
from iss_plugin.adapters.db.models import StoreRepository
from iss_plugin.adapters.db.store_unit_models import StoreRepositoryUnit as RU
from iss_plugin.adapters.db.store_unit_models import StoreUnit as U
from iss_plugin.domain.content_units import MetadataUnit


def _unit(kind: str, key: str, digest: str, body: str, packages: str) -> MetadataUnit:
    return MetadataUnit(kind, key, digest, body, tuple(packages.split("\n")) if packages else ())


class UnitCatalog:
    def __init__(self, session: Session):
        self.session = session

    @staticmethod
    def _in_version(repo_id: int, version: int) -> ColumnElement[bool]:
        return and_(
            RU.repository_id == repo_id,
            RU.version_added <= version,
            or_(RU.version_removed.is_(None), RU.version_removed > version),
        )

    def list_units(self, repo_id: int, version: int) -> list[MetadataUnit]:
        rows = self.session.execute(
            select(U.kind, U.key, U.digest, U.body, U.packages)
            .join(RU, RU.unit_id == U.id)
            .where(self._in_version(repo_id, version))
            .order_by(U.kind, U.key, U.digest)
        ).all()
        return [_unit(*row) for row in rows]

    def _pairs(self, stmt: Select[str, int]) -> dict[str, int]:
        return dict(self.session.execute(stmt).all())

    def _ids(self, units: Sequence[MetadataUnit]) -> dict[str, int]:
        """digest -> row id, storing the units the store lacks."""
        wanted = {u.digest: u for u in units}
        ids: dict[str, int] = {}
        for batch in batched(list(wanted)):
            ids.update(self._pairs(select(U.digest, U.id).where(U.digest.in_(batch))))
        missing = [u for d, u in wanted.items() if d not in ids]
        if missing:
            self.session.execute(
                insert(U),
                [
                    {
                        "digest": u.digest,
                        "kind": u.kind,
                        "key": u.key,
                        "body": u.body,
                        "packages": "\n".join(u.packages),
                    }
                    for u in missing
                ],
            )
            for batch in batched([u.digest for u in missing]):
                ids.update(self._pairs(select(U.digest, U.id).where(U.digest.in_(batch))))
        return ids

    def write_version(self, r: StoreRepository, number: int, units: Sequence[MetadataUnit]) -> None:
        """Version `number` (about to be r's latest) holds exactly `units`: only the difference to the
        latest version's units is written."""
        current = self._pairs(
            select(U.digest, RU.id).join(RU, RU.unit_id == U.id).where(self._in_version(r.id, r.latest_version))
        )
        target = {u.digest for u in units}
        gone = [mid for digest, mid in current.items() if digest not in target]
        for batch in batched(gone):
            self.session.execute(update(RU).where(RU.id.in_(batch)).values(version_removed=number))
        new = [u for u in units if u.digest not in current]
        if new:
            ids = self._ids(new)
            self.session.execute(
                insert(RU),
                [
                    {"repository_id": r.id, "unit_id": ids[d], "version_added": number, "version_removed": None}
                    for d in sorted({u.digest for u in new})
                ],
            )
