"""Two sites on one machine: each its own RabbitMQ vhost (standing in for its own broker) and its
own PostgreSQL database, joined only by dynamic shovels (iss_plugin.adapters.bus.links). Workers run
as processes. Three views propagate; mid-run both shovels are deleted (what is sent meanwhile waits
in the link queues), an export worker is SIGKILLed, then the shovels are made again: the destination
ends with every version exactly once.

Enables rabbitmq_shovel (idempotent; never restarts the broker); the vhosts, and with them the
shovels, are deleted at the end."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections import Counter

import pika
import pytest

from consumers.demo import CUSTOM_PRODUCT, ORG
from iss_plugin.adapters.bus.links import Side, link_definitions
from iss_plugin.adapters.bus.topology import export_queue_name, import_queue_name, status_queue_name
from iss_plugin.adapters.db import models as m
from iss_plugin.domain import events as ev
from iss_plugin.services import content_views, subscriptions
from tests.integration.bus.conftest import RABBIT_HOST, RABBIT_PORT, rabbitmqctl

from .conftest import (
    ACTOR,
    LivePair,
    Processes,
    _another_database,
    imports,
    make_pair,
    outbox,
    versions,
    write_config,
)
from .test_embedded import change_source

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]
VIEWS = ["base", "view1", "view2"]
T = 120


@pytest.fixture
def two_vhosts():
    import subprocess

    subprocess.run(
        ["rabbitmq-plugins", "enable", "rabbitmq_shovel", "rabbitmq_shovel_management"],
        capture_output=True,
        timeout=120,
        check=True,
    )
    names = [f"iss-site-{uuid.uuid4().hex[:10]}" for _ in range(2)]
    try:
        for v in names:
            rabbitmqctl("add_vhost", v)
            rabbitmqctl("set_permissions", "-p", v, "guest", ".*", ".*", ".*")
        yield names
    finally:
        # shovels first: a vhost deleted under a running shovel of the other one leaves the shovel
        # failing against it (seen here with a broker that then hung on the next add_vhost)
        for v in names:
            listed = rabbitmqctl("list_parameters", "-p", v, "--quiet", "--no-table-headers", check=False)
            for line in listed.stdout.splitlines():
                component, _, rest = line.partition("\t")
                if component == "shovel":
                    rabbitmqctl("clear_parameter", "-p", v, "shovel", rest.split("\t", 1)[0], check=False)
        for v in names:
            rabbitmqctl("delete_vhost", v, check=False)


def _uri(vhost: str) -> str:
    return f"amqp://guest:guest@{RABBIT_HOST}:{RABBIT_PORT}/{vhost}"


def _apply(defs: dict) -> None:
    """Declare a side's link queue and bindings (AMQP) and set its shovel (rabbitmqctl)."""
    conn = pika.BlockingConnection(pika.URLParameters(_uri(defs["queues"][0]["vhost"])))
    try:
        ch = conn.channel()
        for q in defs["queues"]:
            ch.queue_declare(q["name"], durable=True, arguments=q["arguments"])
        for b in defs["bindings"]:
            ch.queue_bind(b["destination"], b["source"], routing_key=b["routing_key"])
    finally:
        conn.close()
    _set_shovels(defs)


def _set_shovels(defs: dict) -> None:
    for p in defs["parameters"]:
        rabbitmqctl("set_parameter", "-p", p["vhost"], "shovel", p["name"], json.dumps(p["value"]))


def _clear_shovels(defs: dict) -> None:
    for p in defs["parameters"]:
        rabbitmqctl("clear_parameter", "-p", p["vhost"], "shovel", p["name"], check=False)


def test_two_sites_joined_by_shovels_every_version_once_across_a_shovel_restart(tmp_path, two_vhosts, request):
    src_db, dst_db = request.getfixturevalue("postgres_url"), _another_database(request)
    tag = uuid.uuid4().hex[:8]
    bus = {"exchange": f"s-{tag}", "prefix": f"s-{tag}", "retry_delays_ms": (200, 400), "max_attempts": 3}
    bus |= {"heartbeat": 10, "confirm_timeout": 10.0}
    src_bus, dst_bus = ({**bus, "url": _uri(v)} for v in two_vhosts)
    pair = make_pair(tmp_path, src_bus, src_db=src_db, dst_db=dst_db)
    live = LivePair(
        pair.root,
        pair.src,
        pair.dst,
        src_bus,
        src_config=write_config(tmp_path, "source", src_db, src_bus),
        dst_config=write_config(tmp_path, "destination", dst_db, dst_bus),
        procs=Processes(tmp_path / "logs"),
    )
    request.addfinalizer(live.close)
    request.addfinalizer(live.procs.stop_all)
    src, dst = live.src, live.dst
    for view in VIEWS[1:]:
        content_views.create_content_view(src.uow(), ORG, view, view, True, [f"{CUSTOM_PRODUCT}/utils"], ACTOR)
        subscriptions.subscribe(src.uow(), dst.server_id, ORG, view, None, ACTOR)

    live.role("source", "relay", name="source-relay")
    exporters = [live.role("source", "worker", "export", name=f"source-export-{i}") for i in range(2)]
    live.role("source", "worker", "status", name="source-status")
    live.role("destination", "run", "--role", "relay", name="destination-relay")
    for i in range(2):
        live.role("destination", "worker", "import", name=f"destination-import-{i}")
    prefix = bus["prefix"]
    src_queues = [export_queue_name(prefix), status_queue_name(prefix, src.server_id)]
    live.wait(lambda: all(_consumers(_uri(two_vhosts[0]), q) >= 1 for q in src_queues), T, "source workers")
    dst_queue = import_queue_name(prefix, dst.server_id)
    live.wait(lambda: _consumers(_uri(two_vhosts[1]), dst_queue) >= 2, T, "destination workers")
    src_side, dst_side = link_definitions(
        src.server_id,
        dst.server_id,
        Side(_uri(two_vhosts[0]), two_vhosts[0]),
        Side(_uri(two_vhosts[1]), two_vhosts[1]),
        exchange=bus["exchange"],
        prefix=prefix,
    )
    _apply(src_side)
    _apply(dst_side)

    for view in VIEWS:
        content_views.publish(src.uow(), ORG, view, None, ACTOR, src.server_id)
    live.wait(lambda: any(versions(dst, v) for v in VIEWS), T, "a first version across the link")
    _clear_shovels(src_side)  # the link goes down mid-run
    _clear_shovels(dst_side)
    change_source(live, "second", add=1, remove=0)
    for view in VIEWS:
        content_views.publish(src.uow(), ORG, view, None, ACTOR, src.server_id)
    live.procs.kill(exporters[0], signal.SIGKILL)
    time.sleep(2)
    assert not all(versions(dst, v) == ["1.0", "2.0"] for v in VIEWS)  # the link was really down
    _set_shovels(src_side)
    _set_shovels(dst_side)

    live.wait(lambda: all(versions(dst, v) == ["1.0", "2.0"] for v in VIEWS), T, "every version across the link")
    live.wait(lambda: _settled(src), T, "every acknowledgement back across the link")
    time.sleep(1.0)
    done = Counter((i.content_view, i.version) for i in imports(dst, state="imported"))
    assert done == Counter({(v, n): 1 for v in VIEWS for n in ("1.0", "2.0")})
    announced = Counter(
        (e.body["data"]["content_view"], e.body["data"]["version"]) for e in outbox(src, ev.BUNDLE_READY)
    )
    assert announced == done


def _settled(app) -> bool:
    from sqlalchemy import select

    with app.session_factory() as s:
        subs = list(s.scalars(select(m.Subscription)))
    return len(subs) == len(VIEWS) and all(x.acknowledged == "2.0" and x.in_flight is None for x in subs)


def _consumers(uri: str, queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(uri))
    try:
        return conn.channel().queue_declare(queue, passive=True).method.consumer_count
    except pika.exceptions.ChannelClosedByBroker:
        return 0
    finally:
        if conn.is_open:
            conn.close()


def test_a_pull_request_crosses_the_link_to_a_source_on_another_broker(tmp_path, two_vhosts):
    """test_pull_requests.crosses_the_link, run here with the other shovel test: in CI, shovels set
    up right after test_processes restarted the shared broker hung it (add_vhost for minutes)."""
    from .test_pull_requests import crosses_the_link

    crosses_the_link(tmp_path, two_vhosts)
