"""A consumer that dies before its ack loses nothing: the broker redelivers to the next one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kombu import Producer

from iss_plugin.adapters.bus import topology as T
from iss_plugin.adapters.bus.codec import CONTENT_TYPE, encode
from iss_plugin.adapters.bus.connection import make_kombu_connection
from iss_plugin.adapters.bus.consumer import EventConsumer
from iss_plugin.domain import events as E

from .conftest import Running, declare_all, drain, wait_for

pytestmark = pytest.mark.rabbitmq
ROOT = Path(__file__).resolve().parents[3]


def test_consumer_killed_before_its_ack_gets_the_message_redelivered(amqp_bus):
    topology = declare_all(amqp_bus, export=True)
    queue = T.export_queue_name(amqp_bus.prefix)
    env = E.make_envelope(
        E.CONTENT_VIEW_PUBLISHED,
        "urn:iss:server:test",
        E.content_view_published(organization="ACME", content_view="base", version="1.0"),
    )
    with make_kombu_connection(amqp_bus) as conn:
        Producer(conn.channel()).publish(
            encode(env),
            exchange=amqp_bus.exchange,
            routing_key="iss.content_view.published",
            content_type=CONTENT_TYPE,
            content_encoding="utf-8",
            retry=False,
        )
    child = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("consumer_child.py")),
            amqp_bus.url,
            amqp_bus.exchange,
            amqp_bus.prefix,
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        line = child.stdout.readline()
        assert line.strip() == f"HANDLING {env['id']}", line
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()

    seen = []
    redelivered = []

    class Recording(EventConsumer):
        def _on_message(self, queue_name, message):
            redelivered.append(message.delivery_info.get("redelivered"))
            super()._on_message(queue_name, message)

    consumer = Recording(
        make_kombu_connection(amqp_bus), topology, [queue], {E.CONTENT_VIEW_PUBLISHED: seen.append}, name="test"
    )
    with Running(consumer) as c:
        assert wait_for(lambda: c.stats["acked"] == 1, timeout=20)
    assert [e.id for e in seen] == [env["id"]]
    assert redelivered == [True]
    assert drain(amqp_bus, topology.queue(queue).parked) == []
