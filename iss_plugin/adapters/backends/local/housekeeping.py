"""Housekeeping of the local store's files, which are not transactional: the blobs a rolled-back
transaction stored are deleted again (session events, or `discard_new_blobs()` by hand),
`remove_orphan_blobs()` collects whatever a crash left behind, and derived caches are pruned."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from iss_plugin.adapters.backends.local.blobs import BlobStore
from iss_plugin.adapters.backends.local.catalog import Catalog
from iss_plugin.adapters.backends.local.index import REPODATA_CACHE, BlockCache, SetCache
from iss_plugin.adapters.backends.local.rows import BATCH, P, batched

log = logging.getLogger(__name__)


class BlobHousekeeper:
    def __init__(
        self, blobs: BlobStore, catalog: Catalog, new_blobs: set[str], sets: SetCache, index_cache: BlockCache
    ):
        self.blobs = blobs
        self.catalog = catalog
        self.new_blobs = new_blobs  # shared with the backend: blobs created in the current transaction
        self.sets = sets
        self.index_cache = index_cache

    def remove_unreferenced_blobs(self, sha256s: Iterable[str]) -> int:
        """Delete the store files of these checksums that no package row (visible to this session)
        references, e.g. after a rolled-back import. Returns how many files were deleted."""
        wanted = sorted({s.lower() for s in sha256s})
        referenced = self.catalog.package_rows(wanted)
        n = sum(1 for s in wanted if s not in referenced and self.blobs.remove(s))
        self.new_blobs.difference_update(wanted)
        return n

    def after_commit(self, session: Session) -> None:
        self.new_blobs.clear()

    def after_rollback(self, session: Session) -> None:
        """The rows of the files this transaction stored are gone: delete the files no other row
        references (checked on a connection of its own; the session is mid-rollback)."""
        if session.in_nested_transaction():
            return  # a savepoint: the outer transaction may still commit rows that use these files
        shas = sorted(self.new_blobs)
        self.new_blobs.clear()
        bind = session.get_bind()
        if not shas or not isinstance(bind, Engine):
            return
        if bind.dialect.name != "sqlite":
            # With concurrent writers (PostgreSQL) another transaction may have found one of these
            # files on disk and be about to commit a row for it that this connection cannot see yet:
            # leave them to remove_orphan_blobs, whose age grace covers transactions in flight.
            return
        try:
            referenced: set[str] = set()
            with bind.connect() as conn:
                for batch in batched(shas):
                    referenced.update(conn.scalars(select(P.sha256).where(P.sha256.in_(batch))))
            for sha in shas:
                if sha not in referenced:
                    self.blobs.remove(sha)
        except Exception as e:  # never let clean-up hide the error that caused the rollback
            log.warning("could not remove %d store files after a rollback (remove_orphan_blobs will): %s", len(shas), e)

    def discard_new_blobs(self) -> int:
        """After a rollback: delete the files this backend wrote that no committed row references."""
        return self.remove_unreferenced_blobs(set(self.new_blobs))

    def remove_orphan_blobs(self, min_age_seconds: float = 3600) -> int:
        """Garbage collection over the whole store: delete files no package row references, older than
        min_age_seconds (younger ones may belong to a transaction in flight), and stale temp files."""
        now, n = time.time(), 0
        batch: list[tuple[str, Path]] = []

        def flush() -> int:
            referenced = self.catalog.package_rows([s for s, _ in batch])
            k = 0
            for sha, path in batch:
                try:
                    if sha not in referenced and now - path.stat().st_mtime >= min_age_seconds:
                        path.unlink()
                        k += 1
                except FileNotFoundError:
                    pass
            batch.clear()
            return k

        for item in self.blobs.iter_blobs():
            batch.append(item)
            if len(batch) >= BATCH:
                n += flush()
        n += flush()
        self.blobs.remove_stale_tmp(min_age_seconds)
        return n

    def prune_index_cache(self, older_than_seconds: float = 7 * 86400) -> int:
        """Delete cached version lists and metadata blocks not written for a while. They are derived
        data: whatever is still needed is rebuilt on next use. Returns how many files went."""
        cutoff, n = time.time() - older_than_seconds, 0
        for root in (self.sets.root, self.index_cache.root, self.blobs.root / REPODATA_CACHE):
            if not root.is_dir():
                continue
            for f in root.rglob("*"):
                try:
                    if f.is_file() and f.stat().st_mtime < cutoff:
                        f.unlink()
                        n += 1
                except FileNotFoundError:
                    pass
        return n
