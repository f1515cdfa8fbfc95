"""The Parked page through the real app (TestClient over create_app) on a real RabbitMQ vhost:
paged (a page of messages, next/previous, the total from the queues' counts), in queue order,
and bounded in memory whatever the queue holds."""

from __future__ import annotations

import json
import re
import tracemalloc

import pytest
from fastapi.testclient import TestClient
from kombu import Producer

from consumers.demo import make_server
from iss_plugin.adapters.bus import policy
from iss_plugin.adapters.bus.connection import make_kombu_connection
from iss_plugin.adapters.bus.topology import build, declare, export_queue_name, status_queue_name
from iss_plugin.services import identity, parking
from iss_plugin.web.app import create_app
from tests.integration.bus.conftest import rabbit_vhost, session_vhost, unique_bus  # noqa: F401

pytestmark = pytest.mark.rabbitmq
EVENT_ID = re.compile(r'<div class="muted">(m-[a-z]+-\d{3})</div>')


@pytest.fixture
def server(tmp_path, rabbit_vhost):  # noqa: F811
    app = make_server(tmp_path, "web", bus=unique_bus(rabbit_vhost))
    yield app
    app.close()


@pytest.fixture
def client(server):
    token = identity.read_credentials(server.settings.data_dir / identity.CREDENTIALS_NAME)
    with TestClient(create_app(server), headers={"Authorization": f"Bearer {token}"}) as c:
        yield c


def park(app, queue_of, count: int, tag: str, pad: int = 0) -> list[str]:
    """`count` messages straight into the parking queue of `queue_of(prefix)`, as the consumer parks them."""
    bus = app.settings.bus
    topology = build(bus, export=True, status_for=[app.server_id], import_for=[app.server_id])
    origin = queue_of(bus.prefix) if queue_of is export_queue_name else queue_of(bus.prefix, app.server_id)
    ids = [f"m-{tag}-{i:03d}" for i in range(count)]
    with make_kombu_connection(bus) as conn:
        declare(conn, topology)
        producer = Producer(conn.channel())
        for event_id in ids:
            body = {"id": event_id, "type": "iss.content_view.published.v1", "data": {"organization": "ACME"}}
            if pad:
                body["data"]["pad"] = "x" * pad
            producer.publish(
                json.dumps(body).encode(),
                exchange="",
                routing_key=topology.queue(origin).parked,
                headers={policy.PARK_REASON_HEADER: "rule_violation", policy.QUEUE_HEADER: origin},
                content_type="application/json",
                content_encoding="utf-8",
                retry=False,
            )
    return ids


def shown(html: str) -> list[str]:
    return EVENT_ID.findall(html)


def test_one_page_at_a_time_in_queue_order_with_the_total(server, client):
    exported = park(server, export_queue_name, 23, "export")
    statuses = park(server, status_queue_name, 4, "status")
    everything = exported + statuses

    first = client.get("/parked?per_page=10")
    assert first.status_code == 200, first.text[:500]
    assert shown(first.text) == everything[:10]
    assert "messages 1&ndash;10 of 27" in first.text
    assert 'rel="next" href="/parked?page=2&amp;per_page=10"' in first.text and 'rel="prev"' not in first.text

    second = client.get("/parked?page=2&per_page=10")
    assert shown(second.text) == everything[10:20]  # reading page 1 moved nothing
    assert 'rel="prev" href="/parked?page=1&amp;per_page=10"' in second.text

    third = client.get("/parked?page=3&per_page=10")  # the end of export's queue and status's
    assert shown(third.text) == everything[20:]
    assert "messages 21&ndash;27 of 27" in third.text and 'rel="next"' not in third.text

    again = client.get("/parked?per_page=10")
    assert shown(again.text) == everything[:10]  # the queues are as they were
    assert [m.event_id for m in parking.list_parked(server)] == everything


def test_a_page_reads_only_the_queues_it_lies_in(server):
    exported = park(server, export_queue_name, 12, "export")
    statuses = park(server, status_queue_name, 3, "status")
    first = parking.parked_page(server, 0, 5)
    assert [m.event_id for m in first.messages] == exported[:5]
    assert (first.total, first.read) == (15, 12)  # export's queue (a full turn keeps its order); status's not read
    last = parking.parked_page(server, 12, 5)
    assert [m.event_id for m in last.messages] == statuses
    assert last.read == 3  # export's queue lies wholly before the page: counted, not read
    middle = parking.parked_page(server, 5, 5)
    assert [m.event_id for m in middle.messages] == exported[5:10] and middle.read == 12
    assert [m.event_id for m in parking.list_parked(server)] == exported + statuses  # nothing moved
    assert parking.parked_count(server) == 15


def test_memory_holds_a_page_of_bodies_not_the_queue(server, client):
    pad = 512 * 1024
    ids = park(server, export_queue_name, 40, "big", pad=pad)  # 20 MiB parked
    tracemalloc.start()
    try:
        page = client.get("/parked?page=7&per_page=2")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert page.status_code == 200 and shown(page.text) == ids[12:14]
    assert "messages 13&ndash;14 of 40" in page.text
    # a page of two bodies and what is made of them (text, JSON, the HTML), not forty of them
    assert peak < 12 * pad * 2, f"peak {peak / 2**20:.1f} MiB for a page of two 0.5 MiB messages"
