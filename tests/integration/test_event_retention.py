"""Event retention on SQLite and PostgreSQL: sent outbox rows and processed markers older than the
retention are deleted in bounded transactions; unsent rows (whatever their age) and young rows
stay; retention 0 keeps all; /metrics' event counts do not go down; an event whose marker was
pruned is handled again without error."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from iss_plugin.adapters.db import migrate
from iss_plugin.adapters.db.engine import make_engine, make_session_factory
from iss_plugin.adapters.db.models import AuditLog, OutboxEvent, ProcessedEvent
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.services import dashboard
from iss_plugin.services.event_retention import prune_events
from iss_plugin.services.idempotency import process_once

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=31)
YOUNG = NOW - timedelta(days=29)
PUBLISHED = "iss.content_view.published.v1"
READY = "iss.bundle.ready.v1"


@pytest.fixture
def factory(database_url):
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


def uow_of(factory):
    return lambda: UnitOfWork(factory, lambda s: None)


def outbox_row(n: int, event_type: str, created: datetime, sent_at: datetime | None) -> OutboxEvent:
    body = {"id": f"ev-{n}", "type": event_type, "data": {"organization": "ACME"}}
    return OutboxEvent(
        event_id=f"ev-{n}", type=event_type, routing_key="r", body=body, created=created, sent_at=sent_at
    )


def fill(factory) -> None:
    """old sent: 7 published + 5 ready; old unsent: 3; young sent: 2; markers: 6 old, 4 young."""
    rows = [outbox_row(i, PUBLISHED, OLD, OLD) for i in range(7)]
    rows += [outbox_row(10 + i, READY, OLD, OLD) for i in range(5)]
    rows += [outbox_row(20 + i, PUBLISHED, OLD - timedelta(days=400), None) for i in range(3)]
    rows += [outbox_row(30 + i, READY, OLD, YOUNG) for i in range(2)]  # made long ago, sent lately
    markers = [ProcessedEvent(event_id=f"in-{i}", consumer="import", at=OLD) for i in range(4)]
    markers += [ProcessedEvent(event_id=f"req-{i}", consumer="export.forced", at=OLD) for i in range(2)]
    markers += [ProcessedEvent(event_id=f"new-{i}", consumer="import", at=YOUNG) for i in range(4)]
    with factory() as s:
        s.add_all(rows + markers)
        s.commit()


def left(factory) -> tuple[list[str], list[str]]:
    with factory() as s:
        outbox = sorted(s.scalars(select(OutboxEvent.event_id)))
        markers = sorted(s.scalars(select(ProcessedEvent.event_id)))
    return outbox, markers


def counts(factory) -> dict[tuple[str, str], int]:
    return {(c.type, c.outcome): c.count for c in dashboard.event_counts(uow_of(factory)())}


def test_old_sent_rows_and_old_markers_go_in_bounded_batches_the_rest_stays(factory):
    fill(factory)
    before = counts(factory)
    pruned = prune_events(uow_of(factory), 30, now=NOW, batch_rows=5)
    assert (pruned.outbox, pruned.processed) == (12, 6)
    assert pruned.transactions == 3 + 2  # 5+5+2 outbox rows, then 5+1 markers
    assert pruned.complete
    outbox, markers = left(factory)
    assert outbox == ["ev-20", "ev-21", "ev-22", "ev-30", "ev-31"]  # unsent (400 days old) and young
    assert markers == [f"new-{i}" for i in range(4)]
    assert counts(factory) == before  # the counters of /metrics do not go down
    assert before[(PUBLISHED, "sent")] == 7 and before[(PUBLISHED, "pending")] == 3
    assert before[("import", "processed")] == 8 and before[("export.forced", "processed")] == 2
    again = prune_events(uow_of(factory), 30, now=NOW, batch_rows=5)
    assert (again.outbox, again.processed) == (0, 0)
    assert left(factory) == (outbox, markers)
    with factory() as s:  # counted once more: a second pruning adds to the counts
        s.add(outbox_row(40, PUBLISHED, OLD, OLD))
        s.commit()
    assert prune_events(uow_of(factory), 30, now=NOW).outbox == 1
    assert counts(factory)[(PUBLISHED, "sent")] == 8


def test_max_batches_stops_a_pass_and_the_next_one_goes_on(factory):
    fill(factory)
    first = prune_events(uow_of(factory), 30, now=NOW, batch_rows=5, max_batches=2)
    assert (first.outbox, first.processed, first.complete) == (10, 0, False)
    rest = prune_events(uow_of(factory), 30, now=NOW, batch_rows=5, max_batches=2)
    assert (rest.outbox, rest.processed, rest.complete) == (2, 5, False)
    last = prune_events(uow_of(factory), 30, now=NOW, batch_rows=5, max_batches=2)
    assert (last.outbox, last.processed, last.complete) == (0, 1, True)


def test_retention_zero_keeps_everything(factory):
    fill(factory)
    everything = left(factory)
    pruned = prune_events(uow_of(factory), 0, now=NOW + timedelta(days=4000))
    assert (pruned.outbox, pruned.processed, pruned.transactions) == (0, 0, 0)
    assert left(factory) == everything


def test_an_event_whose_marker_was_pruned_is_handled_again_without_error(factory):
    def effect(uow):
        uow.session.add(AuditLog(actor="test", action="effect", target="ev-x", details={}))
        return "done"

    assert process_once(uow_of(factory), "ev-x", "import", effect) == (True, "done")
    assert process_once(uow_of(factory), "ev-x", "import", effect) == (False, None)  # a redelivery: skipped
    with factory() as s:
        marker = s.get(ProcessedEvent, ("ev-x", "import"))
        marker.at = OLD
        s.commit()
    assert prune_events(uow_of(factory), 30, now=NOW).processed == 1
    assert process_once(uow_of(factory), "ev-x", "import", effect) == (True, "done")  # handled again
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(AuditLog)) == 2
        assert s.get(ProcessedEvent, ("ev-x", "import")) is not None  # marked anew


def test_iss_runs_reconcile_loop_prunes_and_says_so(tmp_path, caplog):
    from consumers.demo import make_server
    from consumers.run import Runtime

    app = make_server(tmp_path, "loop", reconcile_interval_seconds=1)
    old = datetime.now(UTC) - timedelta(days=31)
    with app.session_factory() as s:
        s.add_all([outbox_row(1, PUBLISHED, old, old), outbox_row(2, PUBLISHED, old, None)])
        s.add(ProcessedEvent(event_id="in-1", consumer="import", at=old))
        s.commit()
    caplog.set_level("INFO", logger="consumers.run")
    runtime = Runtime(app, roles=("reconcile",)).start()
    try:
        deadline = time.monotonic() + 30
        while left(app.session_factory) != (["ev-2"], []) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        runtime.shutdown()
        app.close()
    assert left(app.session_factory) == (["ev-2"], [])  # the unsent row stays
    assert any(
        "deleted 1 sent outbox rows and 1 processed markers older than 30 days" in r.message for r in caplog.records
    )
