"""Propagation fixtures: a source and a destination server.

Embedded: two `App`s in this process on kombu memory:// (a unique exchange and prefix per test)
and SQLite, driven by `consumers.run.Runtime` like `iss demo`.

Real services: two servers, each with a throwaway PostgreSQL database, on a throwaway RabbitMQ
vhost (tests/integration/bus/conftest.py), every role in its own `iss` process. Processes,
vhosts and databases are removed at the end whatever happens."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import func, select

from consumers.demo import ORG, make_server, prepare_destination, prepare_source
from iss_plugin.adapters.db import models as m
from iss_plugin.bootstrap import App
from iss_plugin.services import content_views, subscriptions
from tests.conftest import IN_CI
from tests.integration.bus.conftest import rabbit_vhost, session_vhost, wait_for  # noqa: F401 - the vhost fixtures, shared

ROOT = Path(__file__).resolve().parents[3]
ISS = [sys.executable, "-c", "from iss_plugin.cli import main; main()"]
CV = "base"
ACTOR = "test"


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "broker_restart: restarts the shared RabbitMQ app (stop_app/start_app); "
        "runs under CI, elsewhere opt in with ISS_TEST_BROKER_RESTART=1 or -m broker_restart",
    )


def pytest_collection_modifyitems(config, items):
    if IN_CI or os.environ.get("ISS_TEST_BROKER_RESTART") == "1" or "broker_restart" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(
        reason="restarts the shared broker: set ISS_TEST_BROKER_RESTART=1 or -m broker_restart "
        "(runs by itself under CI)"
    )
    here = Path(__file__).parent
    for item in items:
        if "broker_restart" in item.keywords and here in Path(str(item.fspath)).parents:
            item.add_marker(skip)


# --- reading a server's state ----------------------------------------------------------------------


def count(app: App, model, *where) -> int:
    with app.session_factory() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def versions(app: App, cv: str = CV) -> list[str]:
    with app.session_factory() as s:
        rows = s.scalars(
            select(m.ContentViewVersion)
            .join(m.ContentView)
            .where(m.ContentView.label == cv)
            .order_by(m.ContentViewVersion.major, m.ContentViewVersion.minor)
        )
        return [v.number for v in rows]


def pins(app: App, version: str, cv: str = CV) -> dict:
    """{(product, repository): (package_count, package_set_digest)} of one content view version."""
    return {
        (r["product"], r["repository"]): (r["package_count"], r["package_set_digest"])
        for v in content_views.list_versions(app.uow(), ORG, cv)
        if v["version"] == version
        for r in v["repositories"]
    }


def exports(app: App, **where) -> list[m.ExportRecord]:
    with app.session_factory() as s:
        q = select(m.ExportRecord).where(m.ExportRecord.state == "done").order_by(m.ExportRecord.id)
        for k, v in where.items():
            q = q.where(getattr(m.ExportRecord, k) == v)
        return list(s.scalars(q))


def imports(app: App, **where) -> list[m.ImportRecord]:
    with app.session_factory() as s:
        q = select(m.ImportRecord).order_by(m.ImportRecord.id)
        for k, v in where.items():
            q = q.where(getattr(m.ImportRecord, k) == v)
        return list(s.scalars(q))


def outbox(app: App, event_type: str) -> list[m.OutboxEvent]:
    with app.session_factory() as s:
        return list(s.scalars(select(m.OutboxEvent).where(m.OutboxEvent.type == event_type).order_by(m.OutboxEvent.id)))


def subscription(app: App) -> m.Subscription:
    with app.session_factory() as s:
        return s.scalars(select(m.Subscription).order_by(m.Subscription.id)).first()


def publish(app: App, cv: str = CV) -> dict:
    return content_views.publish(app.uow(), ORG, cv, None, ACTOR, app.server_id)


def wait_until(cond: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    if not wait_for(cond, timeout=timeout, interval=interval):
        raise AssertionError(f"waited {timeout:.0f} s for {what}")


def wait_own_changes_handled(app: App, timeout: float = 60) -> None:
    """Until the export worker has handled every iss.repository.changed.v1 the server's set-up wrote
    (prepare_source's uploads). A repository subscription made before that races the worker: its
    push may come from the worker's handling of a set-up event instead of the test's own action."""
    changes = [e.event_id for e in outbox(app, "iss.repository.changed.v1")]

    def handled() -> bool:
        return count(
            app, m.ProcessedEvent, m.ProcessedEvent.event_id.in_(changes), m.ProcessedEvent.consumer == "export"
        ) == len(changes)

    wait_until(handled, timeout, "the server's own repository changes handled by its export worker")


# --- servers ---------------------------------------------------------------------------------------


@dataclass
class Pair:
    """A source with ACME/base (blessed, 4 repositories) and a destination subscribed to it."""

    root: Path
    src: App
    dst: App
    bus: dict
    runtimes: list = field(default_factory=list)

    def run(self, app: App, *roles: str):
        from consumers.run import Runtime

        r = Runtime(app, roles, relay_poll=0.05).start()
        self.runtimes.append(r)
        return r

    def stop(self, runtime) -> None:
        runtime.shutdown()
        self.runtimes.remove(runtime)

    def close(self) -> None:
        for r in self.runtimes:
            r.shutdown()
        self.src.close()
        self.dst.close()


def make_pair(
    root: Path,
    bus: dict,
    packages: int = 5,
    *,
    src_db: str | None = None,
    dst_db: str | None = None,
    subscribe: bool = True,
    destination_name: str = "destination",
) -> Pair:
    src = make_server(root, "source", bus=bus, **({"database_url": src_db} if src_db else {}))
    dst = make_server(root, destination_name, bus=bus, **({"database_url": dst_db} if dst_db else {}))
    prepare_source(src, root / "rpms", packages, ACTOR)
    prepare_destination(dst, src, root, ACTOR)
    if subscribe:
        add_subscriber(src, dst, root)
    return Pair(root, src, dst, bus)


def add_subscriber(src: App, dst: App, root: Path, name: str | None = None) -> None:
    key = root / f"{dst.server_id}.pub"
    key.write_text(dst.signer.public_pem)
    name = name or dst.server_id
    subscriptions.add_destination(src.uow(), name, dst.server_id, key.read_text(), ACTOR)
    subscriptions.subscribe(src.uow(), name, ORG, CV, None, ACTOR)


def memory_bus() -> dict:
    tag = uuid.uuid4().hex[:10]
    return {
        "url": "memory://",
        "exchange": f"t-{tag}",
        "prefix": f"t-{tag}",
        "retry_delays_ms": (100, 200),
        "max_attempts": 3,
    }


@pytest.fixture
def embedded(tmp_path):
    pair = make_pair(tmp_path, memory_bus())
    try:
        yield pair
    finally:
        pair.close()


def send_raw(bus: dict, envelope_or_body, routing_key: str) -> None:
    """Publish straight onto the bus (not through an outbox): a duplicate, or a body that is no event."""
    from kombu import Exchange, Producer

    from iss_plugin.adapters.bus.codec import CONTENT_TYPE, encode
    from iss_plugin.adapters.bus.connection import make_kombu_connection
    from iss_plugin.settings import BusSettings

    settings = BusSettings(**bus)
    body = encode(envelope_or_body) if isinstance(envelope_or_body, dict) else envelope_or_body
    with make_kombu_connection(settings) as conn:
        Producer(
            conn.channel(), exchange=Exchange(settings.exchange, "topic", durable=True), auto_declare=False
        ).publish(
            body,
            routing_key=routing_key,
            content_type=CONTENT_TYPE,
            content_encoding="utf-8",
            delivery_mode=2,
            retry=False,
        )


# --- real services: every role its own process -----------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path


class Processes:
    """`iss` role processes; each one is killed (by its own pid) at the end of the test."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: list[Proc] = []

    def start(self, config: Path, *args: str, name: str, env: dict | None = None) -> Proc:
        log = self.logs / f"{name}.{len(self.procs)}.log"
        fh = open(log, "w")
        p = subprocess.Popen(
            [*ISS, "--config", str(config), *args],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
            cwd=ROOT,
        )
        fh.close()
        proc = Proc(name, p, log)
        self.procs.append(proc)
        return proc

    def kill(self, proc: Proc, sig: int = signal.SIGKILL) -> None:
        if proc.popen.poll() is None:
            proc.popen.send_signal(sig)
        try:
            proc.popen.wait(20)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait(10)

    def check_alive(self) -> None:
        dead = [p for p in self.procs if p.popen.poll() is not None and p.popen.returncode not in (-9,)]
        if dead:
            raise AssertionError(
                "role processes exited: "
                + "; ".join(f"{p.name} rc={p.popen.returncode}: {p.log.read_text()[-2000:]}" for p in dead)
            )

    def stop_all(self) -> None:
        for p in self.procs:
            if p.popen.poll() is None:
                p.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for p in self.procs:
            try:
                p.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait(10)

    def logs_text(self) -> str:
        return "\n".join(f"--- {p.name} (rc={p.popen.poll()})\n{p.log.read_text()[-3000:]}" for p in self.procs)


def write_config(root: Path, name: str, database_url: str, bus: dict) -> Path:
    lines = [
        f'data_dir = "{root / name}"',
        f'server_id = "{name}"',
        f'database_url = "{database_url}"',
        "reconcile_interval_seconds = 3600",
        "",
        "[bus]",
    ]
    for k, v in bus.items():
        lines.append(
            f"{k} = {list(v)!r}"
            if isinstance(v, tuple)
            else f"{k} = {v!r}"
            if isinstance(v, (int, float))
            else f'{k} = "{v}"'
        )
    path = root / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class LivePair(Pair):
    src_config: Path | None = None
    dst_config: Path | None = None
    procs: Processes | None = None

    def role(self, which: str, *args: str, name: str | None = None, env: dict | None = None) -> Proc:
        config = self.src_config if which == "source" else self.dst_config
        return self.procs.start(config, *args, name=name or f"{which}-{'-'.join(args)}", env=env)

    def wait(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        """wait_until, failing early (with their logs) when a role process died."""
        deadline = time.monotonic() + timeout
        t0 = time.monotonic()
        while not cond():
            self.procs.check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {timeout:.0f} s for {what}\n{self.procs.logs_text()}")
            time.sleep(0.1)
        if os.environ.get("ISS_TEST_TIMING"):
            print(f"[{time.strftime('%X')}] {time.monotonic() - t0:6.2f} s  {what}", flush=True)

    @property
    def vhost(self) -> str:
        return self.bus["url"].rsplit("/", 1)[1]

    def consumers(self, queue: str) -> int:
        """How many consumers a queue has (0 when it does not exist yet). AMQP, not rabbitmqctl: fast."""
        import pika

        try:
            conn = pika.BlockingConnection(pika.URLParameters(self.bus["url"]))
        except pika.exceptions.AMQPConnectionError:
            # a handshake that timed out on a loaded machine: "not yet"; the caller's wait has the deadline
            return 0
        try:
            return conn.channel().queue_declare(queue, passive=True).method.consumer_count
        except pika.exceptions.ChannelClosedByBroker:
            return 0
        finally:
            if conn.is_open:
                conn.close()

    def queue_depth(self, queue: str) -> tuple[int, int]:
        """(ready, unacknowledged) messages of a queue, as the broker counts them."""
        import json

        out = subprocess.run(
            [
                "rabbitmqctl",
                "list_queues",
                "-q",
                "-p",
                self.vhost,
                "name",
                "messages_ready",
                "messages_unacknowledged",
                "--formatter",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        for q in json.loads(out):
            if q["name"] == queue:
                return int(q["messages_ready"]), int(q["messages_unacknowledged"])
        raise KeyError(queue)


@pytest.fixture
def live(tmp_path, rabbit_vhost, request):  # noqa: F811 - the fixture imported above
    """Source and destination on PostgreSQL (one throwaway database each) and RabbitMQ (a throwaway
    vhost, unique exchange and prefix); start role processes with `live.role(...)`.
    ISS_TEST_TIMING=1 (with -s) prints how long each `live.wait` took."""
    src_db = request.getfixturevalue("postgres_url")
    dst_db = _another_database(request)
    tag = uuid.uuid4().hex[:10]
    bus = {
        "url": rabbit_vhost,
        "exchange": f"p-{tag}",
        "prefix": f"p-{tag}",
        "retry_delays_ms": (200, 400),
        "max_attempts": 3,
        "heartbeat": 10,
        "confirm_timeout": 10.0,
    }
    pair = make_pair(tmp_path, bus, src_db=src_db, dst_db=dst_db)
    live = LivePair(
        pair.root,
        pair.src,
        pair.dst,
        bus,
        src_config=write_config(tmp_path, "source", src_db, bus),
        dst_config=write_config(tmp_path, "destination", dst_db, bus),
        procs=Processes(tmp_path / "logs"),
    )
    try:
        yield live
    finally:
        live.procs.stop_all()
        live.close()


def _another_database(request) -> str:
    """A second throwaway database (the postgres_url fixture gives one per test)."""
    import psycopg

    from tests.conftest import PG_HOST, PG_PORT

    server = request.getfixturevalue("postgres_server_url")
    name = f"iss_test_{uuid.uuid4().hex[:12]}"
    admin = f"host={PG_HOST} port={PG_PORT} user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop():
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    request.addfinalizer(drop)
    return f"{server}/{name}"
