"""Housekeeping: Pulp's orphan cleanup, and deleting a repository with everything iss made for it."""

from __future__ import annotations

from iss_plugin.adapters.backends.pulp.sync import PulpSync


class PulpHousekeeping(PulpSync):
    """Removing what no repository needs any more."""

    def remove_orphan_blobs(self, min_age_seconds: float) -> int:
        """Pulp's orphan cleanup (`iss store gc`): content no repository version holds and its files,
        older than min_age_seconds (Pulp counts whole minutes, rounded up: younger ones may belong to
        an import in flight). Server-wide, as Katello's orphan cleanup. Returns the files removed."""
        minutes = max(0, -(-int(min_age_seconds) // 60))
        task = self.pulp.run(
            "orphans_cleanup_cleanup", "removing orphaned content from Pulp", body={"orphan_protection_time": minutes}
        )
        return sum(
            int(r.get("done") or 0)
            for r in task.get("progress_reports") or []
            if "artifact" in (r.get("message") or "").lower()
        )

    def delete_repository(self, repo: str) -> None:
        """Delete the repository, its incoming repository, their remotes and its distribution (tests and
        clean-up). Idempotent."""
        for name in (self.pulp_name(repo), self.incoming_name(repo)):
            for list_op, delete_op, param in (
                ("distributions_rpm_rpm_list", "distributions_rpm_rpm_delete", "rpm_rpm_distribution_href"),
                ("remotes_rpm_rpm_list", "remotes_rpm_rpm_delete", "rpm_rpm_remote_href"),
                ("repositories_rpm_rpm_list", "repositories_rpm_rpm_delete", "rpm_rpm_repository_href"),
            ):
                e = self.pulp.first(list_op, f"finding '{name}'", {"name": name})
                if e is not None:
                    self.pulp.run(delete_op, f"deleting '{name}'", parameters={param: e["pulp_href"]})
            self._repos.pop(name, None)
