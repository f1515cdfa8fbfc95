"""Scale-out benchmark (issue 13, Performance): figures and ratios from one run. Not a test.

    .venv/bin/python bench/scale.py [--workers 1,2,4] [--views 60] [--packages 40]
                                    [--scenarios local,wan] [--wan-latency-ms 100] [--wan-kib-s 1024]
                                    [--fanout 100] [--repeat 5] [--skip-services]

1. Propagation throughput on RabbitMQ + PostgreSQL with W export and W import workers (one status
   worker, one relay per server; every role its own `iss` process; a throwaway vhost and two
   throwaway databases per run): VIEWS blessed views (each its own repository of PACKAGES
   packages, each its own subscription) published while the source's relay is stopped, then
   released at once by starting it. Content views per minute from the first event the relay sent
   to the last view committed on the destination, release-to-imported p50/p95, and the CPU the
   `iss` processes used in that time (their user+system seconds / (wall seconds x cores)) next to
   the whole machine's, which says whether the run is CPU-bound. Two scenarios:
   - local: the destination reads the bundle file (file://), so the work is CPU and disk;
   - wan: the destination downloads it from the source's `iss serve` through a shaping TCP proxy
     in this process (each connection waits WAN_LATENCY_MS before it opens and again before the
     answer starts, and reads at most WAN_KIB_S KiB/s): the work waits on the network, so W
     import workers should overlap W downloads.
2. Fan-out of one version to FANOUT destinations vs one destination (in-process, SQLite, the export
   worker's service call): bundle files and bytes written, and time: after an untimed warm-up
   (schema validators, imports), REPEAT alternating runs of each, min and median.

Never asserts on time; prints ratios; exits 0. RabbitMQ or PostgreSQL missing: part 1 is SKIPPED.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

# before createrepo_c loads librpm (fixtures, uploads): as the `iss` command does
from iss_plugin.cli.noise import use_empty_rpm_config_if_missing  # noqa: E402

use_empty_rpm_config_if_missing()

from propagation import PG, RABBIT, Processes, Services, consumers_on, pct, reachable, ts, wait  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from consumers.demo import CUSTOM_PRODUCT, ORG, make_server, prepare_destination  # noqa: E402
from iss_plugin.adapters.db import models as m  # noqa: E402
from iss_plugin.domain import events as ev  # noqa: E402
from iss_plugin.services import catalog, content_views, subscriptions  # noqa: E402

ACTOR = "bench"
CORES = os.cpu_count() or 1
TICK = os.sysconf("SC_CLK_TCK")


def rpms(root: Path, label: str, packages: int) -> list[Path]:
    """The view's packages, built once per bench run (every run uploads the same ones)."""
    from iss_plugin.adapters.fixtures import build_rpms

    where = root / "rpms" / f"{label}-{packages}"
    if not where.is_dir():
        build_rpms(where.with_suffix(".tmp"), packages, prefix=f"{label}-pkg")
        where.with_suffix(".tmp").rename(where)
    return sorted(where.glob("*.rpm"))


def prepare_source(src, root: Path, views: int, packages: int) -> list[str]:
    catalog.create_organization(src.uow(), "ACME Corp", ORG, ACTOR)
    catalog.create_product(src.uow(), ORG, "ACME Tools", CUSTOM_PRODUCT, False, None, ACTOR)
    labels = []
    for i in range(views):
        label = f"view{i}"
        catalog.create_repository(src.uow(), ORG, CUSTOM_PRODUCT, f"{label}-repo", f"{label}-repo", None, "yum", ACTOR)
        files = rpms(root.parent, label, packages)
        catalog.upload_packages(src.uow(), ORG, f"{CUSTOM_PRODUCT}/{label}-repo", files, ACTOR, src.server_id)
        content_views.create_content_view(src.uow(), ORG, label, label, True, [f"{CUSTOM_PRODUCT}/{label}-repo"], ACTOR)
        labels.append(label)
    return labels


def consumers(url: str, queue: str) -> int:
    """0 while the broker does not answer (another user may be restarting the shared broker)."""
    try:
        return consumers_on(url, queue)
    except Exception:
        return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- CPU -------------------------------------------------------------------------------------------


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15 of stat)


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, every core."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / TICK, sum(values[:8]) / TICK


@dataclass
class CpuMeter:
    """CPU the given processes and the machine used between start() and stop()."""

    pids: list[int]
    began: dict[int, float] = field(default_factory=dict)
    machine: tuple[float, float] = (0.0, 0.0)
    wall: float = 0.0

    def start(self) -> None:
        self.began = {p: process_cpu(p) for p in self.pids}
        self.machine, self.wall = machine_cpu(), time.monotonic()

    def stop(self) -> tuple[float, float, dict[int, float]]:
        """(share of every core the processes used, share the machine was busy, {pid: share of one
        core it used})."""
        wall = time.monotonic() - self.wall
        each = {p: (process_cpu(p) - self.began[p]) / wall for p in self.pids}
        busy, total = machine_cpu()
        return sum(each.values()) / CORES, (busy - self.machine[0]) / max(total - self.machine[1], 1e-9), each


# --- a WAN-like link -------------------------------------------------------------------------------


class ShapedLink:
    """A TCP proxy to `upstream` (in a thread of this process): each connection waits `latency`
    before it is opened and again before the answer starts (a handshake and a request round trip),
    and the answer is paced to `rate` bytes per second per connection."""

    CHUNK = 16 << 10

    def __init__(self, upstream: tuple[str, int], latency: float, rate: float):
        self.upstream, self.latency, self.rate = upstream, latency, rate
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="shaped-link", daemon=True)

    def start(self) -> ShapedLink:
        self.thread.start()
        self.ready.wait(10)
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._connection, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()
        server.close()

    async def _connection(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            await asyncio.sleep(self.latency)
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(self._pipe(client_r, up_w, paced=False), self._pipe(up_r, client_w, paced=True))

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, *, paced: bool) -> None:
        first, due = True, time.monotonic()
        try:
            while data := await r.read(self.CHUNK):
                if paced:
                    if first:
                        await asyncio.sleep(self.latency)
                        first, due = False, time.monotonic()
                    due += len(data) / self.rate
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                w.write(data)
                await w.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                w.close()


# --- 1. throughput ---------------------------------------------------------------------------------


def write_config(path: Path, name: str, data_dir: Path, database_url: str, bus: dict, **extra: str) -> Path:
    lines = [
        f'data_dir = "{data_dir}"',
        f'server_id = "{name}"',
        f'database_url = "{database_url}"',
        "reconcile_interval_seconds = 3600",
        *(f'{k} = "{v}"' for k, v in extra.items()),
        "",
        "[bus]",
        *(f'{k} = "{v}"' for k, v in bus.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def created(app, label: str) -> float | None:
    with app.session_factory() as s:
        v = s.scalar(select(m.ContentViewVersion).join(m.ContentView).where(m.ContentView.label == label))
        return ts(v.created) if v else None


def released(src) -> dict[str, float]:
    """When the relay sent each view's content_view.published event."""
    with src.session_factory() as s:
        rows = s.execute(
            select(m.OutboxEvent.body, m.OutboxEvent.sent_at).where(m.OutboxEvent.type == ev.CONTENT_VIEW_PUBLISHED)
        )
        return {body["data"]["content_view"]: ts(sent) for body, sent in rows if sent is not None}


def first_sent(src) -> bool:
    with src.session_factory() as s:
        return s.scalar(select(func.count(m.OutboxEvent.id)).where(m.OutboxEvent.sent_at.is_not(None))) > 0


def throughput(scenario: str, workers: int, args, tmp: Path, services: Services) -> dict:
    root = tmp / f"{scenario}-w{workers}"
    url = services.vhost()
    tag = uuid.uuid4().hex[:8]
    bus = {"url": url, "exchange": f"b-{tag}", "prefix": f"b-{tag}"}
    src_db, dst_db = services.database(), services.database()
    src = make_server(root, "source", bus=bus, database_url=src_db)
    dst = make_server(root, "destination", bus=bus, database_url=dst_db)
    views = prepare_source(src, root, args.views, args.packages)
    prepare_destination(dst, src, root, ACTOR)
    subscriptions.add_destination(src.uow(), "east", dst.server_id, dst.signer.public_pem, ACTOR)
    for v in views:
        subscriptions.subscribe(src.uow(), "east", ORG, v, None, ACTOR)
    procs = Processes(root / "logs")
    link = None
    extra: dict[str, str] = {}
    if scenario == "wan":
        serve_port = free_port()
        link = ShapedLink(("127.0.0.1", serve_port), args.wan_latency_ms / 1000, args.wan_kib_s * 1024).start()
        extra = {"web_listen": f"127.0.0.1:{serve_port}", "web_base_url": f"http://127.0.0.1:{link.port}"}
    sc = write_config(root / "source.toml", "source", root / "source", src_db, bus, **extra)
    dc = write_config(root / "destination.toml", "destination", root / "destination", dst_db, bus)
    try:
        procs.start("source-status", sc, "worker", "status")
        procs.start("destination-relay", dc, "run", "--role", "relay")
        if scenario == "wan":
            procs.start("source-serve", sc, "serve")
        for i in range(workers):
            procs.start(f"source-export-{i}", sc, "worker", "export")
            procs.start(f"destination-import-{i}", dc, "worker", "import")
        wait(lambda: consumers(url, f"b-{tag}.export") >= workers, 180, "export workers")
        wait(lambda: consumers(url, f"b-{tag}.import.destination") >= workers, 180, "import workers")
        if scenario == "wan":
            wait(lambda: reachable(("127.0.0.1", serve_port)), 120, "iss serve")
        for v in views:  # into the outbox: nothing goes out before the relay starts
            content_views.publish(src.uow(), ORG, v, None, ACTOR, src.server_id)
        procs.start("source-relay", sc, "relay")
        wait(lambda: first_sent(src), 180, "the source relay's first event", interval=0.01)
        meter = CpuMeter([p.pid for _, p in procs.procs])
        meter.start()

        def all_live() -> bool:
            procs.check()
            return all(created(dst, v) is not None for v in views)

        wait(all_live, 1800, "every view on the destination", interval=0.05)
        iss_cpu, machine_busy, each = meter.stop()
        names = {p.pid: n for n, p in procs.procs}
        busiest = max(each, key=lambda pid: each[pid])
        sent = released(src)
        done = {v: created(dst, v) for v in views}
        elapsed = max(done.values()) - min(sent.values())  # type: ignore[type-var]
        latencies = [done[v] - sent[v] for v in views]  # type: ignore[operator]
        with src.session_factory() as s:
            ready = s.scalars(select(m.OutboxEvent.body).where(m.OutboxEvent.type == ev.BUNDLE_READY))
            bundles = [b["data"].get("size") or 0 for b in ready]
        return {
            "scenario": scenario,
            "workers": workers,
            "views": len(views),
            "seconds": elapsed,
            "per_minute": len(views) / elapsed * 60,
            "p50": statistics.median(latencies),
            "p95": pct(latencies, 95),
            "iss_cpu": iss_cpu,
            "machine_busy": machine_busy,
            "busiest": (names[busiest], each[busiest]),
            "bundle_kib": statistics.mean(bundles) / 1024 if bundles else 0.0,
        }
    finally:
        procs.stop()
        if link is not None:
            link.stop()
        src.close()
        dst.close()


def verdict(r: dict) -> str:
    """CPU-bound: the iss processes kept most of every core busy, or one of them (each handles one
    message at a time) most of a core (the stage it serves waits on CPU), or the machine had no
    CPU to spare (iss with its database and broker, or other work on a shared machine: the
    figures then say little about iss)."""
    if r["iss_cpu"] >= 0.6 or r["busiest"][1] >= 0.8:
        return "CPU-bound"
    if r["machine_busy"] >= 0.9:
        return "CPU-bound (the machine: iss, PostgreSQL, RabbitMQ and any other work)"
    return "not CPU-bound"


def print_throughput(rows: list[dict], args) -> None:
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    print(
        f"{'scenario':>8} {'workers':>7} {'views/min':>10} {'x of 1':>7} {'p50 s':>7} {'p95 s':>7} {'total s':>8} "
        f"{'iss CPU':>8} {'machine':>8} {'bundle KiB':>10} {'busiest process':>28}  verdict"
    )
    for sc in scenarios:
        mine = [r for r in rows if r["scenario"] == sc]
        base = mine[0]["per_minute"]
        for r in mine:
            r["x"] = r["per_minute"] / base
            print(
                f"{sc:>8} {r['workers']:>7} {r['per_minute']:>10.1f} {r['x']:>7.2f} {r['p50']:>7.2f} {r['p95']:>7.2f} "
                f"{r['seconds']:>8.1f} {r['iss_cpu']:>8.0%} {r['machine_busy']:>8.0%} {r['bundle_kib']:>10.0f} "
                f"{r['busiest'][0] + ' ' + format(r['busiest'][1], '.0%'):>28}  {verdict(r)}"
            )
    print(
        f"(iss CPU: user+system seconds of every iss process / (wall seconds x {CORES} cores); machine: every process)"
    )
    for sc in scenarios:
        two = next((r for r in rows if r["scenario"] == sc and r["workers"] == 2), None)
        one = next((r for r in rows if r["scenario"] == sc and r["workers"] == 1), None)
        if one and two:
            if two["x"] >= 1.6:
                goal = "met"
            elif verdict(two).startswith("CPU-bound"):
                goal = "does not apply (CPU-bound at 2 workers)"
            else:
                goal = "MISSED"
            print(
                f"{sc}: 2 workers x{two['x']:.2f} of 1, iss CPU {two['iss_cpu']:.0%}; goal x1.6 where not CPU-bound: {goal}"
            )


# --- 2. fan-out ------------------------------------------------------------------------------------


def fanout(destinations: int, args, tmp: Path) -> dict:
    """One version to `destinations` subscribers: the export worker's call, timed; files counted."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from iss_plugin.services import propagation

    root = tmp / f"fanout-{destinations}-{uuid.uuid4().hex[:6]}"
    src = make_server(root, "source")
    try:
        views = prepare_source(src, root, 1, args.packages * 5)
        for i in range(destinations):
            pem = (
                Ed25519PrivateKey.generate()
                .public_key()
                .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
                .decode()
            )
            subscriptions.add_destination(src.uow(), f"d{i}", f"d{i}", pem, ACTOR)
            subscriptions.subscribe(src.uow(), f"d{i}", ORG, views[0], None, ACTOR)
        event_id = content_views.publish(src.uow(), ORG, views[0], None, ACTOR, src.server_id)["event_id"]
        with src.session_factory() as s:
            envelope = s.scalar(select(m.OutboxEvent).where(m.OutboxEvent.event_id == event_id)).body
        t0 = time.perf_counter()
        made = propagation.on_content_view_published(src.uow(), envelope, src.source_context())
        elapsed = time.perf_counter() - t0
        files = [p for p in src.settings.exports_path.rglob("*") if p.is_file()]
        return {
            "destinations": destinations,
            "announced": len(made),
            "bundles": len({b["bundle_id"] for b in made}),
            "files": len(files),
            "bytes": sum(p.stat().st_size for p in files),
            "seconds": elapsed,
        }
    finally:
        src.close()
        shutil.rmtree(root, ignore_errors=True)


def print_fanout(args, tmp: Path) -> None:
    fanout(1, args, tmp)  # warm-up, untimed: validators built, modules imported (a worker has them)
    ones, manys = [], []
    for _ in range(args.repeat):
        ones.append(fanout(1, args, tmp))
        manys.append(fanout(args.fanout, args, tmp))
    print(f"{'destinations':>12} {'bundles':>8} {'files':>6} {'bytes':>12} {'min s':>8} {'median s':>9}")
    for rs in (ones, manys):
        r, secs = rs[-1], [x["seconds"] for x in rs]
        print(
            f"{r['destinations']:>12} {r['bundles']:>8} {r['files']:>6} {r['bytes']:>12} "
            f"{min(secs):>8.3f} {statistics.median(secs):>9.3f}"
        )
    one_s, many_s = [x["seconds"] for x in ones], [x["seconds"] for x in manys]
    per_dest = (statistics.median(many_s) - statistics.median(one_s)) / max(args.fanout - 1, 1) * 1000
    print(
        f"ratio {args.fanout} vs 1 ({args.repeat} runs each): bytes x{manys[-1]['bytes'] / max(ones[-1]['bytes'], 1):.2f}, "
        f"time x{min(many_s) / max(min(one_s), 1e-9):.2f} (min) x{statistics.median(many_s) / max(statistics.median(one_s), 1e-9):.2f} "
        f"(median), {per_dest:.2f} ms per extra destination (goal: bytes x1, time at most x3)"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workers", default="1,2,4")
    p.add_argument("--views", type=int, default=60)
    p.add_argument("--packages", type=int, default=40)
    p.add_argument("--scenarios", default="local,wan", help="local (file://), wan (download through a shaped link)")
    p.add_argument("--wan-latency-ms", type=float, default=100.0)
    p.add_argument("--wan-kib-s", type=float, default=1024.0, help="per-connection bandwidth of the wan link")
    p.add_argument("--fanout", type=int, default=100)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--skip-services", action="store_true")
    p.add_argument("--skip-fanout", action="store_true")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="iss-bench-scale-"))
    try:
        print(
            f"# 1. throughput: {args.views} views released at once, {args.packages} packages each; wan: "
            f"{args.wan_latency_ms:.0f} ms per connection and per answer, {args.wan_kib_s:.0f} KiB/s per connection"
        )
        print(f"# machine: {CORES} cores, load average {os.getloadavg()[0]:.1f} at the start")
        if args.skip_services or not (reachable(RABBIT) and reachable(PG)):
            print("SKIPPED (RabbitMQ or PostgreSQL not reachable, or --skip-services)")
        else:
            services = Services()
            rows = []
            try:
                for sc in args.scenarios.split(","):
                    for w in args.workers.split(","):
                        rows.append(throughput(sc, int(w), args, tmp, services))
            finally:
                services.close()
            print_throughput(rows, args)
        if not args.skip_fanout:
            print(f"\n# 2. fan-out: one version to 1 and to {args.fanout} destinations (export worker, SQLite)")
            print_fanout(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
