"""Making a new version of a repository in the local store: the latest version - removed + added,
written as membership ranges (only what changed), after checking that no two packages share a file
name. Versions are immutable; nothing here commits: the caller's unit of work does."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from iss_plugin.adapters.backends.base import ImportExpectation
from iss_plugin.adapters.backends.local.catalog import Catalog
from iss_plugin.adapters.backends.local.index import SetCache, set_digest
from iss_plugin.adapters.backends.local.rows import CONTENT, C, Item, P, V, batched
from iss_plugin.adapters.backends.local.units import UnitCatalog
from iss_plugin.adapters.db.models import StoreRepository
from iss_plugin.domain.content_unit_rules import refuse_duplicate_keys
from iss_plugin.domain.content_units import MetadataUnit, units_digest, version_digest
from iss_plugin.domain.errors import BackendError, BundleIntegrityError


class VersionWriter:
    def __init__(self, session: Session, sets: SetCache, catalog: Catalog):
        self.session = session
        self.sets = sets
        self.catalog = catalog
        self.units = UnitCatalog(session)

    def commit(
        self,
        r: StoreRepository,
        current: Sequence[str],
        add: Sequence[Item],
        remove: set[str],
        *,
        expect: ImportExpectation | None = None,
        repo_key: str | None = None,
        tree: Path | None = None,
        units: Sequence[MetadataUnit] | None = None,
    ) -> int:
        """The latest version (`current`, its checksums in order) - remove + add as a new version, or
        the latest when that changes nothing. With expect, the result must have its digest and
        count, checked before anything is written. Work and queries follow the change.
        units: the metadata units the new version holds exactly (None: the latest version's)."""
        current_set = set(current)
        new_items: list[Item] = []
        seen: set[str] = set()
        for item in add:
            sha = item[1]
            if sha in seen:
                continue
            seen.add(sha)
            if sha in current_set:
                remove.discard(sha)
            else:
                new_items.append(item)
        remove = {sha for sha in remove if sha in current_set}
        shas = [sha for sha in current if sha not in remove] if remove else list(current)
        shas.extend(sha for _, sha, _ in new_items)
        package_digest = set_digest(shas)
        latest_units = self.catalog.version_row(r, r.latest_version).units_digest
        new_units = latest_units if units is None else units_digest(u.digest for u in units)
        if units is not None:
            refuse_duplicate_keys(units, f"repository '{repo_key or r.key}'")
        if expect is not None and units and package_digest == expect.target_digest:
            # The source's digest counts packages only (an older iss, or a backend that does not
            # hold units): the version is its packages, as there; the tree's units are not kept.
            units, new_units = [], None
        digest = version_digest(package_digest, new_units)
        if expect is not None and (digest != expect.target_digest or len(shas) != expect.target_count):
            raise BundleIntegrityError(
                f"importing {tree} into '{repo_key}' would make a version of {len(shas)} packages with digest "
                f"{digest}, but the bundle promises {expect.target_count} packages with digest "
                f"{expect.target_digest}; nothing was imported",
                [
                    (
                        f"base version {expect.base_version}, {len(expect.removed)} packages removed, "
                        f"{len(new_items)} packages added from the tree, "
                        f"{'no' if units is None else len(units)} metadata units in it"
                    )
                ],
                details={
                    "expected_digest": expect.target_digest,
                    "expected_count": expect.target_count,
                    "digest": digest,
                    "count": len(shas),
                },
            )
        if not new_items and not remove and new_units == latest_units:
            return r.latest_version
        self._check_locations(r, new_items, remove)
        number = r.latest_version + 1
        removed_ids = [pid for pid, _, _ in self.catalog.items(sorted(remove))]
        for batch in batched(removed_ids):
            self.session.execute(
                update(CONTENT)
                .where(C.repository_id == r.id, C.version_removed.is_(None), C.package_id.in_(batch))
                .values(version_removed=number)
            )
        for added in batched(new_items):  # not 20,000 parameter dicts (and the driver's copy) at once
            self.session.execute(
                insert(CONTENT),
                [
                    {"repository_id": r.id, "package_id": pid, "version_added": number, "version_removed": None}
                    for pid, _, _ in added
                ],
            )
        if units is not None and new_units != latest_units:
            self.units.write_version(r, number, units)
        self.session.add(
            V(
                repository_id=r.id,
                number=number,
                package_count=len(shas),
                digest=package_digest,
                units_digest=new_units,
            )
        )
        r.latest_version = number
        self.session.flush()
        self.sets.put(package_digest, shas)
        return number

    def _check_locations(self, r: StoreRepository, new_items: Sequence[Item], remove: set[str]) -> None:
        """Two different packages may not have one location (file name) in a version. Looks up only
        the new packages' locations."""
        where: dict[str, str] = {}
        problems = []
        for _, sha, loc in new_items:
            other = where.setdefault(loc, sha)
            if other != sha:
                problems.append(f"{loc}: {sha} and {other}, both being added")
        clashes: dict[int, tuple[str, str]] = {}  # other packages of the store at the same locations
        for batch in batched(list(where)):
            for pid, sha, loc in self.session.execute(select(P.id, P.sha256, P.location).where(P.location.in_(batch))):
                if where[loc] != sha and sha not in remove:
                    clashes[pid] = (sha, loc)
        for ids in batched(list(clashes)):
            for pid in self.session.scalars(
                select(C.package_id).where(C.repository_id == r.id, C.version_removed.is_(None), C.package_id.in_(ids))
            ):
                sha, loc = clashes[pid]
                problems.append(f"{loc}: {where[loc]} is being added, {sha} is in version {r.latest_version}")
        if problems:
            raise BackendError(
                f"repository '{r.key}': different packages with the same file name cannot be in one version "
                "(remove the old one first)",
                problems,
            )
