"""/metrics in Prometheus text format. A collector reads the database at scrape time (nothing is
counted in memory, so every process of a server answers the same): outbox backlog, events by
type and outcome, parked messages, export/import durations and bytes, lag per destination.

Needs `view_dashboard` server-wide: a Bearer token (`iss token create`) in Prometheus'
`authorization` scrape setting, or a logged-in session."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from iss_plugin.bootstrap import App
from iss_plugin.domain import policy
from iss_plugin.services import dashboard, parking

from .auth import iss_app, require

router = APIRouter(include_in_schema=False)


class DatabaseCollector:
    def __init__(self, app: App) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        app = self.app
        o = dashboard.overview(app.uow(), app.server_id, None)
        yield GaugeMetricFamily("iss_outbox_backlog", "Outbox rows not sent to the broker yet", value=o.outbox_backlog)
        events = CounterMetricFamily(
            "iss_events",
            "Events by type and outcome (sent, processed: with those retention deleted)",
            labels=["type", "outcome"],
        )
        for c in dashboard.event_counts(app.uow()):
            events.add_metric([c.type, c.outcome], c.count)
        yield events
        yield from self._parked()
        yield from self._transfers()
        lag_v = GaugeMetricFamily("iss_destination_lag_versions", "Versions behind (largest)", labels=["destination"])
        lag_s = GaugeMetricFamily("iss_destination_lag_seconds", "Time behind (largest)", labels=["destination"])
        for name, (versions, seconds) in dashboard.lag_per_destination(dashboard.destinations(app.uow(), None)).items():
            lag_v.add_metric([name], versions)
            lag_s.add_metric([name], seconds)
        yield lag_v
        yield lag_s

    def _parked(self) -> Iterator[Metric]:
        parked = GaugeMetricFamily("iss_parked_messages", "Messages in parking queues", labels=["queue", "reason"])
        try:
            # every message read, none kept (the counter only): bounded memory whatever is parked
            counts = parking.parked_tally(self.app, lambda m: (m.origin_queue, m.reason or "unknown"))
            for (queue, reason), n in sorted(counts.items()):
                parked.add_metric([queue, reason], n)
            up = 1.0
        except Exception:
            up = 0.0
        yield parked
        yield GaugeMetricFamily("iss_bus_up", "1 if the parking queues could be read", value=up)

    def _transfers(self) -> Iterator[Metric]:
        seconds = SummaryMetricFamily("iss_transfer_duration_seconds", "Finished exports", labels=["direction", "kind"])
        size = SummaryMetricFamily("iss_transfer_bytes", "Bundles on disk", labels=["direction", "kind"])
        results = CounterMetricFamily("iss_transfers", "Exports and imports by result", labels=["direction", "state"])
        durations: dict[tuple[str, str], list[float]] = {}
        sizes: dict[tuple[str, str], list[int]] = {}
        states: dict[tuple[str, str], int] = {}
        for t in dashboard.transfers(self.app.uow(), None, limit=100_000):
            key = (t.direction, t.kind or "unknown")
            if t.seconds is not None:
                durations.setdefault(key, []).append(t.seconds)
            if t.size is not None:
                sizes.setdefault(key, []).append(t.size)
            states[(t.direction, t.state)] = states.get((t.direction, t.state), 0) + 1
        for key, values in sorted(durations.items()):
            seconds.add_metric(list(key), len(values), sum(values))
        for key, amounts in sorted(sizes.items()):
            size.add_metric(list(key), len(amounts), sum(amounts))
        for key, n in sorted(states.items()):
            results.add_metric(list(key), n)
        yield seconds
        yield size
        yield results


def registry_for(app: App) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(app))
    return registry


@router.get("/metrics")
def metrics(_who: policy.Identity = Depends(require(policy.VIEW_DASHBOARD)), app: App = Depends(iss_app)) -> Response:
    return Response(generate_latest(registry_for(app)), media_type=CONTENT_TYPE_LATEST)
