"""The first start of `iss run` (consumers.run.Runtime) on a broker that has never seen this server:
events already in the outbox reach the server's own workers, none goes to the unroutable queue.

The relay used to start publishing while the worker threads were still connecting: whatever it
relayed before the export worker had declared and bound `<prefix>.export` was caught by the
alternate exchange (kept, but never handled). Real RabbitMQ (a throwaway vhost), SQLite."""

from __future__ import annotations

import time
import uuid

import pika
import pytest

from consumers.demo import make_server, prepare_source
from consumers.run import Runtime
from iss_plugin.adapters.bus.topology import export_queue_name
from iss_plugin.adapters.db import models as m
from iss_plugin.domain import events as ev

from .conftest import ACTOR, count, memory_bus, outbox, wait_until


def _queue_depth(url: str, queue: str) -> int | None:
    """Messages ready in `queue`, None when the queue does not exist."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return conn.channel().queue_declare(queue, passive=True).method.message_count
    except pika.exceptions.ChannelClosedByBroker:
        return None
    finally:
        if conn.is_open:
            conn.close()


def _handled(app, event_ids: list[str]) -> bool:
    return all(
        count(app, m.ProcessedEvent, m.ProcessedEvent.event_id == e, m.ProcessedEvent.consumer == "export")
        for e in event_ids
    )


@pytest.fixture
def slow_worker_start(monkeypatch):
    """The workers declare their queues a second late, as on a loaded machine (seen in CI)."""
    from iss_plugin.adapters.bus.consumer import EventConsumer

    declare_and_consume = EventConsumer.get_consumers

    def late(self, *args, **kwargs):
        time.sleep(1.0)
        return declare_and_consume(self, *args, **kwargs)

    monkeypatch.setattr(EventConsumer, "get_consumers", late)


def test_events_waiting_in_the_outbox_at_the_first_start_reach_the_export_worker(
    tmp_path, rabbit_vhost, slow_worker_start
):
    tag = uuid.uuid4().hex[:10]
    bus = {"url": rabbit_vhost, "exchange": f"start-{tag}", "prefix": f"start-{tag}", "retry_delays_ms": (200,)}
    src = make_server(tmp_path, "source", bus=bus)
    prepare_source(src, tmp_path / "rpms", 2, ACTOR)
    waiting = [e.event_id for e in outbox(src, ev.REPOSITORY_CHANGED)]
    assert waiting and _queue_depth(rabbit_vhost, export_queue_name(bus["prefix"])) is None  # never declared

    runtime = Runtime(src, ("relay", "export"), relay_poll=0.05).start()
    try:
        # declared before start() returns, so before the relay's first pass
        assert _queue_depth(rabbit_vhost, export_queue_name(bus["prefix"])) is not None
        wait_until(lambda: _handled(src, waiting), 60, "the outbox's events handled by the export worker")
    finally:
        runtime.shutdown()
        src.close()
    assert _queue_depth(rabbit_vhost, f"{bus['prefix']}.unroutable") == 0


@pytest.mark.parametrize("roles", [("relay", "export", "status"), ("relay",)])
def test_the_embedded_bus_starts_the_same_way(tmp_path, roles):
    """memory://: the declarations are shared by the process's connections; a relay with no worker
    of its own declares no role queue (a destination-only or relay-only process)."""
    src = make_server(tmp_path, "source", bus=memory_bus())
    prepare_source(src, tmp_path / "rpms", 1, ACTOR)
    waiting = [e.event_id for e in outbox(src, ev.REPOSITORY_CHANGED)]
    runtime = Runtime(src, roles, relay_poll=0.05).start()
    try:
        if "export" in roles:
            wait_until(lambda: _handled(src, waiting), 60, "the outbox's events handled by the export worker")
        else:
            wait_until(lambda: all(e.sent_at for e in outbox(src, ev.REPOSITORY_CHANGED)), 60, "the events relayed")
            assert not _handled(src, waiting[:1])
    finally:
        runtime.shutdown()
        src.close()
