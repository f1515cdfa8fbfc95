"""Housekeeping: Pulp's orphan cleanup, and deleting a repository with everything iss made for it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from iss_plugin.adapters.backends.pulp.stream_export import STREAM_PREFIX
from iss_plugin.adapters.backends.pulp.sync import PulpSync

log = logging.getLogger(__name__)


class PulpHousekeeping(PulpSync):
    """Removing what no repository needs any more."""

    def remove_orphan_blobs(self, min_age_seconds: float) -> int:
        """Pulp's orphan cleanup (`iss store gc`): content no repository version holds and its files,
        older than min_age_seconds (Pulp counts whole minutes, rounded up: younger ones may belong to
        an import in flight). Server-wide, as Katello's orphan cleanup. Returns the files removed."""
        self.remove_stream_distributions(min_age_seconds)
        minutes = max(0, -(-int(min_age_seconds) // 60))
        task = self.pulp.run(
            "orphans_cleanup_cleanup", "removing orphaned content from Pulp", body={"orphan_protection_time": minutes}
        )
        return sum(
            int(r.get("done") or 0)
            for r in task.get("progress_reports") or []
            if "artifact" in (r.get("message") or "").lower()
        )

    def remove_stream_distributions(self, min_age_seconds: float) -> int:
        """Delete the stream distributions (stream_export.py) made more than min_age_seconds ago;
        the next stream of their version makes its distribution again. Returns how many."""
        cutoff = datetime.now(UTC) - timedelta(seconds=min_age_seconds)
        old = [
            d
            for d in self.pulp.list(
                "distributions_rpm_rpm_list", "listing stream distributions", {"name__startswith": STREAM_PREFIX}
            )
            if datetime.fromisoformat(str(d["pulp_created"])) < cutoff
        ]
        for d in old:
            self.pulp.run(
                "distributions_rpm_rpm_delete",
                f"deleting the stream distribution {d['name']}",
                parameters={"rpm_rpm_distribution_href": d["pulp_href"]},
            )
        if old:
            log.info("Pulp: deleted %d stream distributions made over %.0f s ago", len(old), min_age_seconds)
        return len(old)

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
