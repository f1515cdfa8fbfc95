"""Putting files into the local store: each file's header is read (its metadata chunks are kept in
its package row, so a version's metadata never needs the files), the file goes to the blob store
and its row to the session. Files new to the store are remembered in `new_blobs` until the
transaction ends (housekeeping.BlobHousekeeper deletes them again after a rollback)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, TypedDict

from sqlalchemy import Insert, insert
from sqlalchemy.orm import Session

from iss_plugin.adapters.backends.local.blobs import BlobStore
from iss_plugin.adapters.backends.local.catalog import Catalog
from iss_plugin.adapters.backends.local.rows import PACKAGES, Item, batched
from iss_plugin.adapters.content_types import ContentType, Unit
from iss_plugin.domain.errors import BackendError

# copy: the caller's files; move: a staging directory the caller gives up;
# adopt: verified temporary files of the blob store itself (downloads)
Mode = Literal["copy", "move", "adopt"]


class PackageRow(TypedDict):
    sha256: str
    name: str
    epoch: str
    version: str
    release: str
    arch: str
    size: int
    location: str
    primary_xml: str
    filelists_xml: str
    other_xml: str


class Ingester:
    def __init__(self, session: Session, blobs: BlobStore, catalog: Catalog, new_blobs: set[str]):
        self.session = session
        self.blobs = blobs
        self.catalog = catalog
        self.new_blobs = new_blobs  # shared with the backend: blobs created in the current transaction

    def ingest(self, ct: ContentType, paths: Sequence[Path | str], *, mode: Mode) -> list[Item]:
        """Read each file's header, store the file and its row; every unreadable file is reported at
        once. mode: copy (the caller's files), move (a staging dir the caller gives up). Path
        objects are made a batch at a time (thousands of them weigh MiBs)."""
        items: dict[str, Item] = {}
        problems: list[str] = []
        for batch in batched(list(paths)):
            units: list[tuple[Path, Unit]] = []
            for path in map(Path, batch):
                try:
                    units.append((path, ct.read_unit(path)))
                except BackendError as e:
                    problems.append(e.message)
            if not problems:
                for item in self.store_units(units, mode):
                    items.setdefault(item[1], item)
        if problems:
            raise BackendError(f"{len(problems)} of {len(paths)} files could not be read; nothing was added", problems)
        return list(items.values())

    def store_units(self, units: Sequence[tuple[Path, Unit]], mode: Mode) -> list[Item]:
        by_sha: dict[str, tuple[Path, Unit]] = {}
        for path, unit in units:
            by_sha.setdefault(unit.package.sha256, (path, unit))
        existing = self.catalog.package_rows(list(by_sha))
        new_rows: list[PackageRow] = []
        for sha, (path, unit) in by_sha.items():
            if self.blobs.has(sha, unit.package.size):
                if mode == "adopt":
                    path.unlink(missing_ok=True)
            else:
                existed = self.blobs.has(sha)
                if mode == "copy":
                    self.blobs.put_copy(path, sha)
                elif mode == "move":
                    self.blobs.put_move(path, sha)
                else:
                    self.blobs.adopt(path, sha)
                if not existed:
                    self.new_blobs.add(sha)
            if sha not in existing:
                new_rows.append(self._row(unit))
        if new_rows:
            self.session.execute(self._insert_ignore(), new_rows)
            existing.update(self.catalog.package_rows([row["sha256"] for row in new_rows]))
        return [(existing[sha][0], sha, existing[sha][1]) for sha in by_sha]

    @staticmethod
    def _row(unit: Unit) -> PackageRow:
        p = unit.package
        chunks = tuple(unit.chunks) + ("",) * (3 - len(unit.chunks))
        return {
            "sha256": p.sha256,
            "name": p.name,
            "epoch": p.epoch,
            "version": p.version,
            "release": p.release,
            "arch": p.arch,
            "size": p.size,
            "location": p.location,
            "primary_xml": chunks[0],
            "filelists_xml": chunks[1],
            "other_xml": chunks[2],
        }

    def _insert_ignore(self) -> Insert:
        """INSERT that skips a package row another transaction added meanwhile (unique sha256)."""
        dialect = self.session.get_bind().dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(PACKAGES).on_conflict_do_nothing(index_elements=["sha256"])
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(PACKAGES).on_conflict_do_nothing(index_elements=["sha256"])
        return insert(PACKAGES)
