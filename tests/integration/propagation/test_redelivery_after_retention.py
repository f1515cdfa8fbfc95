"""An event delivered again after event retention deleted its processed marker (a parked copy
replayed by an operator, a copy that waited in a queue longer than the retention) is handled again
without error: the bundle is answered as already imported, the publish finds nothing to send.
Embedded: kombu memory://, SQLite, two servers in this process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from iss_plugin.adapters.db import models as m
from iss_plugin.domain import events as ev
from iss_plugin.services.event_retention import prune_events

from .conftest import count, exports, imports, outbox, publish, send_raw, subscription, versions, wait_until

SOURCE_ROLES = ("relay", "export", "status", "reconcile")
DESTINATION_ROLES = ("relay", "import")
T = 30


def test_events_redelivered_after_their_markers_were_pruned_are_handled_again_without_error(embedded):
    src, dst = embedded.src, embedded.dst
    exporter = embedded.run(src, *SOURCE_ROLES).workers[0]
    importer = embedded.run(dst, *DESTINATION_ROLES).workers[0]
    published = publish(src)
    wait_until(lambda: subscription(src).acknowledged == "1.0", T, "1.0 imported and acknowledged")
    [cv_published] = [e for e in outbox(src, ev.CONTENT_VIEW_PUBLISHED) if e.event_id == published["event_id"]]
    [ready] = outbox(src, ev.BUNDLE_READY)
    copies = [(cv_published.body, cv_published.routing_key), (ready.body, ready.routing_key)]

    later = datetime.now(UTC) + timedelta(days=31)  # every row is now older than the retention
    for app in (src, dst):
        wait_until(lambda app=app: not count(app, m.OutboxEvent, m.OutboxEvent.sent_at.is_(None)), T, "all sent")
        pruned = prune_events(app.uow, 30, now=later)
        assert pruned.outbox and pruned.processed
    assert count(dst, m.ProcessedEvent, m.ProcessedEvent.event_id == ready.event_id) == 0
    assert count(src, m.ProcessedEvent, m.ProcessedEvent.event_id == published["event_id"]) == 0
    handled = (exporter.stats["acked"], importer.stats["acked"])

    for body, key in copies:
        send_raw(embedded.bus, body, key)
    wait_until(lambda: importer.stats["acked"] == handled[1] + 1, T, "the bundle.ready copy handled")
    wait_until(lambda: exporter.stats["acked"] >= handled[0] + 1, T, "the publish copy handled")
    wait_until(lambda: count(dst, m.ProcessedEvent, m.ProcessedEvent.event_id == ready.event_id) == 1, T, "marked anew")
    assert exporter.stats["parked"] == importer.stats["parked"] == 0
    assert versions(dst) == ["1.0"]
    assert [(i.version, i.state) for i in imports(dst)] == [("1.0", "imported"), ("1.0", "already_imported")]
    wait_until(lambda: len(outbox(dst, ev.BUNDLE_IMPORTED)) == 1, T, "answered again (the first answer was pruned)")
    assert len(exports(src)) == 1  # the publish again: the destination has 1.0, nothing to send
    assert subscription(src).acknowledged == "1.0"
