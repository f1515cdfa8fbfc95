"""RabbitMQ restarted (stop_app/start_app) in the middle of a flow: the relay and the consumer
reconnect by themselves and no event is lost (duplicates allowed, absorbed downstream).

Opt-in (it restarts the shared broker for everyone): ISS_TEST_BROKER_RESTART=1 or -m broker_restart."""

from __future__ import annotations

import threading
import time

import pytest

from iss_plugin.adapters.bus import topology as T
from iss_plugin.adapters.bus.connection import make_kombu_connection
from iss_plugin.adapters.bus.consumer import EventConsumer
from iss_plugin.adapters.bus.publisher import make_publisher
from iss_plugin.adapters.bus.relay import OutboxRelay
from iss_plugin.adapters.db.models import OutboxEvent
from iss_plugin.domain import events as E
from iss_plugin.services.outbox import pending

from .conftest import Running, declare_all, rabbitmqctl, wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.broker_restart, pytest.mark.slow]


def restart_broker_app(down_seconds: float = 2.0) -> None:
    rabbitmqctl("stop_app")
    try:
        time.sleep(down_seconds)
    finally:
        rabbitmqctl("start_app")  # always: the broker is shared
        rabbitmqctl("await_startup", check=False)


def test_flow_survives_a_broker_restart(amqp_bus, session_factory):
    topology = declare_all(amqp_bus, export=True)
    written: list[str] = []
    stop_writing = threading.Event()

    def writer():
        version = 0
        while not stop_writing.is_set():
            with session_factory() as s:
                for _ in range(50):
                    version += 1
                    env = E.make_envelope(
                        E.CONTENT_VIEW_PUBLISHED,
                        "urn:iss:server:test",
                        E.content_view_published(organization="ACME", content_view="base", version=f"{version}.0"),
                    )
                    s.add(
                        OutboxEvent(
                            event_id=env["id"], type=env["type"], routing_key=E.routing_key(env["type"]), body=env
                        )
                    )
                    written.append(env["id"])
                s.commit()
            time.sleep(0.05)

    handled: set[str] = set()
    stop_relay = threading.Event()
    relay = OutboxRelay(session_factory, make_publisher(amqp_bus), batch_size=100, poll_interval=0.1, confirm_timeout=5)
    threads = [
        threading.Thread(target=writer, daemon=True),
        threading.Thread(target=relay.run_forever, args=(stop_relay,), daemon=True),
    ]
    consumer = EventConsumer(
        make_kombu_connection(amqp_bus),
        topology,
        [T.export_queue_name(amqp_bus.prefix)],
        {E.CONTENT_VIEW_PUBLISHED: lambda e: handled.add(e.id)},
        name="test",
        prefetch=50,
    )
    consumer.connect_max_retries = None
    with Running(consumer):
        for t in threads:
            t.start()
        try:
            assert wait_for(lambda: len(handled) >= 500, timeout=30)
            restart_broker_app()
            time.sleep(3)  # keep the flow going after the restart
        finally:
            stop_writing.set()
            threads[0].join(10)

        def all_sent() -> bool:
            with session_factory() as s:
                return pending(s)[0] == 0

        assert wait_for(all_sent, timeout=120), "the relay did not catch up after the restart"
        stop_relay.set()
        threads[1].join(15)
        assert wait_for(lambda: set(written) <= handled, timeout=120), (
            f"{len(set(written) - handled)} of {len(written)} events never reached the consumer"
        )
    assert len(written) > 1000
