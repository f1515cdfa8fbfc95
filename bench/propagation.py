"""Propagation benchmark (issue 3, Performance): figures and ratios from one run. Not a test.

    .venv/bin/python bench/propagation.py [--runs 20] [--change 10] [--packages 20] [--events 2000]
                                          [--skip-services] [--skip-bus]

1. Latency from `publish` on the source to the version being live on the destination (its
   content view version committed and every repository's publication switched to it), for a
   CHANGE-package change (CHANGE new packages uploaded into one repository of the 4-repository
   view, then publish), p50 and p95 over RUNS runs, after one untimed full 1.0:
   a. embedded: kombu memory:// + SQLite, both servers and every role as threads of this process
      (`consumers.run.Runtime`, as `iss run` and `iss demo` do);
   b. RabbitMQ + PostgreSQL: every role its own `iss` process (source: `iss relay`, `iss worker
      export`, `iss worker status`; destination: `iss relay`, `iss worker import`), a throwaway
      vhost and two throwaway databases.
   The phases (bundle ready = the export's commit, imported = the import's commit) are medians.
   Goal: p50 < 2 s for both.
2. Relay throughput against raw pika streaming confirms (same broker, same run): bench/bus.py,
   run as a child process with smaller counts; its figures are printed here.
3. Events handled per second by 1 and by 2 `iss worker export` processes (RabbitMQ + PostgreSQL)
   when there is nothing to export (no subscriptions: each event costs only the exactly-once
   bookkeeping), next to the raw consume rate of the bus from bench/bus.py, and by 1 embedded
   export worker (memory:// + SQLite, a thread).

Never asserts on time; prints "GOAL MISSED" when a goal is missed; exits 0. RabbitMQ or
PostgreSQL missing: those parts print SKIPPED.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# before createrepo_c loads librpm (fixtures, uploads): as the `iss` command does
from iss_plugin.cli.noise import use_empty_rpm_config_if_missing  # noqa: E402

use_empty_rpm_config_if_missing()

from sqlalchemy import func, select  # noqa: E402

from consumers.demo import CUSTOM_PRODUCT, ORG, make_server, prepare_destination, prepare_source  # noqa: E402
from iss_plugin.adapters.db import models as m  # noqa: E402
from iss_plugin.services import catalog, content_views, subscriptions  # noqa: E402

RABBIT = ("127.0.0.1", 5672)
PG = ("127.0.0.1", 5432)
ACTOR = "bench"
ISS = [sys.executable, "-c", "from iss_plugin.cli import main; main()"]


# --- small helpers ---------------------------------------------------------------------------------


def reachable(addr) -> bool:
    try:
        socket.create_connection(addr, timeout=2).close()
        return True
    except OSError:
        return False


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def ts(dt) -> float:
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def wait(cond, timeout: float, what: str, interval: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(interval)


class Services:
    """Throwaway RabbitMQ vhosts and PostgreSQL databases, removed at the end."""

    def __init__(self):
        self.vhosts: list[str] = []
        self.databases: list[str] = []

    def vhost(self) -> str:
        name = f"iss-bench-{uuid.uuid4().hex[:10]}"
        subprocess.run(["rabbitmqctl", "add_vhost", name], capture_output=True, check=True)
        self.vhosts.append(name)
        subprocess.run(
            ["rabbitmqctl", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"], capture_output=True, check=True
        )
        return f"amqp://guest:guest@{RABBIT[0]}:{RABBIT[1]}/{name}"

    def database(self) -> str:
        import psycopg

        name = f"iss_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(f"host={PG[0]} port={PG[1]} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return f"postgresql+psycopg://postgres@{PG[0]}:{PG[1]}/{name}"

    def close(self) -> None:
        for v in self.vhosts:
            subprocess.run(["rabbitmqctl", "delete_vhost", v], capture_output=True)
        if self.databases:
            import psycopg

            with psycopg.connect(f"host={PG[0]} port={PG[1]} user=postgres dbname=postgres", autocommit=True) as c:
                for d in self.databases:
                    c.execute(f'DROP DATABASE IF EXISTS "{d}" WITH (FORCE)')


class Processes:
    def __init__(self, logs: Path):
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, config: Path, *args: str) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "w") as fh:
            p = subprocess.Popen(
                [*ISS, "--config", str(config), *args],
                stdout=fh,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
        self.procs.append((name, p))
        return p

    def check(self) -> None:
        for name, p in self.procs:
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited ({p.returncode}): {(self.logs / f'{name}.log').read_text()[-1500:]}")

    def stop(self, only: list[subprocess.Popen] | None = None) -> None:
        chosen = [(n, p) for n, p in self.procs if only is None or p in only]
        for _, p in chosen:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for _, p in chosen:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        self.procs = [(n, p) for n, p in self.procs if (n, p) not in chosen]


def write_config(path: Path, name: str, data_dir: Path, database_url: str, bus: dict) -> Path:
    lines = [
        f'data_dir = "{data_dir}"',
        f'server_id = "{name}"',
        f'database_url = "{database_url}"',
        "reconcile_interval_seconds = 3600",
        "",
        "[bus]",
    ] + [f'{k} = "{v}"' for k, v in bus.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def consumers_on(url: str, queue: str) -> int:
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return conn.channel().queue_declare(queue, passive=True).method.consumer_count
    except Exception:
        return 0
    finally:
        if conn.is_open:
            conn.close()


# --- 1. latency ------------------------------------------------------------------------------------


def live_on(dst, version: str) -> bool:
    """The destination's content view version is committed and every repository publication points at it."""
    major, minor = (int(x) for x in version.split("."))
    published = dst.settings.published_path
    with dst.session_factory() as s:
        cvv = s.scalar(
            select(m.ContentViewVersion)
            .join(m.ContentView)
            .where(
                m.ContentView.label == "base", m.ContentViewVersion.major == major, m.ContentViewVersion.minor == minor
            )
        )
        if cvv is None:
            return False
        for pin in cvv.repositories:
            link = published.joinpath(*pin.repository.backend_key.split("/"))
            try:
                if not os.path.basename(os.readlink(link)).startswith(f"v{pin.backend_version}."):
                    return False
            except OSError:
                return False
    return True


def prepare_pair(root: Path, packages: int, bus: dict, src_db: str | None = None, dst_db: str | None = None):
    src = make_server(root, "source", bus=bus, **({"database_url": src_db} if src_db else {}))
    dst = make_server(root, "destination", bus=bus, **({"database_url": dst_db} if dst_db else {}))
    prepare_source(src, root / "rpms", packages, ACTOR)
    prepare_destination(dst, src, root, ACTOR)
    key = root / "destination.pub"
    key.write_text(dst.signer.public_pem)
    subscriptions.add_destination(src.uow(), "east", dst.server_id, key.read_text(), ACTOR)
    subscriptions.subscribe(src.uow(), "east", ORG, "base", None, ACTOR)
    return src, dst


def measure_latency(src, dst, root: Path, runs: int, change: int) -> dict:
    from iss_plugin.adapters.fixtures import build_rpms

    changes = [build_rpms(root / "rpms" / f"run{i}", change, prefix=f"run{i:02d}-pkg") for i in range(runs)]
    first = content_views.publish(src.uow(), ORG, "base", "warm-up", ACTOR, src.server_id)["version"]
    wait(lambda: live_on(dst, first), 120, f"{first} (full, untimed) on the destination", 0.02)
    latencies, ready, imported = [], [], []
    for files in changes:
        catalog.upload_packages(src.uow(), ORG, f"{CUSTOM_PRODUCT}/utils", files, ACTOR, src.server_id)
        t0 = time.time()
        version = content_views.publish(src.uow(), ORG, "base", None, ACTOR, src.server_id)["version"]
        wait(lambda version=version: live_on(dst, version), 120, f"{version} on the destination")
        latencies.append(time.time() - t0)
        with src.session_factory() as s:
            e = s.scalar(
                select(m.ExportRecord).where(m.ExportRecord.version == version, m.ExportRecord.state == "done")
            )
            assert e.kind == "incremental", e.kind
            ready.append(ts(e.finished) - t0)
        with dst.session_factory() as s:
            imported.append(
                ts(
                    s.scalar(
                        select(m.ImportRecord.created).where(
                            m.ImportRecord.version == version, m.ImportRecord.state == "imported"
                        )
                    )
                )
                - t0
            )
    return {
        "p50_s": round(pct(latencies, 50), 3),
        "p95_s": round(pct(latencies, 95), 3),
        "min_s": round(min(latencies), 3),
        "max_s": round(max(latencies), 3),
        "bundle_ready_p50_s": round(statistics.median(ready), 3),
        "import_committed_p50_s": round(statistics.median(imported), 3),
        "runs": len(latencies),
    }


def latency_embedded(args, tmp: Path) -> dict:
    from consumers.run import Runtime

    tag = uuid.uuid4().hex[:8]
    bus = {"url": "memory://", "exchange": f"bench-{tag}", "prefix": f"bench-{tag}"}
    src, dst = prepare_pair(tmp / "embedded", args.packages, bus)
    runtimes = [Runtime(src, ("relay", "export", "status")).start(), Runtime(dst, ("relay", "import")).start()]
    try:
        return measure_latency(src, dst, tmp / "embedded", args.runs, args.change)
    finally:
        for r in runtimes:
            r.shutdown()
        src.close()
        dst.close()


def latency_services(args, tmp: Path, services: Services) -> dict:
    root = tmp / "services"
    tag = uuid.uuid4().hex[:8]
    bus = {"url": services.vhost(), "exchange": f"bench-{tag}", "prefix": f"bench-{tag}"}
    src_db, dst_db = services.database(), services.database()
    src, dst = prepare_pair(root, args.packages, bus, src_db, dst_db)
    src_cfg = write_config(root / "source.toml", "source", root / "source", src_db, bus)
    dst_cfg = write_config(root / "destination.toml", "destination", root / "destination", dst_db, bus)
    procs = Processes(root / "logs")
    try:
        procs.start("source-relay", src_cfg, "relay")
        procs.start("source-export", src_cfg, "worker", "export")
        procs.start("source-status", src_cfg, "worker", "status")
        procs.start("destination-relay", dst_cfg, "relay")
        procs.start("destination-import", dst_cfg, "worker", "import")
        p = bus["prefix"]
        for q in (f"{p}.export", f"{p}.status.source", f"{p}.import.destination"):
            wait(lambda q=q: (procs.check(), consumers_on(bus["url"], q))[1] >= 1, 120, f"a consumer on {q}", 0.2)
        return measure_latency(src, dst, root, args.runs, args.change)
    finally:
        procs.stop()
        src.close()
        dst.close()


# --- 2. relay vs raw pika (bench/bus.py) -----------------------------------------------------------


def bus_bench(args) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bus.py"),
            "--messages",
            str(args.bus_messages),
            "--rounds",
            "3",
            "--consume",
            str(min(args.bus_messages, 3000)),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
    for ln in lines[:-1]:
        print("    bench/bus.py | " + ln)
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"bench/bus.py failed ({out.returncode}): {out.stderr[-1500:]}")
    return json.loads(lines[-1])


# --- 3. no-op events per second --------------------------------------------------------------------


def noop_envelopes(n: int) -> list[bytes]:
    from iss_plugin.adapters.bus.codec import encode
    from iss_plugin.domain import events as E

    return [
        encode(
            E.make_envelope(
                E.CONTENT_VIEW_PUBLISHED,
                "urn:iss:server:bench",
                E.content_view_published(organization="ACME", content_view="base", version=f"{i + 1}.0", blessed=True),
            )
        )
        for i in range(n)
    ]


def publish_raw(url: str, exchange: str, bodies: list[bytes]) -> None:
    """pika, one channel in confirm mode; returns after the broker confirmed every message."""
    import pika

    from iss_plugin.adapters.bus.codec import CONTENT_TYPE

    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        props = pika.BasicProperties(content_type=CONTENT_TYPE, content_encoding="utf-8", delivery_mode=2)
        for b in bodies:
            ch.basic_publish(exchange, "iss.content_view.published", b, props)
    finally:
        conn.close()


def rate_from_markers(app, since_count: int, n: int, timeout: float = 300) -> float:
    def done() -> bool:
        with app.session_factory() as s:
            return s.scalar(select(func.count()).select_from(m.ProcessedEvent)) >= since_count + n

    wait(done, timeout, f"{n} events handled", 0.05)
    with app.session_factory() as s:
        stamps = sorted(ts(x) for x in s.scalars(select(m.ProcessedEvent.at)))[since_count:]
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def handler_alone(app, n: int) -> float:
    """The export handler called directly in a loop (no bus at all): what the work itself costs."""
    from consumers.handlers import export_handlers
    from iss_plugin.domain import events as E

    handle = export_handlers(app)[E.CONTENT_VIEW_PUBLISHED]
    events = [E.Event.from_envelope(json.loads(b)) for b in noop_envelopes(n)]
    t0 = time.perf_counter()
    for e in events:
        handle(e)
    return n / (time.perf_counter() - t0)


def noop_services(args, tmp: Path, services: Services) -> dict:
    root = tmp / "noop"
    tag = uuid.uuid4().hex[:8]
    bus = {"url": services.vhost(), "exchange": f"noop-{tag}", "prefix": f"noop-{tag}"}
    db = services.database()
    app = make_server(root, "source", bus=bus, database_url=db)  # no destinations, no subscriptions
    cfg = write_config(root / "source.toml", "source", root / "source", db, bus)
    procs = Processes(root / "logs")
    results = {"handler_alone": round(handler_alone(app, min(args.events, 500)))}
    try:
        for workers in (1, 2):
            started = [procs.start(f"export-{workers}-{i}", cfg, "worker", "export") for i in range(workers)]
            wait(
                lambda workers=workers: (
                    (procs.check(), consumers_on(bus["url"], f"{bus['prefix']}.export"))[1] >= workers
                ),
                120,
                f"{workers} export workers consuming",
                0.2,
            )
            with app.session_factory() as s:
                before = s.scalar(select(func.count()).select_from(m.ProcessedEvent))
            publish_raw(bus["url"], bus["exchange"], noop_envelopes(args.events))
            results[f"{workers}_worker"] = round(rate_from_markers(app, before, args.events))
            procs.stop(started)
        return results
    finally:
        procs.stop()
        app.close()


def noop_embedded(args, tmp: Path) -> dict:
    from kombu import Exchange, Producer

    from consumers.run import Runtime
    from iss_plugin.adapters.bus.codec import CONTENT_TYPE
    from iss_plugin.adapters.bus.connection import make_kombu_connection
    from iss_plugin.settings import BusSettings

    tag = uuid.uuid4().hex[:8]
    bus = {"url": "memory://", "exchange": f"noop-{tag}", "prefix": f"noop-{tag}"}
    app = make_server(tmp / "noop-embedded", "source", bus=bus)
    alone = handler_alone(app, min(args.events, 500))
    with app.session_factory() as s:
        before = s.scalar(select(func.count()).select_from(m.ProcessedEvent))
    runtime = Runtime(app, ("export",)).start()
    try:
        time.sleep(0.5)  # the worker declares its queue
        with make_kombu_connection(BusSettings(**bus)) as conn:
            producer = Producer(
                conn.channel(), exchange=Exchange(bus["exchange"], "topic", durable=True), auto_declare=False
            )
            for b in noop_envelopes(args.events):
                producer.publish(
                    b, routing_key="iss.content_view.published", content_type=CONTENT_TYPE, content_encoding="utf-8"
                )
        return {"1_worker": round(rate_from_markers(app, before, args.events)), "handler_alone": round(alone)}
    finally:
        runtime.shutdown()
        app.close()


# --- main ------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20, help="timed publishes per latency scenario")
    ap.add_argument("--change", type=int, default=10, help="new packages per publish")
    ap.add_argument("--packages", type=int, default=20, help="packages per repository at the start (4 repositories)")
    ap.add_argument("--events", type=int, default=1000, help="events per no-op rate measurement")
    ap.add_argument("--bus-messages", type=int, default=5000, help="messages per bench/bus.py round")
    ap.add_argument("--skip-services", action="store_true", help="embedded only (no RabbitMQ/PostgreSQL)")
    ap.add_argument("--skip-bus", action="store_true", help="do not run bench/bus.py")
    args = ap.parse_args()

    import logging

    logging.basicConfig(level=logging.ERROR)
    load = os.getloadavg()
    print(
        f"propagation benchmark: {os.cpu_count()} cpus, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"{args.runs} runs of a {args.change}-package change into a 4 x {args.packages}-package content view"
    )
    results: dict = {}
    have_services = not args.skip_services and reachable(RABBIT) and reachable(PG) and shutil.which("rabbitmqctl")
    if not args.skip_services and not have_services:
        print("RabbitMQ or PostgreSQL (or rabbitmqctl) not available: the RabbitMQ+PostgreSQL parts are SKIPPED")
    services = Services()
    tmp = Path(tempfile.mkdtemp(prefix="iss-bench-propagation-"))

    def part(name: str, fn):
        t0 = time.perf_counter()
        try:
            results[name] = fn()
        except Exception as e:
            results[name] = {"error": f"{type(e).__name__}: {e}"}
            print(f"  {name}: FAILED {type(e).__name__}: {e}")
        print(f"  ({name}: {time.perf_counter() - t0:.0f} s)", flush=True)

    try:
        print("\n1. latency, publish -> live on the destination (goal: p50 < 2 s)")
        part("latency_embedded", lambda: latency_embedded(args, tmp))
        if have_services:
            part("latency_rabbitmq_postgresql", lambda: latency_services(args, tmp, services))
        for key, label in (
            ("latency_embedded", "embedded: memory:// + SQLite, roles as threads of one process"),
            ("latency_rabbitmq_postgresql", "RabbitMQ + PostgreSQL, every role its own process"),
        ):
            r = results.get(key)
            if r and "p50_s" in r:
                goal = "" if r["p50_s"] < 2.0 else "  GOAL MISSED"
                print(
                    f"   {label:62s} p50 {r['p50_s']:6.3f} s  p95 {r['p95_s']:6.3f} s  (min {r['min_s']:.3f}, "
                    f"max {r['max_s']:.3f}; bundle ready p50 {r['bundle_ready_p50_s']:.3f} s, import committed p50 "
                    f"{r['import_committed_p50_s']:.3f} s){goal}"
                )

        if have_services and not args.skip_bus:
            print(
                "\n2. relay throughput vs raw pika streaming confirms (bench/bus.py, same broker, same run; goal >= 0.7x)"
            )
            part("bus", lambda: bus_bench(args))

        print("\n3. events handled per second on a no-op (no subscriptions: exactly-once bookkeeping only)")
        part("noop_embedded", lambda: noop_embedded(args, tmp))
        if have_services:
            part("noop_rabbitmq_postgresql", lambda: noop_services(args, tmp, services))
        emb = results.get("noop_embedded") or {}
        if "1_worker" in emb:
            print(
                f"   embedded (memory:// + SQLite), the handler alone (no bus)   : {emb['handler_alone']:7d} events/s"
            )
            print(
                f"   embedded (memory:// + SQLite), 1 export worker thread      : {emb['1_worker']:7d} events/s "
                f"({emb['1_worker'] / emb['handler_alone']:.2f}x the handler alone)"
            )
        noop = results.get("noop_rabbitmq_postgresql") or {}
        if "1_worker" in noop:
            one, two, alone = noop["1_worker"], noop.get("2_worker"), noop["handler_alone"]
            print(f"   PostgreSQL, the handler alone in a loop (no bus)           : {alone:7d} events/s")
            print(
                f"   RabbitMQ + PostgreSQL, 1 `iss worker export` process        : {one:7d} events/s "
                f"({one / alone:.2f}x the handler alone)"
            )
            if two:
                print(
                    f"   RabbitMQ + PostgreSQL, 2 `iss worker export` processes      : {two:7d} events/s "
                    f"({two / one:.2f}x one worker)"
                )
            bus = results.get("bus") or {}
            raw = bus.get("consume_prefetch_4")
            if raw:
                print(
                    f"   the bus alone (bench/bus.py: consume, prefetch 4, schema validation): {raw} msg/s = "
                    f"{raw / max(one, two or 0):.0f}x what the workers handle"
                )
    finally:
        services.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
