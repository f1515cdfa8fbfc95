"""Writing a version of the local store as a yum tree: package files placed (hardlinked or copied)
from the blob store, and metadata generated from the stored chunks in cached blocks (BlockCache),
never from the files. Shared by export and publication."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from iss_plugin.adapters.backends.local.blobs import BlobStore, Placer, is_sha256
from iss_plugin.adapters.backends.local.catalog import Catalog
from iss_plugin.adapters.backends.local.index import BlockCache, partition
from iss_plugin.adapters.backends.local.rows import P, batched, safe_relpath, utc
from iss_plugin.adapters.backends.local.units import UnitCatalog
from iss_plugin.adapters.content_types import CompressedBlock, ContentType, metadata_units_of
from iss_plugin.adapters.db.models import StoreRepositoryVersion
from iss_plugin.domain.errors import BackendError
from iss_plugin.domain.manifest import FileEntry
from iss_plugin.domain.packages import Package


class TreeWriter:
    def __init__(self, session: Session, blobs: BlobStore, index_cache: BlockCache, catalog: Catalog):
        self.session = session
        self.blobs = blobs
        self.index_cache = index_cache
        self.catalog = catalog
        self.units = UnitCatalog(session)

    def place_packages(
        self, dest: Path, shas: Sequence[str], hardlink: bool, repo: str, version: int
    ) -> list[tuple[str, str, int]]:
        """Hardlink (or copy) the store files of these packages under dest at their locations."""
        problems: list[str] = []
        items = self.package_files(shas, None, repo, version)
        placed = Placer(self.blobs, hardlink).place_many(dest, items, problems)
        if problems:
            raise BackendError(f"cannot export '{repo}' version {version}: the store is damaged", problems)
        return placed

    def package_files(
        self, shas: Sequence[str], known: Sequence[Package] | None, repo: str, version: int
    ) -> list[tuple[str, str, int]]:
        """(sha256, location, size) of these packages, in the order of `shas`: from `known` when it
        holds exactly these packages, else from the database. An unsafe location is an error."""
        by_sha = {p.sha256: (p.location, p.size) for p in known} if known is not None else {}
        if len(by_sha) != len(shas) or not all(sha in by_sha for sha in shas):
            by_sha = {sha: (loc, size) for sha, (_, loc, size) in self.catalog.package_rows(shas).items()}
        items = [(sha, *by_sha[sha]) for sha in shas]
        problems = [
            f"{sha}: unsafe location {loc!r} or checksum in the store"
            for sha, loc, _ in items
            if not (safe_relpath(loc) and is_sha256(sha))
        ]
        if problems:
            raise BackendError(f"cannot export '{repo}' version {version}: the store is damaged", problems)
        return items

    def write_index(
        self, ct: ContentType, v: StoreRepositoryVersion, shas: Sequence[str], dest: Path
    ) -> list[FileEntry]:
        def blocks() -> Iterator[CompressedBlock]:
            for a, b in partition(shas):
                key = BlockCache.key(ct.format_version, shas[a:b])
                block = self.index_cache.get(key)
                if block is None:
                    chunks = self._chunks(shas[a:b])
                    block = ct.compress_block([chunks[sha] for sha in shas[a:b]])
                    self.index_cache.put(key, block)
                yield block

        ts = int(utc(v.created).timestamp())
        files = ct.write_index(dest, len(shas), blocks(), revision=str(ts), timestamp=ts)
        holder = metadata_units_of(ct)
        if holder is None or v.units_digest is None:
            return files
        units = self.units.list_units(v.repository_id, v.number)
        extra = holder.write_units(dest, units, ts)
        replaced = {f.path for f in extra}
        return [f for f in files if f.path not in replaced] + extra

    def _chunks(self, shas: Sequence[str]) -> dict[str, tuple[str, str, str]]:
        out = {}
        for batch in batched(list(shas)):
            for sha, a, b, c in self.session.execute(
                select(P.sha256, P.primary_xml, P.filelists_xml, P.other_xml).where(P.sha256.in_(batch))
            ):
                out[sha] = (a, b, c)
        return out
