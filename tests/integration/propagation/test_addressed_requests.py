"""A destination's export request is addressed to one source (iss.export.requested.<source>).

Real RabbitMQ (a throwaway vhost), SQLite, every server in this process (consumers.run.Runtime):
two sources on one broker (one exchange, each its own prefix and so its own export queue) and a
destination that trusts both for ACME and is subscribed to both. A request addressed to one is
never seen by the other; the link a destination's broker has toward a source carries only what is
addressed to that source; a request that names no source, an unknown one, or one of several
without --source is refused with nothing published."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pika
import pytest
from click.testing import CliRunner

from consumers.demo import ORG, make_server, prepare_destination, prepare_source
from iss_plugin.adapters.bundles.signing import Signer
from iss_plugin.adapters.bus.links import Side, link_definitions, link_queue_name
from iss_plugin.adapters.bus.topology import export_queue_name
from iss_plugin.adapters.db import models as m
from iss_plugin.bootstrap import App
from iss_plugin.cli.main import build_cli
from iss_plugin.domain import events as ev
from iss_plugin.services import catalog, propagation
from tests.integration.bus.conftest import rabbit_vhost, session_vhost  # noqa: F401 - the vhost fixtures

from .conftest import ACTOR, add_subscriber, count, outbox, publish, send_raw, wait_until

pytestmark = pytest.mark.rabbitmq
T = 60


@dataclass
class Sites:
    a: App  # server id "source": the destination trusts it as "source" (consumers.demo)
    b: App  # server id "source-b", trusted as "source-b"
    dst: App
    buses: dict[str, dict]
    config: Path  # the destination's settings file, for the CLI


@contextmanager
def two_sources(root: Path, url: str) -> Iterator[Sites]:
    tag = uuid.uuid4().hex[:10]
    buses = {
        name: {"url": url, "exchange": f"addr-{tag}", "prefix": f"addr-{tag}-{name}", "retry_delays_ms": (200, 400)}
        for name in ("source", "source-b", "destination")
    }
    a = make_server(root, "source", bus=buses["source"])
    b = make_server(root, "source-b", bus=buses["source-b"])
    dst = make_server(root, "destination", bus=buses["destination"])
    try:
        prepare_source(a, root / "rpms-a", 1, ACTOR)
        prepare_source(b, root / "rpms-b", 1, ACTOR)
        prepare_destination(dst, a, root, ACTOR)  # trusts a as "source", for ACME and ACME-Lab
        catalog.add_trusted_source(dst.uow(), "source-b", b.signer.public_pem, [ORG], ACTOR)
        add_subscriber(a, dst, root)
        add_subscriber(b, dst, root)
        publish(a)
        publish(b)
        config = root / "destination.toml"
        config.write_text(f'data_dir = "{dst.settings.data_dir}"\nserver_id = "{dst.server_id}"\n')
        yield Sites(a, b, dst, buses, config)
    finally:
        for app in (a, b, dst):
            app.close()


@pytest.fixture
def sites(tmp_path, rabbit_vhost):  # noqa: F811 - the fixture imported above
    with two_sources(tmp_path, rabbit_vhost) as s:
        yield s


def request(config: Path, *extra: str, organization: str = ORG):
    args = ["--config", str(config), "--output", "json", "content-import", "request", "--organization", organization]
    args += extra
    return CliRunner().invoke(build_cli(), args, catch_exceptions=False)


def trust(config: Path, *args: str):
    return CliRunner().invoke(build_cli(), ["--config", str(config), "--output", "json", "trust", *args])


def handled(app: App, event_id: str) -> int:
    return count(app, m.ProcessedEvent, m.ProcessedEvent.event_id == event_id, m.ProcessedEvent.consumer == "export")


def test_a_request_addressed_to_one_source_is_not_seen_by_another_on_the_same_broker(sites):
    from consumers.run import Runtime

    runtimes = [
        Runtime(sites.a, ("export",), relay_poll=0.05).start(),
        Runtime(sites.b, ("export",), relay_poll=0.05).start(),
        Runtime(sites.dst, ("relay",), relay_poll=0.05).start(),
    ]
    try:
        for bus in (sites.buses["source"], sites.buses["source-b"]):
            queue = export_queue_name(bus["prefix"])
            wait_until(lambda b=bus, q=queue: _consumers(b["url"], q) >= 1, T, "the export workers")
        to_a = request(sites.config, "--content-view", "base", "--full", "--source", "source")
        assert to_a.exit_code == 0, to_a.output
        asked_a = json.loads(to_a.stdout)
        assert asked_a["source"] == "source" and asked_a["source_server"] == "source"
        to_b = request(sites.config, "--content-view", "base", "--full", "--source", "source-b")
        assert to_b.exit_code == 0, to_b.output
        asked_b = json.loads(to_b.stdout)

        wait_until(lambda: handled(sites.a, asked_a["event_id"]) == 1, T, "source to handle the request to it")
        wait_until(lambda: handled(sites.b, asked_b["event_id"]) == 1, T, "source-b to handle the request to it")
    finally:
        for r in runtimes:
            r.shutdown()
    # the relay published the request to A before the one to B: had B's queue received it, B
    # would have handled it first (one queue, in order)
    assert handled(sites.b, asked_a["event_id"]) == 0 and handled(sites.a, asked_b["event_id"]) == 0
    sent = {e.event_id: e.routing_key for e in outbox(sites.dst, ev.EXPORT_REQUESTED)}
    assert sent == {
        asked_a["event_id"]: "iss.export.requested.source",
        asked_b["event_id"]: "iss.export.requested.source-b",
    }
    for app in (sites.a, sites.b):  # each answered its own request, once (a bundle file: no web_base_url)
        ready = [e.body["data"] for e in outbox(app, ev.BUNDLE_READY)]
        assert [(r["source_server"], r["destination"]) for r in ready] == [(app.server_id, "destination")]
    for name in ("source", "source-b"):
        assert _depth(sites.buses[name]["url"], export_queue_name(sites.buses[name]["prefix"])) == 0

    # delivered to B anyway (a binding made by hand, a message moved by hand): B does not act on it
    envelope = next(e.body for e in outbox(sites.dst, ev.EXPORT_REQUESTED) if e.event_id == asked_a["event_id"])
    envelope = {**envelope, "id": str(uuid.uuid4())}  # not a redelivery B has seen
    assert propagation.on_export_requested(sites.b.uow(), envelope, sites.b.source_context()) == []
    assert len(outbox(sites.b, ev.BUNDLE_READY)) == 1 and handled(sites.b, envelope["id"]) == 0


def test_an_unaddressed_request_of_an_older_destination_is_still_answered(sites):
    """Compatibility: `iss.export.requested` without a source (a destination older than addressed
    requests) still reaches a source's export queue; it acts for its own subscriptions, as before."""
    from consumers.run import Runtime

    data = ev.export_requested(organization=ORG, destination="destination", reason="manual", content_view="base")
    envelope = ev.make_envelope(ev.EXPORT_REQUESTED, ev.source_for_server("destination"), data)
    runtime = Runtime(sites.a, ("export",), relay_poll=0.05).start()
    bus = sites.buses["source"]
    try:
        wait_until(lambda: _consumers(bus["url"], export_queue_name(bus["prefix"])) >= 1, T, "the export worker")
        send_raw(sites.buses["destination"], envelope, ev.UNADDRESSED_EXPORT_REQUESTED)
        wait_until(lambda: handled(sites.a, envelope["id"]) == 1, T, "source to handle the unaddressed request")
    finally:
        runtime.shutdown()
    assert [e.body["data"]["destination"] for e in outbox(sites.a, ev.BUNDLE_READY)] == ["destination"]


def test_a_request_without_a_clear_source_is_refused_and_nothing_is_published(sites):
    ambiguous = request(sites.config, "--content-view", "base", "--full")
    assert ambiguous.exit_code == 2
    assert "organization 'ACME' is fed by several trusted sources here" in ambiguous.output
    assert "source (server source, into ACME)" in ambiguous.output and "source-b (server source-b" in ambiguous.output
    assert "--source NAME" in ambiguous.output and "nothing was requested" in ambiguous.output

    unknown = request(sites.config, "--content-view", "base", "--full", "--source", "nope")
    assert unknown.exit_code == 2
    assert "--source 'nope' is not a trusted source here" in unknown.output and "iss trust list" in unknown.output

    lab = request(sites.config, "--content-view", "base", "--full", "--source", "source-b", organization="ACME-Lab")
    assert lab.exit_code == 2 and "trusted source 'source-b' does not map organization 'ACME-Lab'" in lab.output
    assert "iss trust add --name source-b" in lab.output

    other_key = Signer.generate().public_pem
    catalog.add_trusted_source(sites.dst.uow(), "b.example", other_key, [ORG], ACTOR)  # no server id
    dotted = request(sites.config, "--content-view", "base", "--full", "--source", "b.example")
    assert dotted.exit_code == 2 and "trusted source 'b.example' has no server id" in dotted.output
    assert "--server-id ID" in dotted.output

    both = request(sites.config, "--content-view", "base", "--repository", "p/r")
    assert both.exit_code == 2 and "exactly one of --content-view CV or --repository PRODUCT/REPO" in both.output
    bad_path = request(sites.config, "--repository", "no-slash", "--source", "source")
    assert bad_path.exit_code == 2 and "give PRODUCT/REPOSITORY" in bad_path.output
    assert outbox(sites.dst, ev.EXPORT_REQUESTED) == []

    # the server id a trusted source is asked under: `iss trust add --server-id` (else its name),
    # here a second entry (another key: a key rotation) of the server source-b
    key = sites.config.parent / "other.pub"
    key.write_text(other_key)
    add = ["add", "--name", "b.example", "--public-key", str(key), "--organization", ORG, "--server-id"]
    bad = trust(sites.config, *add, "a.b")
    assert bad.exit_code == 2 and "--server-id 'a.b' is not valid" in bad.output
    assert trust(sites.config, *add, "source-b").exit_code == 0
    listed = {t["name"]: t["server_id"] for t in json.loads(trust(sites.config, "list").stdout)}
    assert listed == {"b.example": "source-b", "source": "source", "source-b": "source-b"}
    still = request(sites.config, "--content-view", "base", "--full")  # two servers map ACME still
    assert still.exit_code == 2 and "b.example (server source-b, into ACME)" in still.output
    assert outbox(sites.dst, ev.EXPORT_REQUESTED) == []
    rotated = request(sites.config, "--content-view", "base", "--full", "--source", "b.example")
    assert rotated.exit_code == 0, rotated.output
    assert json.loads(rotated.stdout)["source_server"] == "source-b"
    assert [e.routing_key for e in outbox(sites.dst, ev.EXPORT_REQUESTED)] == ["iss.export.requested.source-b"]


def test_a_link_carries_only_requests_addressed_to_its_upstream_source(rabbit_vhost):  # noqa: F811
    """The destination site's broker with both links of two sites that feed each other ("up" a
    source of "down" and "down" a source of "up"): its link queue toward "up" takes a request
    addressed to "up", not one addressed to "down" (this side: it came in over the other link and
    must end here), nor an older destination's unaddressed one. The shovel moves only that queue."""
    from iss_plugin.adapters.bus.connection import make_kombu_connection
    from iss_plugin.adapters.bus.topology import build, declare
    from iss_plugin.settings import BusSettings

    tag = uuid.uuid4().hex[:10]
    bus = {"url": rabbit_vhost, "exchange": f"link-{tag}", "prefix": f"link-{tag}"}
    vhost = rabbit_vhost.rsplit("/", 1)[1]
    here, there = Side(rabbit_vhost, vhost), Side("amqp://elsewhere/up", "up")
    _, down_side = link_definitions("up", "down", there, here, exchange=bus["exchange"], prefix=bus["prefix"])
    up_side, _ = link_definitions("down", "up", here, there, exchange=bus["exchange"], prefix=bus["prefix"])
    settings = BusSettings(**bus)
    with make_kombu_connection(settings) as conn:  # "down" is a source too: its export queue is here
        declare(conn, build(settings, export_for=["down"]))
    conn = pika.BlockingConnection(pika.URLParameters(rabbit_vhost))
    try:
        ch = conn.channel()
        for side in (down_side, up_side):  # no shovels: what a link queue holds is what its shovel carries
            for q in side["queues"]:
                ch.queue_declare(q["name"], durable=True, arguments=q["arguments"])
            for b in side["bindings"]:
                ch.queue_bind(b["destination"], b["source"], routing_key=b["routing_key"])
    finally:
        conn.close()
    link = link_queue_name(bus["prefix"], "up")
    assert {q["name"] for side in (down_side, up_side) for q in side["queues"]} == {link}

    def request_to(source: str | None) -> dict:
        data = ev.export_requested(
            organization=ORG, destination="down" if source == "up" else "up", reason="requested", content_view="base",
            source_server=source,
        )  # fmt: skip
        return ev.make_envelope(ev.EXPORT_REQUESTED, "urn:iss:server:x", data)

    upstream, local, unaddressed = request_to("up"), request_to("down"), request_to(None)
    send_raw(bus, upstream, ev.routing_key(ev.EXPORT_REQUESTED, "up"))
    send_raw(bus, local, ev.routing_key(ev.EXPORT_REQUESTED, "down"))
    send_raw(bus, unaddressed, ev.UNADDRESSED_EXPORT_REQUESTED)

    carried = _bodies(rabbit_vhost, link)
    assert [b["id"] for b in carried] == [upstream["id"]]
    ended_here = _bodies(rabbit_vhost, export_queue_name(bus["prefix"]))
    assert [b["id"] for b in ended_here] == [local["id"], unaddressed["id"]]


def _bodies(url: str, queue: str) -> list[dict]:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        out = []
        while True:
            method, _props, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                return out
            out.append(json.loads(body))
    finally:
        conn.close()


def _consumers(url: str, queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return conn.channel().queue_declare(queue, passive=True).method.consumer_count
    except pika.exceptions.ChannelClosedByBroker:
        return 0
    finally:
        if conn.is_open:
            conn.close()


def _depth(url: str, queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return conn.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        conn.close()
