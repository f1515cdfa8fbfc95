"""Placement: a version's publication (reused when one exists) and the distribution that serves it."""

from __future__ import annotations

from iss_plugin.adapters.backends.pulp.client import Entity
from iss_plugin.adapters.backends.pulp.entities import first_created, href_of
from iss_plugin.adapters.backends.pulp.repositories import PulpRepositories


class PulpPlacement(PulpRepositories):
    """Publications and distributions; a repository's distribution carries its Pulp name."""

    def publish(self, repo: str, version: int) -> str:
        name = self.pulp_name(repo)
        href = self._version_href(repo, version)
        publication = self._publication(href, f"'{repo}' version {version}")
        dist = self.pulp.first("distributions_rpm_rpm_list", f"finding the distribution of '{repo}'", {"name": name})
        if dist is None:
            task = self.pulp.run(
                "distributions_rpm_rpm_create",
                f"distributing '{repo}'",
                body={"name": name, "base_path": name, "publication": publication},
            )
            dist_href = first_created(task)
        else:
            dist_href = href_of(dist)
            if dist.get("publication") != publication or dist.get("repository"):
                self.pulp.run(
                    "distributions_rpm_rpm_partial_update",
                    f"switching the distribution of '{repo}'",
                    parameters={"rpm_rpm_distribution_href": dist_href},
                    body={"publication": publication, "repository": None},
                )
        read: Entity = self.pulp.call(
            "distributions_rpm_rpm_read",
            f"reading the distribution of '{repo}'",
            parameters={"rpm_rpm_distribution_href": dist_href},
        )
        base_url: str = read["base_url"]
        return base_url

    def _publication(self, version_href: str, what: str) -> str:
        e = self.pulp.first(
            "publications_rpm_rpm_list",
            f"finding a publication of {what}",
            {"repository_version": version_href, "fields": ["pulp_href", "checksum_type"]},
        )
        if e is not None:
            return href_of(e)
        task = self.pulp.run(
            "publications_rpm_rpm_create",
            f"publishing {what}",
            body={"repository_version": version_href, "checksum_type": "sha256"},
        )
        return first_created(task)
