"""The topology is declared idempotently, routes every event type to its role queue, and is the
same as deploy/rabbitmq/definitions.json."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from kombu import Producer

from iss_plugin.adapters.bus import topology as T
from iss_plugin.adapters.bus.codec import CONTENT_TYPE
from iss_plugin.adapters.bus.connection import make_kombu_connection
from iss_plugin.domain import events as E
from iss_plugin.settings import BusSettings

from .conftest import declare_all, drain, rabbitmqctl, wait_for

pytestmark = pytest.mark.rabbitmq
DEFINITIONS = Path(__file__).resolve().parents[3] / "deploy" / "rabbitmq" / "definitions.json"


def test_declaring_twice_is_idempotent(any_bus):
    first = declare_all(any_bus, export=True, status_for=["src"], import_for=["dst"])
    second = declare_all(any_bus, export=True, status_for=["src"], import_for=["dst"])
    assert first == second


def test_queue_arguments_on_the_broker(amqp_bus):
    topology = declare_all(amqp_bus, export=True)
    vhost = amqp_bus.url.rsplit("/", 1)[1]
    out = rabbitmqctl("list_queues", "-p", vhost, "--no-table-headers", "--quiet", "name", "type", "arguments").stdout
    rows = {line.split("\t")[0]: line for line in out.splitlines() if line.startswith(amqp_bus.prefix)}
    q = topology.queue(T.export_queue_name(amqp_bus.prefix))
    assert set(rows) == {q.name, q.parked, *(name for _, name in q.retry), topology.unroutable_queue}
    assert all("quorum" in row for row in rows.values())
    assert '"x-message-ttl",300' in rows[f"{q.name}.retry.300ms"]
    assert '"x-delivery-limit",20' in rows[q.name]


def test_each_event_type_reaches_its_role_queue(any_bus):
    topology = declare_all(any_bus, export=True, status_for=["src"], import_for=["dst", "other"])
    sends = {
        E.routing_key(E.CONTENT_VIEW_PUBLISHED): T.export_queue_name(any_bus.prefix),
        E.routing_key(E.REPOSITORY_CHANGED): T.export_queue_name(any_bus.prefix),
        E.routing_key(E.EXPORT_REQUESTED): T.export_queue_name(any_bus.prefix),
        E.routing_key(E.BUNDLE_READY, "dst"): T.import_queue_name(any_bus.prefix, "dst"),
        E.routing_key(E.BUNDLE_IMPORTED, "src"): T.status_queue_name(any_bus.prefix, "src"),
        E.routing_key(E.BUNDLE_REJECTED, "src"): T.status_queue_name(any_bus.prefix, "src"),
    }
    with make_kombu_connection(any_bus) as conn:
        producer = Producer(conn.channel())
        for key in sends:
            producer.publish(
                key.encode(), exchange=any_bus.exchange, routing_key=key, content_type=CONTENT_TYPE, retry=False
            )
    received = {}
    for name in set(sends.values()) | {T.import_queue_name(any_bus.prefix, "other")}:
        for m in drain(any_bus, name, expect=3 if name.endswith(".export") else None, timeout=5):
            body = m.body if isinstance(m.body, str) else m.body.decode()
            received[body] = name
    assert received == sends
    assert topology.queue(T.import_queue_name(any_bus.prefix, "other")).routing_keys == ("iss.bundle.ready.other",)


def test_definitions_file_is_the_generated_topology():
    generated = T.definitions(
        T.build(BusSettings(), export_for=["source-1"], status_for=["source-1"], import_for=["destination-1"])
    )
    assert json.loads(DEFINITIONS.read_text()) == generated


def test_definitions_imported_by_an_operator_agree_with_declare(rabbit_vhost):
    """Import deploy/rabbitmq/definitions.json into the test vhost, then declare: no argument conflicts."""
    vhost = rabbit_vhost.rsplit("/", 1)[1]
    defs = json.loads(DEFINITIONS.read_text())
    for section in defs.values():
        for item in section:
            item["vhost"] = vhost
    # the broker reads a file path itself (as its own user): hand the JSON over standard input
    subprocess.run(
        ["rabbitmqctl", "import_definitions"],
        input=json.dumps(defs),
        text=True,
        capture_output=True,
        timeout=120,
        check=True,
    )
    wanted = {q["name"] for q in defs["queues"]}

    def listed() -> set[str]:
        return set(rabbitmqctl("list_queues", "-p", vhost, "--no-table-headers", "--quiet", "name").stdout.split())

    assert wait_for(lambda: wanted <= listed(), timeout=60)  # the import is asynchronous
    bus = BusSettings(url=rabbit_vhost)  # the defaults the file was generated with
    declare_all(
        bus, export_for=["source-1"], status_for=["source-1"], import_for=["destination-1"]
    )  # no PRECONDITION_FAILED
    assert listed() >= wanted
