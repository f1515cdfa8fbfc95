"""Publishing a version of the local store where yum clients read it: <published_root>/<repo key>
is a symlink to a complete tree, replaced in one rename. A tree is its own repodata/ plus Packages,
a symlink into the repository's package pool, which a publish changes by the difference only."""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from iss_plugin.adapters.backends.local.blobs import BlobStore
from iss_plugin.adapters.backends.local.catalog import Catalog
from iss_plugin.adapters.backends.local.rows import check_key, safe_relpath
from iss_plugin.adapters.backends.local.trees import TreeWriter
from iss_plugin.adapters.db.models import StoreRepository
from iss_plugin.domain.errors import BackendError

PUBLISHED_VERSIONS = ".versions"
PUBLISHED_POOLS = ".pools"
POOL_STATE = ".pool-state.json"


def _pool_of(tree: Path) -> Path | None:
    """The package pool a publication tree's Packages symlink points into (None: a tree of its own)."""
    packages = tree / "Packages"
    return Path(os.path.realpath(packages)).parent if packages.is_symlink() else None


@dataclass(frozen=True)
class PoolState:
    """What a pool's state file says: the version it was last filled for, and the locations it
    holds only for the tree before that one (dropped at the next publish)."""

    version: int
    pending: list[str]


def _read_pool_state(pool: Path) -> PoolState | None:
    try:
        state = json.loads((pool / POOL_STATE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    ok = isinstance(state, dict) and isinstance(state.get("version"), int) and isinstance(state.get("pending"), list)
    return PoolState(state["version"], state["pending"]) if ok else None


def _write_pool_state(pool: Path, version: int, pending: list[str]) -> None:
    tmp = pool / f".{POOL_STATE}.{secrets.token_hex(4)}.tmp"
    tmp.write_text(json.dumps({"version": version, "pending": pending}))
    os.replace(tmp, pool / POOL_STATE)


def _same_file_or_absent(path: Path, blob: Path) -> bool:
    try:
        return os.path.samefile(path, blob)
    except FileNotFoundError:
        return True


class Publisher:
    def __init__(self, catalog: Catalog, trees: TreeWriter, blobs: BlobStore, published_root: Path):
        self.catalog = catalog
        self.trees = trees
        self.blobs = blobs
        self.published_root = published_root

    def publish(self, repo: str, version: int) -> str:
        """Write the version as a yum repository at <published_root>/<repo key> and switch to it
        atomically: the key is a symlink to a complete tree, replaced in one rename.

        A tree is its own repodata/ plus Packages, a symlink into the repository's package pool
        (<published_root>/.pools/<key>/p<N>.<token>/Packages, hardlinks into the store). The pool
        holds the packages of the live tree and of the one before it; a publish adds the packages
        the live version lacks and drops those only the tree before the live one used, so it costs
        the change plus the metadata. A fresh pool (all packages) is made for the first
        publication, and when an added package would reuse a file name of the pool with other bytes."""
        parts = check_key(repo)
        r = self.catalog.repo(repo)
        v = self.catalog.version_row(r, version)
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
                self.trees.write_index(self.catalog.content_type(r), v, self.catalog.snapshot(r, version), new_dir)
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
        if (
            current is not None
            and pool is not None
            and state is not None
            and current.name.startswith(f"v{state.version}.")
        ):
            changes = self.catalog.version_changes(repo, state.version, version)
            added = {p.location: p for p in changes.added}
            if all(_same_file_or_absent(pool / p.location, self.blobs.path(p.sha256)) for p in changes.added):
                for loc in state.pending:
                    if loc not in added and safe_relpath(loc):
                        (pool / loc).unlink(missing_ok=True)
                missing = [p.sha256 for p in changes.added if not (pool / p.location).exists()]
                self.trees.place_packages(pool, missing, True, repo, version)
                rows = self.catalog.package_rows(changes.removed)
                return pool, sorted({rows[s][1] for s in changes.removed if s in rows} - set(added))
        pool = pools_dir / f"p{version}.{secrets.token_hex(4)}"
        self.trees.place_packages(pool, self.catalog.snapshot(r, version), True, repo, version)
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
