"""What the repository watcher reads: the repositories under the backend's prefix, and the
repository versions Pulp created since a moment (by iss or by anyone else)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from iss_plugin.adapters.backends.pulp.entities import HREF_BATCH, batched, utc
from iss_plugin.adapters.backends.pulp.repositories import PulpRepositories


@dataclass(frozen=True)
class RepositoryChange:
    """A repository version Pulp created (by iss or anyone else), for the repository watcher."""

    repo: str
    version: int
    created: datetime


class PulpWatch(PulpRepositories):
    """Server-wide listings for the repository watcher."""

    def list_repositories(self) -> list[str]:
        """The keys of every rpm repository under this backend's prefix."""
        keys = []
        for e in self.pulp.list(
            "repositories_rpm_rpm_list",
            "listing repositories",
            {"name__startswith": self.repo_prefix, "fields": ["name"]} if self.repo_prefix else {"fields": ["name"]},
        ):
            key = self.key_of(e["name"])
            if key is not None:
                keys.append(key)
        return sorted(keys)

    def changed_since(self, since: datetime) -> list[RepositoryChange]:
        """Repository versions created at or after `since`, by iss or by anyone else (a pulp-cli sync,
        another tool): one query over every repository, oldest first."""
        versions = list(
            self.pulp.list(
                "repository_versions_list",
                "listing new repository versions",
                {
                    "pulp_created__gte": since.astimezone(UTC),
                    "ordering": ["pulp_created"],
                    "fields": ["pulp_href", "number", "pulp_created", "repository"],
                },
            )
        )
        repo_hrefs = sorted({v["repository"] for v in versions})
        names: dict[str, str] = {}
        for batch in batched(repo_hrefs, HREF_BATCH):
            for e in self.pulp.list(
                "repositories_rpm_rpm_list",
                "naming changed repositories",
                {"pulp_href__in": list(batch), "fields": ["pulp_href", "name"]},
            ):
                names[e["pulp_href"]] = e["name"]
        out = []
        for v in versions:
            key = self.key_of(names[v["repository"]]) if v["repository"] in names else None
            if key is not None:
                out.append(RepositoryChange(key, v["number"], utc(v["pulp_created"])))
        return out
