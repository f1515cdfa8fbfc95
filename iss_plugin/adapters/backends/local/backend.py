"""The embedded local content backend (docs/architecture.md §7, "local").

- Files: content-addressed under <store_root>/sha256/ab/cdef... (blobs.BlobStore).
- Versions: in the caller's SQLAlchemy session (the Store* tables). A version is a set of
  packages by sha256; membership rows carry Pulp-style ranges [version_added, version_removed),
  so a new version writes only what changed. Versions are immutable.
- Metadata: each package's metadata chunks are stored when it enters the store; a version's
  metadata is generated from them (never from the files), in cached blocks (index).
- Metadata units (advisories, comps entries, modulemd documents; units.UnitCatalog) are held
  by versions like packages; a version's digest covers both (domain.content_units).
- Content types are plugins (iss_plugin.adapters.content_types); a repository names its type.

Transactions: this backend flushes but never commits; the caller's unit of work does, so an import
commits together with its content view version. Files are not transactional: when the session's
transaction rolls back, the files it stored that no committed row references are deleted
(session events; `discard_new_blobs()` does the same by hand). `remove_orphan_blobs()` is the
store-wide garbage collection for anything a crash left behind.

Costs follow the change: a version's ordered checksum list is cached under its set digest
(index.SetCache), so adding, removing, importing and exporting query only the packages that
change (plus one row per version), never one query per package.

LocalBackend only wires its parts together, one module per reason to change: catalog (repositories
and versions), ingest (files in), versions (making a version), importing, sync, trees (writing a
yum tree), export, publish, housekeeping (the files' garbage collection).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import event
from sqlalchemy.orm import Session

from iss_plugin.adapters.backends.base import ExportedTree, ImportExpectation, VersionChanges, VersionInfo
from iss_plugin.adapters.backends.local.blobs import BlobStore
from iss_plugin.adapters.backends.local.catalog import Catalog
from iss_plugin.adapters.backends.local.export import Exporter
from iss_plugin.adapters.backends.local.housekeeping import BlobHousekeeper
from iss_plugin.adapters.backends.local.importing import Importer
from iss_plugin.adapters.backends.local.index import REPODATA_CACHE, BlockCache, SetCache
from iss_plugin.adapters.backends.local.ingest import Ingester
from iss_plugin.adapters.backends.local.publish import Publisher
from iss_plugin.adapters.backends.local.trees import TreeWriter
from iss_plugin.adapters.backends.local.units import UnitCatalog
from iss_plugin.adapters.backends.local.versions import VersionWriter
from iss_plugin.adapters.content_types import DEFAULT
from iss_plugin.adapters.disk_faults import disk_faults
from iss_plugin.domain.content_units import MetadataUnit
from iss_plugin.domain.packages import Package

if TYPE_CHECKING:
    from iss_plugin.adapters.backends.local.sync import SyncReport


class LocalBackend:
    """ContentBackend over a content-addressed directory and the caller's database session."""

    name = "local"

    def __init__(
        self,
        session: Session,
        store_root: Path | str,
        published_root: Path | str,
        *,
        hardlink_exports: bool = True,
        download_workers: int = 4,
    ):
        self.session = session
        self.store_root = Path(store_root)
        self.published_root = Path(published_root)
        self.blobs = BlobStore(self.store_root)
        self.index_cache = BlockCache(self.store_root / "index-cache" / "blocks")
        self.sets = SetCache(self.store_root / "index-cache" / "sets")
        self.hardlink_exports = hardlink_exports
        self.download_workers = max(1, download_workers)
        self.new_blobs: set[str] = set()  # blobs created in the session's current transaction
        self.last_sync: SyncReport | None = None

        self._catalog = Catalog(session, self.sets)
        self._units = UnitCatalog(session)
        ingester = Ingester(session, self.blobs, self._catalog, self.new_blobs)
        versions = VersionWriter(session, self.sets, self._catalog)
        trees = TreeWriter(session, self.blobs, self.index_cache, self._catalog)
        self._importer = Importer(self._catalog, ingester, versions)
        self._ingester, self._versions = ingester, versions
        self._exporter = Exporter(
            self._catalog, trees, self.blobs, hardlink=hardlink_exports, repodata_root=self.store_root / REPODATA_CACHE
        )
        self._publisher = Publisher(self._catalog, trees, self.blobs, self.published_root)
        self._housekeeper = BlobHousekeeper(self.blobs, self._catalog, self.new_blobs, self.sets, self.index_cache)
        # Files are not transactional: forget them on commit, delete the unreferenced ones on rollback.
        event.listen(session, "after_commit", self._housekeeper.after_commit)
        event.listen(session, "after_rollback", self._housekeeper.after_rollback)

    def incoming_dir(self) -> Path:
        """ReceivesInStore: streamed bundles are extracted in <store>/incoming (not <store>/tmp, whose
        stale files housekeeping removes one by one), so their files enter the store by rename."""
        incoming = self.store_root / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        return incoming

    # === repositories and versions ==============================================================
    def ensure_repository(self, repo: str, content_type: str = DEFAULT) -> None:
        self._catalog.ensure_repository(repo, content_type)

    def latest_version(self, repo: str) -> int:
        return self._catalog.latest_version(repo)

    def list_versions(self, repo: str) -> list[VersionInfo]:
        return self._catalog.list_versions(repo)

    def version_info(self, repo: str, version: int) -> VersionInfo:
        return self._catalog.version_info(repo, version)

    def version_changes(self, repo: str, base_version: int | None, version: int) -> VersionChanges:
        return self._catalog.version_changes(repo, base_version, version)

    def list_packages(self, repo: str, version: int) -> list[Package]:
        return self._catalog.list_packages(repo, version)

    def list_units(self, repo: str, version: int) -> list[MetadataUnit]:
        r = self._catalog.repo(repo)
        self._catalog.version_row(r, version)
        return self._units.list_units(r.id, version)

    # === changing content ========================================================================
    def add_packages(self, repo: str, files: Sequence[Path]) -> int:
        with self._disk(f"storing packages in '{repo}'"):
            return self._importer.add_packages(repo, files)

    def remove_packages(self, repo: str, sha256s: Iterable[str]) -> int:
        return self._importer.remove_packages(repo, sha256s)

    def add_units(self, repo: str, units: Sequence[MetadataUnit]) -> int:
        with self._disk(f"storing metadata units in '{repo}'"):
            return self._importer.add_units(repo, units)

    def sync(self, repo: str, url: str, *, mirror: bool = True) -> int:
        # imported here: the syncer's HTTP client (httpx) is a few MiB a server streaming bundles
        # does not need (issue 12's bound on the source's RSS)
        from iss_plugin.adapters.backends.local.sync import Syncer

        syncer = Syncer(self._catalog, self._ingester, self._versions, self.blobs, self.download_workers)
        with self._disk(f"syncing '{repo}' from {url}"):
            self.last_sync = syncer.sync(repo, url, mirror=mirror)
        return self.last_sync.version

    def import_tree(self, repo: str, tree: Path, expect: ImportExpectation, *, take_files: bool = False) -> int:
        with self._disk(f"importing into '{repo}'"):
            return self._importer.import_tree(repo, tree, expect, take_files=take_files)

    # === export and publication ==================================================================
    def export_version(self, repo: str, version: int, base_version: int | None, dest: Path) -> ExportedTree:
        return self._exporter.export_version(repo, version, base_version, dest)

    def export_version_by_reference(
        self,
        repo: str,
        version: int,
        base_version: int | None,
        dest: Path,
        *,
        added: Sequence[Package] | None = None,
        relative_to: Path | None = None,
    ) -> ExportedTree:
        return self._exporter.export_version_by_reference(
            repo, version, base_version, dest, added=added, relative_to=relative_to
        )

    def publish(self, repo: str, version: int) -> str:
        with self._disk(f"publishing '{repo}' version {version}"):
            return self._publisher.publish(repo, version)

    def _disk(self, doing: str) -> AbstractContextManager[None]:
        """A full, read-only or failing disk under the store or the publications: a BackendError
        saying so (adapters.disk_faults); the caller's rollback removes the files stored meanwhile."""
        return disk_faults(self.store_root, self.published_root, doing=doing)

    # === store maintenance ========================================================================
    def remove_unreferenced_blobs(self, sha256s: Iterable[str]) -> int:
        return self._housekeeper.remove_unreferenced_blobs(sha256s)

    def discard_new_blobs(self) -> int:
        return self._housekeeper.discard_new_blobs()

    def remove_orphan_blobs(self, min_age_seconds: float = 3600) -> int:
        return self._housekeeper.remove_orphan_blobs(min_age_seconds)

    def prune_index_cache(self, older_than_seconds: float = 7 * 86400) -> int:
        return self._housekeeper.prune_index_cache(older_than_seconds)
