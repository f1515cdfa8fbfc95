"""/metrics in Prometheus text format. A collector reads the database at scrape time (nothing is
counted in memory, so every process of a server answers the same): outbox backlog, events by
type and outcome, parked and unroutable messages, export/import durations and bytes, lag per
destination.

A counter never goes down (Prometheus' rate() reads a drop as a restart): only totals that
survive retention are counters (events sent/processed, finished transfers' durations); anything
read as "how many now" (backlog, queue depths, records by current state, bytes on disk) is a gauge.

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
from iss_plugin.services import dashboard, parking, unroutable

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
            "Events sent (by type) and processed (by consumer), with those retention deleted; "
            "not sent yet: iss_outbox_backlog",
            labels=["type", "outcome"],
        )
        for c in dashboard.event_counts(app.uow()):
            if c.outcome != "pending":  # goes down when the relay sends: a gauge (iss_outbox_backlog)
                events.add_metric([c.type, c.outcome], c.count)
        yield events
        parked, bus_up = self._parked()
        yield parked
        yield GaugeMetricFamily("iss_bus_up", "1 if the parking queues could be read", value=1.0 if bus_up else 0.0)
        yield self._unroutable(bus_up)
        yield from self._transfers()
        lag_v = GaugeMetricFamily("iss_destination_lag_versions", "Versions behind (largest)", labels=["destination"])
        lag_s = GaugeMetricFamily("iss_destination_lag_seconds", "Time behind (largest)", labels=["destination"])
        for name, (versions, seconds) in dashboard.lag_per_destination(dashboard.destinations(app.uow(), None)).items():
            lag_v.add_metric([name], versions)
            lag_s.add_metric([name], seconds)
        yield lag_v
        yield lag_s

    def _parked(self) -> tuple[Metric, bool]:
        parked = GaugeMetricFamily("iss_parked_messages", "Messages in parking queues", labels=["queue", "reason"])
        try:
            # every message read, none kept (the counter only): bounded memory whatever is parked
            counts = parking.parked_tally(self.app, lambda m: (m.origin_queue, m.reason or "unknown"))
            for (queue, reason), n in sorted(counts.items()):
                parked.add_metric([queue, reason], n)
        except Exception:
            return parked, False
        return parked, True

    def _unroutable(self, bus_up: bool) -> Metric:
        waiting = GaugeMetricFamily(
            "iss_unroutable_messages",
            "Messages in the unroutable queue (no queue bound their routing key; `iss bus unroutable list`)",
        )
        if not bus_up:  # no sample (as iss_parked_messages), and no second wait for a broker that is down
            return waiting
        try:
            count = unroutable.waiting_count(self.app)
        except Exception:  # the broker stopped answering since: no sample
            return waiting
        waiting.add_metric([], count or 0)  # memory:// has no such queue: 0
        return waiting

    def _transfers(self) -> Iterator[Metric]:
        seconds = SummaryMetricFamily("iss_transfer_duration_seconds", "Finished exports", labels=["direction", "kind"])
        # bundles are deleted and records change state (running -> done -> retired): gauges
        size = GaugeMetricFamily(
            "iss_transfer_bytes", "Bytes of the bundles still on disk", labels=["direction", "kind"]
        )
        bundles = GaugeMetricFamily("iss_transfer_bundles", "Bundles still on disk", labels=["direction", "kind"])
        results = GaugeMetricFamily(
            "iss_transfers", "Export and import records by their current state", labels=["direction", "state"]
        )
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
            size.add_metric(list(key), sum(amounts))
            bundles.add_metric(list(key), len(amounts))
        for key, n in sorted(states.items()):
            results.add_metric(list(key), n)
        yield seconds
        yield size
        yield bundles
        yield results


def registry_for(app: App) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(app))
    return registry


@router.get("/metrics")
def metrics(_who: policy.Identity = Depends(require(policy.VIEW_DASHBOARD)), app: App = Depends(iss_app)) -> Response:
    return Response(generate_latest(registry_for(app)), media_type=CONTENT_TYPE_LATEST)
