"""Exactly-once effect: the same event three times, and two workers racing, give one effect."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from iss_plugin.adapters.db import migrate
from iss_plugin.adapters.db.engine import make_engine, make_session_factory
from iss_plugin.adapters.db.models import AuditLog, ProcessedEvent
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.services.idempotency import already_processed, claim, mark_processed, process_once


@pytest.fixture
def factory(database_url):
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


def uow_of(factory):
    return lambda: UnitOfWork(factory, lambda s: None)


def effect(uow, event_id):
    uow.session.add(AuditLog(actor="test", action="effect", target=event_id, details={}))
    return "done"


def effects(factory) -> int:
    with factory() as s:
        return s.scalar(select(func.count()).select_from(AuditLog))


def test_three_deliveries_one_effect(factory):
    results = [process_once(uow_of(factory), "ev-1", "import", lambda uow: effect(uow, "ev-1")) for _ in range(3)]
    assert results == [(True, "done"), (False, None), (False, None)]
    assert effects(factory) == 1
    with factory() as s:
        assert already_processed(s, "ev-1", "import")
        assert not already_processed(s, "ev-1", "export")  # per consumer


def test_a_failed_handler_records_nothing_and_the_retry_runs(factory):
    def boom(uow):
        effect(uow, "ev-2")
        raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError):
        process_once(uow_of(factory), "ev-2", "import", boom)
    assert effects(factory) == 0
    assert process_once(uow_of(factory), "ev-2", "import", lambda uow: effect(uow, "ev-2"))[0] is True
    assert effects(factory) == 1


def test_mark_processed_twice_fails_at_commit_as_a_duplicate(factory):
    with factory() as s:
        mark_processed(s, "ev-3", "import")
        s.commit()
    with factory() as s:
        assert claim(s, "ev-3", "import") is False
        assert claim(s, "ev-4", "import") is True
        s.commit()
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(ProcessedEvent)) == 2


def test_two_workers_racing_on_one_event_commit_one_effect(factory):
    """Both start together; the marker insert makes the second wait for the first, then see a duplicate."""
    start = threading.Barrier(2)
    outcomes = []

    def slow_effect(uow):
        time.sleep(0.3)  # a wide window for the other worker
        return effect(uow, "ev-race")

    def worker():
        start.wait(timeout=10)
        outcomes.append(process_once(uow_of(factory), "ev-race", "import", slow_effect)[0])

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == [False, True]
    assert effects(factory) == 1
