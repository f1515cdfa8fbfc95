"""The outbox relay: confirmed means marked, unconfirmed stays unsent, a crash yields a duplicate
that the idempotency helper absorbs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from iss_plugin.adapters.bus import topology as T
from iss_plugin.adapters.bus.codec import decode
from iss_plugin.adapters.bus.connection import make_kombu_connection
from iss_plugin.adapters.bus.publisher import KombuPublisher, PikaStreamingPublisher, PublishError, make_publisher
from iss_plugin.adapters.bus.relay import OutboxRelay
from iss_plugin.adapters.db.models import AuditLog, OutboxEvent, ProcessedEvent
from iss_plugin.domain import events as E
from iss_plugin.services.idempotency import process_once
from iss_plugin.services.outbox import add_event, pending

from .conftest import declare_all, drain

pytestmark = pytest.mark.rabbitmq
ROOT = Path(__file__).resolve().parents[3]


def write_events(session_factory, n: int, start: int = 1) -> list[str]:
    ids = []
    with session_factory() as s:
        for i in range(start, start + n):
            ids.append(
                add_event(
                    s,
                    E.CONTENT_VIEW_PUBLISHED,
                    E.content_view_published(organization="ACME", content_view="base", version=f"{i}.0"),
                    source="urn:iss:server:test",
                )
            )
        s.commit()
    return ids


def unsent(session_factory) -> int:
    with session_factory() as s:
        return pending(s)[0]


def test_relay_publishes_in_order_and_marks_sent_only_after_the_confirm(amqp_bus, session_factory):
    declare_all(amqp_bus, export=True)
    ids = write_events(session_factory, 2500)
    seen_unsent_at_confirm = []

    def on_confirmed(row_ids):
        with session_factory() as s:  # at confirm time the rows are still unsent
            seen_unsent_at_confirm.append(
                s.scalar(select(func.count()).where(OutboxEvent.id.in_(row_ids), OutboxEvent.sent_at.is_(None)))
                == len(row_ids)
            )

    relay = OutboxRelay(session_factory, make_publisher(amqp_bus), batch_size=1000, on_confirmed=on_confirmed)
    try:
        result = relay.run_once()
    finally:
        relay.close()
    assert (result.published, result.unconfirmed, result.batches) == (2500, 0, 3)
    assert all(seen_unsent_at_confirm) and len(seen_unsent_at_confirm) == 3
    assert unsent(session_factory) == 0
    got = drain(amqp_bus, T.export_queue_name(amqp_bus.prefix), expect=2500)
    assert [decode(m.body)["id"] for m in got] == ids  # in outbox order
    assert got[0].properties["message_id"] == ids[0]
    assert got[0].content_type == "application/cloudevents+json"


def test_a_second_pass_publishes_nothing_again(amqp_bus, session_factory):
    declare_all(amqp_bus, export=True)
    write_events(session_factory, 3)
    relay = OutboxRelay(session_factory, make_publisher(amqp_bus))
    try:
        assert relay.run_once().published == 3
        assert relay.run_once().published == 0
    finally:
        relay.close()
    assert len(drain(amqp_bus, T.export_queue_name(amqp_bus.prefix), expect=3, timeout=2)) == 3


def test_unconfirmed_rows_stay_unsent_and_go_on_the_next_pass(amqp_bus, session_factory):
    """The exchange does not exist yet: the broker closes the channel, nothing is marked."""
    write_events(session_factory, 5)
    relay = OutboxRelay(session_factory, make_publisher(amqp_bus), confirm_timeout=5)
    try:
        with pytest.raises(PublishError, match="404|NOT_FOUND|closed"):
            relay.run_once()
        assert unsent(session_factory) == 5
        declare_all(amqp_bus, export=True)
        assert relay.run_once().published == 5
    finally:
        relay.close()
    assert unsent(session_factory) == 0


def test_unroutable_messages_are_kept_by_the_alternate_exchange(amqp_bus, session_factory):
    topology = declare_all(amqp_bus)  # exchange only: no role queue bound yet
    write_events(session_factory, 2)
    relay = OutboxRelay(session_factory, make_publisher(amqp_bus))
    try:
        assert relay.run_once().published == 2
    finally:
        relay.close()
    assert len(drain(amqp_bus, topology.unroutable_queue, expect=2)) == 2


def test_returned_messages_stay_unsent(amqp_bus, session_factory):
    """Without an alternate exchange (someone else's exchange), a mandatory publish comes back."""
    with make_kombu_connection(amqp_bus) as conn:
        from kombu import Exchange

        Exchange(amqp_bus.exchange, "topic", durable=True)(conn.channel()).declare()
    write_events(session_factory, 3)
    publisher = PikaStreamingPublisher(amqp_bus.url, amqp_bus.exchange, confirm_timeout=5)
    relay = OutboxRelay(session_factory, publisher)
    try:
        result = relay.run_once()
    finally:
        relay.close()
    assert (result.published, result.unconfirmed) == (0, 3)
    assert unsent(session_factory) == 3


def test_relay_on_memory_transport(session_factory):
    from .conftest import unique_bus

    bus = unique_bus("memory://")
    declare_all(bus, export=True)
    ids = write_events(session_factory, 10)
    relay = OutboxRelay(session_factory, make_publisher(bus))
    assert isinstance(relay.publisher, KombuPublisher)
    try:
        assert relay.run_once().published == 10
    finally:
        relay.close()
    got = drain(bus, T.export_queue_name(bus.prefix), expect=10)
    assert [decode(m.body)["id"] for m in got] == ids


def test_relay_killed_between_confirm_and_mark_sent_delivers_a_duplicate_that_is_absorbed(
    amqp_bus, session_factory, sqlite_url
):
    from iss_plugin.adapters.bus.consumer import EventConsumer
    from iss_plugin.adapters.db.uow import UnitOfWork

    from .conftest import Running, wait_for

    topology = declare_all(amqp_bus, export=True)
    ids = write_events(session_factory, 20)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("relay_child.py")), sqlite_url, amqp_bus.url, amqp_bus.exchange],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = child.stdout.readline()
        assert line.startswith("CONFIRMED 20"), line
        child.send_signal(signal.SIGKILL)  # kill -9 after the confirm, before the mark-sent commit
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    assert unsent(session_factory) == 20  # nothing marked: the rows go again

    relay = OutboxRelay(session_factory, make_publisher(amqp_bus))
    try:
        assert relay.run_once().published == 20
    finally:
        relay.close()
    assert unsent(session_factory) == 0

    handled = []

    def record(uow, event):
        uow.session.add(AuditLog(actor="test", action="effect", target=event.id, details={}))

    def handler(event):
        ran, _ = process_once(
            lambda: UnitOfWork(session_factory, lambda s: None), event.id, "test", lambda uow: record(uow, event)
        )
        handled.append(ran)

    consumer = EventConsumer(
        make_kombu_connection(amqp_bus),
        topology,
        [T.export_queue_name(amqp_bus.prefix)],
        {E.CONTENT_VIEW_PUBLISHED: handler},
        name="test",
    )
    with Running(consumer) as c:
        assert wait_for(lambda: c.stats["acked"] == 40, timeout=30)
    assert handled.count(True) == 20 and handled.count(False) == 20  # every event came twice
    with session_factory() as s:
        effects = s.scalars(select(AuditLog.target)).all()
        assert sorted(effects) == sorted(ids)
        assert s.scalar(select(func.count()).select_from(ProcessedEvent)) == 20


def test_a_connect_timeout_closes_the_half_open_connection():
    """A broker that accepts TCP but never answers the AMQP handshake: connect() gives up after
    connect_timeout and closes the connection it was opening (the peer sees the socket closed),
    instead of leaving it to the garbage collector."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        publisher = PikaStreamingPublisher(f"amqp://guest:guest@127.0.0.1:{port}/", "iss", connect_timeout=0.5)
        with pytest.raises(PublishError, match="not connected within 0.5 s"):
            publisher.connect()
        peer, _ = server.accept()
        with peer:
            peer.settimeout(5)
            while peer.recv(4096):  # the protocol header, then EOF once the publisher closed
                pass
