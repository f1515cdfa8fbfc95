"""Sync: a repository's remote (it carries the repository's name), Pulp's sync task, local trees
staged where Pulp may read them, and the `<name>#incoming` repository that receives a large batch
of new package files for a repository by one sync."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

from iss_plugin.adapters.backends.pulp.client import Entity, Params
from iss_plugin.adapters.backends.pulp.entities import href_of
from iss_plugin.adapters.backends.pulp.repositories import PulpRepositories
from iss_plugin.adapters.backends.pulp.tree import link_or_copy_tree, write_repo_around
from iss_plugin.domain.errors import BackendError, ConfigError, UsageError

INCOMING = "#incoming"  # suffix of the per-repository incoming repository (see PulpContent._send_files)


class StagedTree:
    """A local tree where Pulp may read it (under pulp.shared_import_dir): the tree itself when it is
    there already, otherwise a hardlinked (or copied) twin, removed on exit."""

    def __init__(self, root: Path | None, tree: Path):
        self.root, self.tree = root, tree
        self.path: Path | None = None

    def __enter__(self) -> Path:
        root = self.root
        if root is None:
            raise ConfigError(
                "the pulp backend needs pulp.shared_import_dir (under Pulp's ALLOWED_IMPORT_PATHS) to read local trees"
            )
        try:
            self.tree.resolve().relative_to(root.resolve())
            return self.tree.resolve()  # already where Pulp may read
        except ValueError:
            pass
        self.path = root / f"iss-import-{uuid.uuid4().hex}"
        link_or_copy_tree(self.tree, self.path)
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)


class PulpSync(PulpRepositories):
    """Syncs into a repository from a URL or a local tree, through the repository's remote."""

    shared_import_dir: Path | None
    remote_options: Params

    def incoming_name(self, repo: str) -> str:
        """The repository that receives a large batch of new package files for `repo` by one sync."""
        return f"{self.pulp_name(repo)}{INCOMING}"

    def sync(self, repo: str, url: str, *, mirror: bool = True) -> int:
        r = self._repo(repo, fresh=True)
        parts = urlsplit(url)
        if parts.scheme == "file":
            local = Path(unquote(parts.path))
            if not local.is_dir():
                raise BackendError(f"cannot sync '{repo}' from {url}: {local} is not a directory")
            with self._staged(local) as staged:
                return self._sync_from(r, staged.as_uri() + "/", mirror=mirror, what=url)
        if parts.scheme not in ("http", "https"):
            raise UsageError(f"cannot sync from {url}: use a file://, http:// or https:// URL")
        return self._sync_from(r, url, mirror=mirror, what=url)

    def _staged(self, tree: Path) -> StagedTree:
        return StagedTree(self.shared_import_dir, Path(tree))

    def _remote(self, name: str, url: str) -> str:
        desired = {"url": url, "policy": "immediate", **self.remote_options}
        e = self.pulp.first("remotes_rpm_rpm_list", f"finding remote '{name}'", {"name": name})
        if e is None:
            e = self.pulp.call("remotes_rpm_rpm_create", f"creating remote '{name}'", body={"name": name, **desired})
            return href_of(e)
        changed = {k: v for k, v in desired.items() if e.get(k) != v}
        if changed:
            self.pulp.run(
                "remotes_rpm_rpm_partial_update",
                f"pointing remote '{name}' at {url}",
                parameters={"rpm_rpm_remote_href": e["pulp_href"]},
                body=changed,
            )
        return href_of(e)

    def _sync_from(self, r: Entity, url: str, *, mirror: bool, what: str) -> int:
        remote = self._remote(r["name"], url)
        task = self.pulp.run(
            "repositories_rpm_rpm_sync",
            f"syncing '{r['name']}' from {what}",
            parameters={"rpm_rpm_repository_href": r["pulp_href"]},
            body={"remote": remote, "sync_policy": "mirror_content_only" if mirror else "additive", "optimize": True},
        )
        return self._result_version(task, r)

    def _sync_around(
        self, root: Path, r: Entity, paths: list[Path], *, tag: str, mirror: bool, what: str
    ) -> tuple[list[str], int | None]:
        """A yum tree around `paths` in `root` (the shared import directory), synced into `r` (one Pulp
        task): ([], the version it made), or (the files that could not go into the tree, None: nothing
        synced)."""
        stage = root / f"iss-{tag}-{uuid.uuid4().hex}"
        try:
            problems = write_repo_around(stage, paths)
            if problems:
                return problems, None
            return [], self._sync_from(r, stage.as_uri() + "/", mirror=mirror, what=what)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
