"""Repositories: a key's Pulp name, finding and creating the rpm repository (cached by name), and
the href of a version or of the version a task made."""

from __future__ import annotations

from iss_plugin.adapters.backends.pulp.client import Entity, Params, PulpSession
from iss_plugin.adapters.backends.pulp.entities import version_number
from iss_plugin.domain.errors import BackendError, NotFound, UsageError
from iss_plugin.domain.labels import check_label


class PulpRepositories:
    """The root of the Pulp backend's parts: the session, the prefix and the repository cache."""

    pulp: PulpSession
    repo_prefix: str
    _repos: dict[str, Entity]

    # === naming ===================================================================================
    def pulp_name(self, repo: str) -> str:
        for part in repo.split("/"):
            check_label(part, what=f"repository key part '{part}' of '{repo}'")
        return f"{self.repo_prefix}{repo}"

    def key_of(self, pulp_name: str) -> str | None:
        """The key a Pulp repository name stands for; None for names iss did not make for a key
        (another prefix, or an incoming repository: labels hold no '#')."""
        if not pulp_name.startswith(self.repo_prefix):
            return None
        key = pulp_name[len(self.repo_prefix) :]
        try:
            self.pulp_name(key)
        except UsageError:
            return None
        return key

    # === repositories =============================================================================
    def ensure_repository(self, repo: str, content_type: str = "yum") -> None:
        if content_type != "yum":
            raise BackendError(f"the pulp backend holds yum repositories only, not '{content_type}'")
        self._ensure_named(self.pulp_name(repo), {"description": f"iss repository {repo}"})

    def _ensure_named(self, name: str, body: Params) -> Entity:
        found = self._find_repo(name)
        if found is not None:
            return found
        try:
            entity: Entity = self.pulp.call(
                "repositories_rpm_rpm_create", f"creating repository '{name}'", body={"name": name, **body}
            )
        except BackendError as e:
            found = self._find_repo(name) if "unique" in str(e).lower() else None
            if found is not None:  # created meanwhile
                return found
            raise
        self._repos[name] = entity
        return entity

    def _find_repo(self, name: str) -> Entity | None:
        e = self.pulp.first("repositories_rpm_rpm_list", f"finding repository '{name}'", {"name": name})
        if e is not None:
            self._repos[name] = e
        return e

    def _repo(self, repo: str, *, fresh: bool = False) -> Entity:
        name = self.pulp_name(repo)
        cached = self._repos.get(name)
        if cached is not None and fresh:
            try:
                cached = self.pulp.call(
                    "repositories_rpm_rpm_read",
                    f"reading repository '{name}'",
                    parameters={"rpm_rpm_repository_href": cached["pulp_href"]},
                )
                self._repos[name] = cached
            except BackendError as e:
                if e.details.get("status") != 404:
                    raise
                self._repos.pop(name, None)
                cached = None
        if cached is None:
            cached = self._find_repo(name)
        if cached is None:
            raise NotFound(f"repository '{repo}' does not exist in Pulp (as '{name}'); ensure_repository creates it")
        return cached

    # === versions =================================================================================
    def _version_href(self, repo: str, version: int) -> str:
        r = self._repo(repo)
        if version > version_number(r["latest_version_href"]):  # versions below it are known to exist
            r = self._repo(repo, fresh=True)
        if version < 0 or version > version_number(r["latest_version_href"]):
            raise NotFound(
                f"repository '{repo}' has no version {version} in Pulp "
                f"(its latest is {version_number(r['latest_version_href'])})"
            )
        return f"{r['versions_href']}{version}/"

    def _result_version(self, task: Entity, r: Entity) -> int:
        for href in task.get("created_resources") or []:
            if href and "/versions/" in href and href.startswith(r["pulp_href"]):
                return version_number(href)
        # no version in the task's resources: read the repository by href (an incoming repository's
        # name is no key, so it cannot be looked up by name)
        fresh = self.pulp.call(
            "repositories_rpm_rpm_read",
            f"reading repository '{r['name']}'",
            parameters={"rpm_rpm_repository_href": r["pulp_href"]},
        )
        if fresh["name"] in self._repos:
            self._repos[fresh["name"]] = fresh
        return version_number(fresh["latest_version_href"])
