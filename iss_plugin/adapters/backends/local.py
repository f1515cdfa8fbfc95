"""The embedded local content backend (DESIGN.md section 5, "local").

- Files: content-addressed under <store_root>/sha256/ab/cdef... (local_blobs.BlobStore).
- Versions: in the caller's SQLAlchemy session (the Store* tables). A version is a set of
  packages by sha256; membership rows carry Pulp-style ranges [version_added, version_removed),
  so a new version writes only what changed. Versions are immutable.
- Metadata: each package's metadata chunks are stored when it enters the store; a version's
  metadata is generated from them (never from the files), in cached blocks (local_index).
- Content types are plugins (iss_plugin.adapters.content_types); a repository names its type.

Transactions: this backend flushes but never commits; the caller's unit of work does, so an import
commits together with its content view version. Files are not transactional: when the session's
transaction rolls back, the files it stored that no committed row references are deleted
(session events; `discard_new_blobs()` does the same by hand). `remove_orphan_blobs()` is the
store-wide garbage collection for anything a crash left behind.

Costs follow the change: a version's ordered checksum list is cached under its set digest
(local_index.SetCache), so adding, removing, importing and exporting query only the packages that
change (plus one row per version), never one query per package.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import starmap
from pathlib import Path
from urllib.parse import urljoin

from sqlalchemy import Engine, and_, event, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from iss_plugin.adapters.backends.base import (
    ExportedTree,
    ImportExpectation,
    VersionChanges,
    VersionInfo,
    clear_export_dir,
    prepare_export_dir,
)
from iss_plugin.adapters.backends.local_blobs import BlobStore, Placer, is_sha256
from iss_plugin.adapters.backends.local_fetch import Fetcher
from iss_plugin.adapters.backends.local_index import BlockCache, SetCache, partition, set_digest
from iss_plugin.adapters.content_types import DEFAULT, ContentType, RemoteUnit, Unit, get_content_type
from iss_plugin.adapters.db.models import (
    StorePackage,
    StoreRepository,
    StoreRepositoryContent,
    StoreRepositoryVersion,
)
from iss_plugin.domain.errors import BackendError, BaseMismatch, BundleIntegrityError, NotFound
from iss_plugin.domain.labels import check_label
from iss_plugin.domain.manifest import FileEntry
from iss_plugin.domain.packages import Package, package_set_digest

log = logging.getLogger(__name__)

BATCH = 500  # rows per IN (...) list and per ingestion batch
PUBLISHED_VERSIONS = ".versions"
PUBLISHED_POOLS = ".pools"
POOL_STATE = ".pool-state.json"

V = StoreRepositoryVersion
_CONTENT = StoreRepositoryContent.__table__
_PACKAGES = StorePackage.__table__
# Core columns: the hot queries skip the ORM's row processing
P = _PACKAGES.c
C = _CONTENT.c

# (package id, sha256, location): a package as the version arithmetic sees it
Item = tuple[int, str, str]
_PACKAGE_COLUMNS = (P.name, P.epoch, P.version, P.release, P.arch, P.sha256, P.size, P.location)  # = Package's fields


def _by_location(p: Package) -> tuple[str, str]:
    return p.location, p.sha256


def _prefix(dest: Path, relative_to: Path | None) -> str:
    """'' or 'a/b/': how paths relative to dest start when made relative to `relative_to`."""
    if relative_to is None or Path(relative_to) == dest:
        return ""
    return dest.relative_to(relative_to).as_posix() + "/"


@dataclass(frozen=True)
class SyncReport:
    url: str
    listed: int  # packages the remote lists
    fetched: int  # package files downloaded
    fetched_bytes: int
    already_held: int  # listed packages the store had already
    version: int


def _batched(seq: Sequence, n: int = BATCH) -> Iterator[Sequence]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def _utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _check_key(key: str) -> list[str]:
    parts = key.split("/")
    for part in parts:
        check_label(part, what=f"repository key part '{part}' of '{key}'")
    return parts


def _safe_relpath(rel: str) -> bool:
    return not rel.startswith("/") and ".." not in rel.split("/") and "\\" not in rel and "\0" not in rel


def _pool_of(tree: Path) -> Path | None:
    """The package pool a publication tree's Packages symlink points into (None: a tree of its own)."""
    packages = tree / "Packages"
    return Path(os.path.realpath(packages)).parent if packages.is_symlink() else None


def _read_pool_state(pool: Path) -> dict | None:
    try:
        state = json.loads((pool / POOL_STATE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    ok = isinstance(state, dict) and isinstance(state.get("version"), int) and isinstance(state.get("pending"), list)
    return state if ok else None


def _write_pool_state(pool: Path, version: int, pending: list[str]) -> None:
    tmp = pool / f".{POOL_STATE}.{secrets.token_hex(4)}.tmp"
    tmp.write_text(json.dumps({"version": version, "pending": pending}))
    os.replace(tmp, pool / POOL_STATE)


def _same_file_or_absent(path: Path, blob: Path) -> bool:
    try:
        return os.path.samefile(path, blob)
    except FileNotFoundError:
        return True


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
        # Files are not transactional: forget them on commit, delete the unreferenced ones on rollback.
        event.listen(session, "after_commit", self._after_commit)
        event.listen(session, "after_rollback", self._after_rollback)

    # === repositories and versions ==============================================================
    def ensure_repository(self, repo: str, content_type: str = DEFAULT) -> None:
        _check_key(repo)
        get_content_type(content_type)  # an unknown type fails here, clearly
        stmt = select(StoreRepository).where(StoreRepository.key == repo)
        r = self.session.scalars(stmt).one_or_none()
        if r is None:
            try:
                with self.session.begin_nested():  # another transaction may create it meanwhile
                    r = StoreRepository(key=repo, content_type=content_type, latest_version=0)
                    self.session.add(r)
                    self.session.flush()
                    self.session.add(V(repository_id=r.id, number=0, package_count=0, digest=package_set_digest(())))
                    self.session.flush()
                return
            except IntegrityError:
                r = self.session.scalars(stmt).one_or_none()
                if r is None:
                    raise BackendError(
                        f"could not create repository '{repo}' in the local store (a concurrent change?); try again",
                        transient=True,
                    ) from None
        if r.content_type != content_type:
            raise BackendError(
                f"repository '{repo}' exists in the local store with content type '{r.content_type}', "
                f"not '{content_type}'"
            )

    def latest_version(self, repo: str) -> int:
        return self._repo(repo).latest_version

    def list_versions(self, repo: str) -> list[VersionInfo]:
        r = self._repo(repo)
        rows = self.session.execute(
            select(V.number, V.created, V.package_count, V.digest).where(V.repository_id == r.id).order_by(V.number)
        ).all()
        return [VersionInfo(n, _utc(created), count, digest) for n, created, count, digest in rows]

    def version_info(self, repo: str, version: int) -> VersionInfo:
        v = self._version_row(self._repo(repo), version)
        return VersionInfo(v.number, _utc(v.created), v.package_count, v.digest)

    def version_changes(self, repo: str, base_version: int | None, version: int) -> VersionChanges:
        """What `version` holds that `base_version` lacks (as packages) and what it dropped (sha256s),
        at the cost of the change: what an incremental export plan needs, without listing both."""
        if base_version is None:  # everything: one join, no list of thousands of checksums to bind
            return VersionChanges(self.list_packages(repo, version), [])
        r = self._repo(repo)
        shas = self._snapshot(r, version)
        base = set(self._snapshot(r, base_version))
        added = [sha for sha in shas if sha not in base]
        removed = sorted(base - set(shas))
        rows: dict[str, Package] = {}
        for batch in _batched(added):
            for row in self.session.execute(select(*_PACKAGE_COLUMNS).where(P.sha256.in_(batch))).all():
                rows[row.sha256] = Package(*row)
        return VersionChanges(sorted((rows[s] for s in added), key=_by_location), removed)

    def list_packages(self, repo: str, version: int) -> list[Package]:
        r = self._repo(repo)
        self._version_row(r, version)
        rows = self.session.execute(
            select(*_PACKAGE_COLUMNS)
            .join(_CONTENT, C.package_id == P.id)
            .where(self._in_version(r.id, version))
            .order_by(P.location, P.sha256)
        ).all()
        return list(starmap(Package, rows))

    # === changing content ========================================================================
    def add_packages(self, repo: str, files: Sequence[Path]) -> int:
        """Copy RPM files into the store (they stay the caller's: never hardlinked) and into a new
        version. Packages the latest version holds already are skipped; nothing new: same version."""
        r = self._repo(repo, lock=True)
        items = self._ingest(self._content_type(r), [Path(f) for f in files], mode="copy")
        return self._commit(r, self._snapshot(r, r.latest_version), items, set())

    def remove_packages(self, repo: str, sha256s: Iterable[str]) -> int:
        """A new version without these packages; checksums the latest version lacks are ignored."""
        r = self._repo(repo, lock=True)
        return self._commit(r, self._snapshot(r, r.latest_version), [], {s.lower() for s in sha256s})

    def sync(self, repo: str, url: str, *, mirror: bool = True) -> int:
        """Synchronize from a yum repository (file://, http(s)://), fetching only the packages the
        store lacks. mirror=True: the new version holds exactly the remote's packages; False: adds."""
        r = self._repo(repo, lock=True)
        ct = self._content_type(r)
        base = url if url.endswith("/") else url + "/"
        self.blobs.tmp.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.blobs.tmp) as work, Fetcher() as fetch:
            listed = ct.read_remote_index(base, fetch, Path(work))
            metadata_files = fetch.files
            known = self._package_rows([u.sha256 for u in listed if u.sha256])
            held: list[Item] = []
            missing: dict[str, RemoteUnit] = {}
            for u in listed:
                row = known.get(u.sha256) if u.sha256 else None
                if row is not None and self.blobs.has(u.sha256, row[2]):
                    held.append((row[0], u.sha256, row[1]))
                else:
                    missing.setdefault(u.sha256 or f"{u.checksum_type}:{u.checksum}:{u.href}", u)
            fetched = self._fetch_units(ct, base, list(missing.values()), fetch)
            fetched_files, fetched_bytes = fetch.files - metadata_files, fetch.bytes
        items = held + fetched
        current = self._snapshot(r, r.latest_version)
        remove = set(current) - {sha for _, sha, _ in items} if mirror else set()
        version = self._commit(r, current, items, remove)
        self.last_sync = SyncReport(url, len(listed), fetched_files, fetched_bytes, len(held), version)
        return version

    def import_tree(self, repo: str, tree: Path, expect: ImportExpectation, *, take_files: bool = False) -> int:
        """A new version = expect.base_version's packages - expect.removed + the tree's package files.

        Only the tree's package files are read (their headers give the metadata chunks and their
        sha256); its repodata is not needed, and the work follows the size of the change. The
        result must have expect.target_digest and expect.target_count, else BundleIntegrityError
        and no version is written (the session holds the new store rows: the caller rolls back).
        take_files=True: the tree is a staging directory the caller owns and discards; its files
        are moved into the store instead of copied."""
        take_files = take_files or expect.disposable_tree
        r = self._repo(repo, lock=True)
        ct = self._content_type(r)
        tree = Path(tree)
        if expect.base_version is not None and self._find_version(r, expect.base_version) is None:
            latest = self._version_row(r, r.latest_version)
            raise BaseMismatch(
                f"repository '{repo}' has no version {expect.base_version} to apply {tree} to; "
                f"its latest is {latest.number} ({latest.package_count} packages, {latest.digest})",
                details={
                    "has": {"version": latest.number, "package_count": latest.package_count, "digest": latest.digest}
                },
            )
        items = self._ingest(ct, self._tree_unit_files(ct, tree), mode="move" if take_files else "copy")
        current = self._snapshot(r, r.latest_version)
        if expect.base_version is None:
            base: Sequence[str] = ()
        elif expect.base_version == r.latest_version:
            base = current
        else:
            base = self._snapshot(r, expect.base_version)
        removed = {s.lower() for s in expect.removed}
        in_tree = {sha for _, sha, _ in items}
        target = {sha for sha in base if sha not in removed} | in_tree
        current_set = set(current)
        # packages of the base that the latest version lacks (only when the base is not the latest)
        from_base = [sha for sha in base if sha in target and sha not in in_tree and sha not in current_set]
        add = list(items) + self._items(from_base)
        remove = current_set - target
        return self._commit(r, current, add, remove, expect=expect, repo_key=repo, tree=tree)

    # === export and publication ==================================================================
    def export_version(self, repo: str, version: int, base_version: int | None, dest: Path) -> ExportedTree:
        return self._export(repo, version, base_version, Path(dest), hardlink=self.hardlink_exports)

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
        """ExportsByReference: the repodata under dest; the package files stay in the store and
        `sources` names them (the reader checks sizes while reading, so no stat here)."""
        r = self._repo(repo)
        ct = self._content_type(r)
        v = self._version_row(r, version)
        shas = self._snapshot(r, version)
        new = self._new_shas(r, shas, base_version)
        packages = self._package_files(new, added, repo, version)
        dest = Path(dest)
        created = prepare_export_dir(dest)
        try:
            index = self._write_index(ct, v, shas, dest)
        except BaseException:
            clear_export_dir(dest, remove_self=created)
            raise
        prefix = _prefix(dest, relative_to)
        files = [FileEntry(prefix + loc, sha, size) for sha, loc, size in packages]
        files += [FileEntry(prefix + f.path, f.sha256, f.size) for f in index] if prefix else index
        return ExportedTree(
            files=tuple(files),
            new_packages=len(packages),
            sources={prefix + loc: self.blobs.file_of(sha) for sha, loc, size in packages},
            link_sources=self.hardlink_exports,
        )

    def publish(self, repo: str, version: int) -> str:
        """Write the version as a yum repository at <published_root>/<repo key> and switch to it
        atomically: the key is a symlink to a complete tree, replaced in one rename.

        A tree is its own repodata/ plus Packages, a symlink into the repository's package pool
        (<published_root>/.pools/<key>/p<N>.<token>/Packages, hardlinks into the store). The pool
        holds the packages of the live tree and of the one before it; a publish adds the packages
        the live version lacks and drops those only the tree before the live one used, so it costs
        the change plus the metadata. A fresh pool (all packages) is made for the first
        publication, and when an added package would reuse a file name of the pool with other bytes."""
        parts = _check_key(repo)
        r = self._repo(repo)
        v = self._version_row(r, version)
        link = self.published_root.joinpath(*parts)
        versions_dir = self.published_root.joinpath(PUBLISHED_VERSIONS, *parts)
        pools_dir = self.published_root.joinpath(PUBLISHED_POOLS, *parts)
        for d in (link.parent, versions_dir, pools_dir):
            d.mkdir(parents=True, exist_ok=True)
        with open(versions_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one publisher of this repository at a time (across processes)
            current = self._published_target(link, versions_dir, repo)
            if (
                current is not None
                and current.name.startswith(f"v{version}.")
                and (current / "repodata" / "repomd.xml").is_file()
            ):
                return str(link)  # already published
            new_dir = versions_dir / f"v{version}.{secrets.token_hex(4)}"
            new_dir.mkdir()
            try:
                pool, pending = self._fill_pool(r, repo, version, current, pools_dir)
                os.symlink(os.path.relpath(pool / "Packages", new_dir), new_dir / "Packages")
                self._write_index(self._content_type(r), v, self._snapshot(r, version), new_dir)
                _write_pool_state(pool, version, pending)
            except BaseException:
                shutil.rmtree(new_dir, ignore_errors=True)
                raise
            tmp_link = link.parent / f".{link.name}.{secrets.token_hex(4)}.tmp"
            os.symlink(os.path.relpath(new_dir, link.parent), tmp_link)
            os.replace(tmp_link, link)
            # keep the previous tree for clients that are reading it right now; drop older ones
            for old in versions_dir.iterdir():
                if old not in (new_dir, current) and old.is_dir() and not old.is_symlink():
                    shutil.rmtree(old, ignore_errors=True)
            kept = {_pool_of(t) for t in (new_dir, current) if t is not None}
            for old in pools_dir.iterdir():
                if old not in kept and old.is_dir() and not old.is_symlink():
                    shutil.rmtree(old, ignore_errors=True)
        return str(link)

    def _fill_pool(
        self, r: StoreRepository, repo: str, version: int, current: Path | None, pools_dir: Path
    ) -> tuple[Path, list[str]]:
        """(the pool the new tree uses, the locations to drop from it at the next publish)."""
        pool = _pool_of(current) if current is not None else None
        state = _read_pool_state(pool) if pool is not None else None
        if pool is not None and state is not None and current.name.startswith(f"v{state['version']}."):
            changes = self.version_changes(repo, state["version"], version)
            added = {p.location: p for p in changes.added}
            if all(_same_file_or_absent(pool / p.location, self.blobs.path(p.sha256)) for p in changes.added):
                for loc in state["pending"]:
                    if loc not in added and _safe_relpath(loc):
                        (pool / loc).unlink(missing_ok=True)
                missing = [p.sha256 for p in changes.added if not (pool / p.location).exists()]
                self._place_packages(pool, missing, True, repo, version)
                rows = self._package_rows(changes.removed)
                return pool, sorted({rows[s][1] for s in changes.removed if s in rows} - set(added))
        pool = pools_dir / f"p{version}.{secrets.token_hex(4)}"
        self._place_packages(pool, self._snapshot(r, version), True, repo, version)
        (pool / "Packages").mkdir(exist_ok=True)  # an empty version still has a Packages directory
        return pool, []

    @staticmethod
    def _published_target(link: Path, versions_dir: Path, repo: str) -> Path | None:
        """The tree the publication link points to now (None: not published yet)."""
        if link.is_symlink():
            target = Path(os.path.normpath(link.parent / os.readlink(link)))
            return target if target.parent == versions_dir else None
        if link.exists():
            raise BackendError(
                f"cannot publish '{repo}': {link} exists and is not a publication made by iss (a symlink); move it away"
            )
        return None

    # === store maintenance ========================================================================
    def remove_unreferenced_blobs(self, sha256s: Iterable[str]) -> int:
        """Delete the store files of these checksums that no package row (visible to this session)
        references, e.g. after a rolled-back import. Returns how many files were deleted."""
        wanted = sorted({s.lower() for s in sha256s})
        referenced = self._package_rows(wanted)
        n = sum(1 for s in wanted if s not in referenced and self.blobs.remove(s))
        self.new_blobs.difference_update(wanted)
        return n

    def _after_commit(self, session: Session) -> None:
        self.new_blobs.clear()

    def _after_rollback(self, session: Session) -> None:
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
                for batch in _batched(shas):
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
            referenced = self._package_rows([s for s, _ in batch])
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
        for root in (self.sets.root, self.index_cache.root):
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

    # === internals: lookups =======================================================================
    def _content_type(self, r: StoreRepository) -> ContentType:
        return get_content_type(r.content_type)

    def _repo(self, key: str, *, lock: bool = False) -> StoreRepository:
        stmt = select(StoreRepository).where(StoreRepository.key == key)
        if lock:
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        r = self.session.scalars(stmt).one_or_none()
        if r is None:
            raise NotFound(
                f"repository '{key}' does not exist in the local content store (ensure_repository creates it)"
            )
        return r

    def _find_version(self, r: StoreRepository, number: int) -> StoreRepositoryVersion | None:
        return self.session.scalars(select(V).where(V.repository_id == r.id, V.number == number)).one_or_none()

    def _version_row(self, r: StoreRepository, number: int) -> StoreRepositoryVersion:
        v = self._find_version(r, number)
        if v is None:
            raise NotFound(f"repository '{r.key}' has no version {number} (its latest is {r.latest_version})")
        return v

    @staticmethod
    def _in_version(repo_id: int, version: int):
        return and_(
            C.repository_id == repo_id,
            C.version_added <= version,
            or_(C.version_removed.is_(None), C.version_removed > version),
        )

    def _snapshot(self, r: StoreRepository, number: int) -> Sequence[str]:
        """The package checksums of a version in membership order: from the set cache (checked
        against the version's digest), else from the database (and then cached)."""
        v = self._version_row(r, number)
        shas = self.sets.get(v.digest, v.package_count)
        if shas is None:
            shas = tuple(
                self.session.scalars(
                    select(P.sha256)
                    .join(_CONTENT, C.package_id == P.id)
                    .where(self._in_version(r.id, number))
                    .order_by(C.id)
                )
            )
            self.sets.put(v.digest, shas)
        return shas

    def _items(self, shas: Sequence[str]) -> list[Item]:
        rows = self._package_rows(shas)
        return [(rows[sha][0], sha, rows[sha][1]) for sha in shas]

    def _package_rows(self, shas: Sequence[str]) -> dict[str, tuple[int, str, int]]:
        """sha256 -> (id, location, size) for the checksums the store has rows for."""
        out: dict[str, tuple[int, str, int]] = {}
        for batch in _batched(list(dict.fromkeys(shas))):
            for pid, sha, loc, size in self.session.execute(
                select(P.id, P.sha256, P.location, P.size).where(P.sha256.in_(batch))
            ).all():
                out[sha] = (pid, loc, size)
        return out

    # === internals: putting files in ============================================================
    def _ingest(self, ct: ContentType, paths: Sequence[Path], *, mode: str) -> list[Item]:
        """Read each file's header, store the file and its row; every unreadable file is reported at
        once. mode: copy (the caller's files), move (a staging dir the caller gives up)."""
        items: dict[str, Item] = {}
        problems: list[str] = []
        for batch in _batched(list(paths)):
            units: list[tuple[Path, Unit]] = []
            for path in batch:
                try:
                    units.append((path, ct.read_unit(path)))
                except BackendError as e:
                    problems.append(e.message)
            if not problems:
                for item in self._store_units(units, mode):
                    items.setdefault(item[1], item)
        if problems:
            raise BackendError(f"{len(problems)} of {len(paths)} files could not be read; nothing was added", problems)
        return list(items.values())

    def _store_units(self, units: Sequence[tuple[Path, Unit]], mode: str) -> list[Item]:
        by_sha: dict[str, tuple[Path, Unit]] = {}
        for path, unit in units:
            by_sha.setdefault(unit.package.sha256, (path, unit))
        existing = self._package_rows(list(by_sha))
        new_rows = []
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
            existing.update(self._package_rows([row["sha256"] for row in new_rows]))
        return [(existing[sha][0], sha, existing[sha][1]) for sha in by_sha]

    @staticmethod
    def _row(unit: Unit) -> dict:
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

    def _insert_ignore(self):
        """INSERT that skips a package row another transaction added meanwhile (unique sha256)."""
        dialect = self.session.get_bind().dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(_PACKAGES).on_conflict_do_nothing(index_elements=["sha256"])
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(_PACKAGES).on_conflict_do_nothing(index_elements=["sha256"])
        return insert(_PACKAGES)

    def _fetch_units(self, ct: ContentType, base: str, units: list[RemoteUnit], fetch: Fetcher) -> list[Item]:
        """Download units (download_workers at a time), read their headers, store them. Permanent
        problems are collected and raised together; a transient one stops the sync at once."""
        out: list[Item] = []
        problems: list[str] = []
        with ThreadPoolExecutor(max_workers=self.download_workers, thread_name_prefix="iss-sync") as pool:
            for batch in _batched(units):
                futures = [pool.submit(self._fetch_unit, ct, base, u, fetch) for u in batch]
                wait(futures)
                got: list[tuple[Path, Unit]] = []
                error: BaseException | None = None
                for f in futures:
                    if f.exception() is not None:
                        error = error or f.exception()
                    elif isinstance(f.result(), str):
                        problems.append(f.result())
                    else:
                        got.append(f.result())
                try:
                    if error is not None:
                        raise error
                    if not problems:
                        out.extend(self._store_units(got, "adopt"))
                finally:
                    for tmp, _ in got:
                        tmp.unlink(missing_ok=True)
        if problems:
            raise BackendError(f"sync from {base}: {len(problems)} packages failed; no new version was made", problems)
        return out

    def _fetch_unit(self, ct: ContentType, base: str, u: RemoteUnit, fetch: Fetcher) -> tuple[Path, Unit] | str:
        """One package into a temporary file of the store: (path, unit), or a problem (str)."""
        unit_base = (u.base_url if u.base_url.endswith("/") else u.base_url + "/") if u.base_url else base
        url = urljoin(unit_base, u.href)
        tmp = self.blobs.new_tmp_path("sync")
        try:
            sha = fetch(url, tmp, u.checksum_type, u.checksum, u.size or None)
            unit = ct.read_unit(tmp)
        except BackendError as e:
            tmp.unlink(missing_ok=True)
            if e.transient:
                raise
            return e.message.replace(str(tmp), url) + "".join(f"; {p}" for p in e.problems)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if unit.package.sha256 != sha:  # the file changed between download and reading: never expected
            tmp.unlink(missing_ok=True)
            return f"{url}: its sha256 changed while it was read"
        return tmp, unit

    def _tree_unit_files(self, ct: ContentType, tree: Path) -> list[Path]:
        if not tree.is_dir():
            raise BundleIntegrityError(f"{tree} is not a directory holding a yum tree")
        found, problems = [], []
        for dirpath, dirnames, filenames in os.walk(tree):
            d = Path(dirpath)
            for name in dirnames:
                if (d / name).is_symlink():
                    problems.append(f"{(d / name).relative_to(tree)} is a symbolic link")
            for name in filenames:
                p = d / name
                rel = p.relative_to(tree).as_posix()
                if not ct.is_unit_path(rel):
                    continue
                if p.is_symlink() or not p.is_file():
                    problems.append(f"{rel} is not a regular file")
                    continue
                found.append(p)
        if problems:
            raise BundleIntegrityError(
                f"{tree} holds entries an import does not accept; nothing was imported", problems
            )
        return sorted(found)

    # === internals: making a version ============================================================
    def _commit(
        self,
        r: StoreRepository,
        current: Sequence[str],
        add: Sequence[Item],
        remove: set[str],
        *,
        expect: ImportExpectation | None = None,
        repo_key: str | None = None,
        tree: Path | None = None,
    ) -> int:
        """The latest version (`current`, its checksums in order) - remove + add as a new version, or
        the latest when that changes nothing. With expect, the result must have its digest and
        count, checked before anything is written. Work and queries follow the change."""
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
        digest = set_digest(shas)
        if expect is not None and (digest != expect.target_digest or len(shas) != expect.target_count):
            raise BundleIntegrityError(
                f"importing {tree} into '{repo_key}' would make a version of {len(shas)} packages with digest "
                f"{digest}, but the bundle promises {expect.target_count} packages with digest "
                f"{expect.target_digest}; nothing was imported",
                [
                    (
                        f"base version {expect.base_version}, {len(expect.removed)} packages removed, "
                        f"{len(new_items)} packages added from the tree"
                    )
                ],
                details={
                    "expected_digest": expect.target_digest,
                    "expected_count": expect.target_count,
                    "digest": digest,
                    "count": len(shas),
                },
            )
        if not new_items and not remove:
            return r.latest_version
        self._check_locations(r, new_items, remove)
        number = r.latest_version + 1
        removed_ids = [pid for pid, _, _ in self._items(sorted(remove))]
        for batch in _batched(removed_ids):
            self.session.execute(
                update(_CONTENT)
                .where(C.repository_id == r.id, C.version_removed.is_(None), C.package_id.in_(batch))
                .values(version_removed=number)
            )
        if new_items:
            self.session.execute(
                insert(_CONTENT),
                [
                    {"repository_id": r.id, "package_id": pid, "version_added": number, "version_removed": None}
                    for pid, _, _ in new_items
                ],
            )
        self.session.add(V(repository_id=r.id, number=number, package_count=len(shas), digest=digest))
        r.latest_version = number
        self.session.flush()
        self.sets.put(digest, shas)
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
        for batch in _batched(list(where)):
            for pid, sha, loc in self.session.execute(select(P.id, P.sha256, P.location).where(P.location.in_(batch))):
                if where[loc] != sha and sha not in remove:
                    clashes[pid] = (sha, loc)
        for batch in _batched(list(clashes)):
            for pid in self.session.scalars(
                select(C.package_id).where(
                    C.repository_id == r.id, C.version_removed.is_(None), C.package_id.in_(batch)
                )
            ):
                sha, loc = clashes[pid]
                problems.append(f"{loc}: {where[loc]} is being added, {sha} is in version {r.latest_version}")
        if problems:
            raise BackendError(
                f"repository '{r.key}': different packages with the same file name cannot be in one version "
                "(remove the old one first)",
                problems,
            )

    # === internals: writing trees =================================================================
    def _export(self, repo: str, version: int, base_version: int | None, dest: Path, *, hardlink: bool) -> ExportedTree:
        r = self._repo(repo)
        ct = self._content_type(r)
        v = self._version_row(r, version)
        shas = self._snapshot(r, version)
        new = self._new_shas(r, shas, base_version)
        created = prepare_export_dir(dest)
        try:
            files = [
                FileEntry(loc, sha, size) for sha, loc, size in self._place_packages(dest, new, hardlink, repo, version)
            ]
            new_packages = len(files)
            files.extend(self._write_index(ct, v, shas, dest))
        except BaseException:
            clear_export_dir(dest, remove_self=created)
            raise
        return ExportedTree(files=tuple(files), new_packages=new_packages)

    def _new_shas(self, r: StoreRepository, shas: Sequence[str], base_version: int | None) -> Sequence[str]:
        """The checksums of `shas` (a version) that base_version lacks (all without a base)."""
        if base_version is None:
            return shas
        in_base = set(self._snapshot(r, base_version))
        return [sha for sha in shas if sha not in in_base]

    def _place_packages(
        self, dest: Path, shas: Sequence[str], hardlink: bool, repo: str, version: int
    ) -> list[tuple[str, str, int]]:
        """Hardlink (or copy) the store files of these packages under dest at their locations."""
        problems: list[str] = []
        items = self._package_files(shas, None, repo, version)
        placed = Placer(self.blobs, hardlink).place_many(dest, items, problems)
        if problems:
            raise BackendError(f"cannot export '{repo}' version {version}: the store is damaged", problems)
        return placed

    def _package_files(
        self, shas: Sequence[str], known: Sequence[Package] | None, repo: str, version: int
    ) -> list[tuple[str, str, int]]:
        """(sha256, location, size) of these packages, in the order of `shas`: from `known` when it
        holds exactly these packages, else from the database. An unsafe location is an error."""
        by_sha = {p.sha256: (p.location, p.size) for p in known} if known is not None else {}
        if len(by_sha) != len(shas) or not all(sha in by_sha for sha in shas):
            by_sha = {sha: (loc, size) for sha, (_, loc, size) in self._package_rows(shas).items()}
        items = [(sha, *by_sha[sha]) for sha in shas]
        problems = [
            f"{sha}: unsafe location {loc!r} or checksum in the store"
            for sha, loc, _ in items
            if not (_safe_relpath(loc) and is_sha256(sha))
        ]
        if problems:
            raise BackendError(f"cannot export '{repo}' version {version}: the store is damaged", problems)
        return items

    def _write_index(
        self, ct: ContentType, v: StoreRepositoryVersion, shas: Sequence[str], dest: Path
    ) -> list[FileEntry]:
        def blocks():
            for a, b in partition(shas):
                key = BlockCache.key(ct.format_version, shas[a:b])
                block = self.index_cache.get(key)
                if block is None:
                    chunks = self._chunks(shas[a:b])
                    block = ct.compress_block([chunks[sha] for sha in shas[a:b]])
                    self.index_cache.put(key, block)
                yield block

        ts = int(_utc(v.created).timestamp())
        return ct.write_index(dest, len(shas), blocks(), revision=str(ts), timestamp=ts)

    def _chunks(self, shas: Sequence[str]) -> dict[str, tuple[str, str, str]]:
        out = {}
        for batch in _batched(list(shas)):
            for sha, a, b, c in self.session.execute(
                select(P.sha256, P.primary_xml, P.filelists_xml, P.other_xml).where(P.sha256.in_(batch))
            ):
                out[sha] = (a, b, c)
        return out
