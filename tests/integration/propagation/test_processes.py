"""Automatic propagation on RabbitMQ and PostgreSQL, every role in its own `iss` process.

Each test gets a throwaway vhost (shared by the session), a unique exchange and queue prefix, and a
throwaway database per server; the role processes are killed at the end (by their own pids).
Under CI a missing RabbitMQ or PostgreSQL fails the run (tests/conftest.py require_service)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from consumers.demo import ORG
from iss_plugin.adapters.bus import policy
from iss_plugin.adapters.bus.relay import relay_from_settings
from iss_plugin.adapters.bus.topology import export_queue_name, import_queue_name, status_queue_name
from iss_plugin.adapters.db import models as m
from iss_plugin.domain import events as ev
from iss_plugin.services import content_views
from iss_plugin.services.catalog import backend_key
from iss_plugin.services.outbox import pending
from iss_plugin.settings import BusSettings
from tests.integration.bus.conftest import drain, rabbitmqctl

from .conftest import ROOT, count, exports, imports, outbox, pins, publish, send_raw, subscription, versions
from .test_embedded import change_source

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]
T = 60


def start_source(live, *, exporters: int = 1, relay: bool = True) -> None:
    if relay:
        live.role("source", "relay", name="source-relay")
    for i in range(exporters):
        live.role("source", "worker", "export", name=f"source-export-{i}")
    live.role("source", "worker", "status", name="source-status")


def start_destination(live, *, importers: int = 1, env: dict | None = None) -> None:
    live.role("destination", "run", "--role", "relay", name="destination-relay")
    for i in range(importers):
        live.role("destination", "worker", "import", name=f"destination-import-{i}", env=env)


def consumers_ready(live, *queues: str) -> bool:
    """Every queue exists with at least one consumer (the workers declared and subscribed)."""
    return all(live.consumers(q) >= 1 for q in queues)


def queues(live) -> tuple[str, str, str]:
    prefix = live.bus["prefix"]
    return (
        export_queue_name(prefix),
        import_queue_name(prefix, live.dst.server_id),
        status_queue_name(prefix, live.src.server_id),
    )


def test_flow_with_two_export_and_two_import_workers_does_each_thing_once(live):
    src, dst = live.src, live.dst
    start_source(live, exporters=2)
    start_destination(live, importers=2)
    live.wait(lambda: consumers_ready(live, *queues(live)), T, "every worker consuming")

    publish(src)
    live.wait(lambda: versions(dst) == ["1.0"], T, "1.0 on the destination")
    change_source(live, "second")
    publish(src)
    live.wait(lambda: versions(dst) == ["1.0", "2.0"], T, "2.0 on the destination")
    assert [(e.version, e.kind, e.base) for e in exports(src)] == [("1.0", "full", None), ("2.0", "incremental", "1.0")]
    assert pins(dst, "2.0") == pins(src, "2.0")

    burst = 4
    event_ids = []
    for i in range(burst):
        change_source(live, f"burst{i}", add=1, remove=0)
        event_ids.append(publish(src)["event_id"])
    want = [f"{n}.0" for n in range(1, 3 + burst)]
    live.wait(lambda: versions(dst) == want, T, f"{burst} more versions on the destination")
    live.wait(
        lambda: subscription(src).acknowledged == want[-1] and subscription(src).in_flight is None,
        T,
        "the last acknowledgement",
    )
    time.sleep(1.0)  # anything still on its way would show up now

    assert [e.version for e in exports(src)] == want  # each version exported once to the destination
    assert [(i.version, i.state) for i in imports(dst)] == [(v, "imported") for v in want]
    assert versions(dst) == want
    for v in want:
        assert pins(dst, v) == pins(src, v)
    for event_id in event_ids:  # each publish handled by exactly one export worker
        assert count(src, m.ProcessedEvent, m.ProcessedEvent.event_id == event_id) == 1
    bus = BusSettings(**live.bus)
    for q in queues(live):
        assert drain(bus, f"{q}.parked") == []


def test_import_worker_killed_before_its_commit_imports_once_after_restart(live, tmp_path):
    src, dst = live.src, live.dst
    frozen = tmp_path / "import-frozen"
    start_source(live)
    start_destination(live, env={"ISS_FAILPOINT": "import.before_commit", "ISS_FAILPOINT_FILE": str(frozen)})
    live.wait(lambda: consumers_ready(live, *queues(live)), T, "every worker consuming")

    publish(src)
    live.wait(frozen.exists, T, "the import worker at its fail point (files copied, nothing committed)")
    assert versions(dst) == [] and imports(dst) == []
    worker = next(p for p in live.procs.procs if p.name == "destination-import-0")
    live.procs.kill(worker, signal.SIGKILL)

    live.role("destination", "worker", "import", name="destination-import-restarted")
    live.wait(lambda: versions(dst) == ["1.0"], T, "1.0 on the destination after the restart")
    live.wait(lambda: subscription(src).acknowledged == "1.0", T, "the acknowledgement")
    assert versions(dst) == ["1.0"]
    assert pins(dst, "1.0") == pins(src, "1.0")
    assert [(i.version, i.state) for i in imports(dst)] == [("1.0", "imported")]
    assert len(outbox(dst, ev.BUNDLE_IMPORTED)) == 1
    assert len(exports(src)) == 1
    _every_package_file_is_in_the_store(dst)


def _every_package_file_is_in_the_store(app) -> None:
    with app.uow() as uow:
        for v in content_views.list_versions(app.uow(), ORG, "base"):
            for r in v["repositories"]:
                key = backend_key(ORG, r["product"], r["repository"])
                packages = uow.backend.list_packages(key, r["backend_version"])
                assert len(packages) == r["package_count"]
                missing = [p.sha256 for p in packages if not uow.backend.blobs.path(p.sha256).is_file()]
                assert missing == [], f"{key}: {len(missing)} package files missing from the store"


def test_poison_bundle_ready_parks_with_its_reason_after_max_attempts(live):
    dst = live.dst
    start_destination(live)
    _, import_queue, _ = queues(live)
    live.wait(lambda: consumers_ready(live, import_queue), T, "the import worker consuming")
    envelope = ev.make_envelope(
        ev.BUNDLE_READY,
        ev.source_for_server("source"),
        {
            "bundle_id": "00000000-0000-4000-8000-000000000001",
            "source_server": "source",
            "destination": dst.server_id,
            "organization": "ACME",
            "kind": "full",
            "location": "file:///nonexistent/iss-bundle.tar.gz",
            "format": "tgz",
            "size": 10,
            "base": None,
            "content_view": "base",
            "version": "1.0",
            "repositories": [
                {
                    "product": "acme-tools",
                    "repository": "utils",
                    "package_count": 1,
                    "package_set_digest": "sha256:" + "0" * 64,
                }
            ],
        },
    )
    send_raw(live.bus, envelope, ev.routing_key(ev.BUNDLE_READY, dst.server_id))
    send_raw(live.bus, b"\xff\xfe this is not an event", ev.routing_key(ev.BUNDLE_READY, dst.server_id))

    parked = drain(BusSettings(**live.bus), f"{import_queue}.parked", expect=2, timeout=T)
    reasons = {(m.headers or {}).get(policy.PARK_REASON_HEADER): m for m in parked}
    assert set(reasons) == {"decode", "max_attempts"}, [m.headers for m in parked]
    poison = reasons["max_attempts"].headers
    assert poison[policy.ATTEMPTS_HEADER] == live.bus["max_attempts"]
    assert "is not there" in poison[policy.ERROR_HEADER]
    assert poison[policy.QUEUE_HEADER] == import_queue
    undecodable = reasons["decode"]
    raw = (
        undecodable.body if isinstance(undecodable.body, bytes) else undecodable.body.encode("utf-8", "surrogateescape")
    )
    assert raw.startswith(b"\xff\xfe") or "not an event" in str(undecodable.body)
    assert undecodable.headers[policy.ATTEMPTS_HEADER] == 1  # decode errors park at once
    assert imports(dst) == [] and versions(dst) == []
    assert live.queue_depth(import_queue) == (0, 0)


def test_relay_killed_between_publish_and_mark_sent_duplicate_bundle_is_absorbed(live):
    """The source relay dies after the broker confirmed bundle.ready and before it marked the row
    sent: the next relay sends it again. The destination imports once and answers once."""
    src, dst = live.src, live.dst
    start_source(live, relay=False)
    start_destination(live)
    export_q, import_q, status_q = queues(live)
    live.wait(lambda: consumers_ready(live, export_q, import_q, status_q), T, "every worker consuming")

    relay = relay_from_settings(src.settings, src.session_factory)
    try:
        publish(src)
        relay.run_once()  # the publish event (and the uploads' events) go out normally
    finally:
        relay.close()
    live.wait(lambda: len(outbox(src, ev.BUNDLE_READY)) == 1, T, "the export worker's bundle.ready")

    child = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests/integration/bus/relay_child.py"),
            src.settings.db_url,
            live.bus["url"],
            live.bus["exchange"],
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        line = child.stdout.readline()
        assert line.strip() == "CONFIRMED 1", line
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    assert outbox(src, ev.BUNDLE_READY)[0].sent_at is None  # confirmed by the broker, never marked
    live.wait(lambda: versions(dst) == ["1.0"], T, "1.0 on the destination")

    live.role("source", "relay", name="source-relay")  # sends bundle.ready again: a duplicate
    live.wait(lambda: outbox(src, ev.BUNDLE_READY)[0].sent_at is not None, T, "the duplicate sent")
    live.wait(lambda: live.queue_depth(import_q) == (0, 0), T, "the duplicate consumed")
    live.wait(lambda: subscription(src).acknowledged == "1.0", T, "the acknowledgement")

    assert [(i.version, i.state) for i in imports(dst)] == [("1.0", "imported")]  # no second import, not even a no-op
    assert versions(dst) == ["1.0"]
    assert len(outbox(dst, ev.BUNDLE_IMPORTED)) == 1
    assert count(dst, m.ProcessedEvent, m.ProcessedEvent.consumer == "import") == 1
    assert len(exports(src)) == 1
    assert drain(BusSettings(**live.bus), f"{import_q}.parked") == []


@pytest.mark.broker_restart
@pytest.mark.slow
def test_broker_restart_during_a_flow_loses_nothing(live):
    src, dst = live.src, live.dst
    start_source(live)
    start_destination(live)
    live.wait(lambda: consumers_ready(live, *queues(live)), T, "every worker consuming")

    publish(src)
    live.wait(lambda: versions(dst) == ["1.0"], T, "1.0 on the destination")
    n = 3
    for i in range(n):
        change_source(live, f"during{i}", add=1, remove=0)
        publish(src)
    live.wait(lambda: len(exports(src)) >= 2, T, "the flow under way")  # 2.0 exported, more to come
    rabbitmqctl("stop_app")
    try:
        for i in range(2):  # events written while the broker is down wait in the outbox
            change_source(live, f"down{i}", add=1, remove=0)
            publish(src)
        time.sleep(2)
    finally:
        rabbitmqctl("start_app")  # always: the broker is shared
        rabbitmqctl("await_startup", check=False)
    want = [f"{v}.0" for v in range(1, 2 + n + 2)]
    live.wait(lambda: versions(dst) == want, 120, "every version on the destination after the restart")
    live.wait(lambda: subscription(src).acknowledged == want[-1], T, "the last acknowledgement")
    for v in want:
        assert pins(dst, v) == pins(src, v)
    assert [e.version for e in exports(src)] == want
    assert [(i.version, i.state) for i in imports(dst) if i.state == "imported"] == [(v, "imported") for v in want]
    live.wait(lambda: _pending(src) == 0, T, "the source outbox drained")
    live.wait(lambda: _pending(dst) == 0, T, "the destination outbox drained")
    bus = BusSettings(**live.bus)
    for q in queues(live):
        assert drain(bus, f"{q}.parked") == []


def _pending(app) -> int:
    with app.session_factory() as s:
        return pending(s)[0]
