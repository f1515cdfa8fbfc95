"""Scale-out benchmark (issue 13, Performance): figures and ratios from one run. Not a test.

    .venv/bin/python bench/scale.py [--workers 1,2,4] [--views 8] [--packages 40]
                                    [--fanout 100] [--skip-services]

1. Propagation throughput on RabbitMQ + PostgreSQL with W export and W import workers (one status
   worker, one relay per server; every role its own `iss` process; a throwaway vhost and two
   throwaway databases per W): VIEWS blessed views (each its own repository of PACKAGES packages)
   published at once; content views per minute until every one is live on the destination, and
   publish-to-imported p50/p95 (source version created -> destination version committed).
2. Fan-out of one version to FANOUT destinations vs one destination (in-process, SQLite, the export
   worker's service call): bundle files and bytes written, and time.

Never asserts on time; prints ratios; exits 0. RabbitMQ or PostgreSQL missing: part 1 is SKIPPED.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from propagation import PG, RABBIT, Processes, Services, consumers_on, pct, reachable, ts, wait, write_config  # noqa: E402
from sqlalchemy import select  # noqa: E402

from consumers.demo import CUSTOM_PRODUCT, ORG, make_server, prepare_destination  # noqa: E402
from iss_plugin.adapters.db import models as m  # noqa: E402
from iss_plugin.services import catalog, content_views, subscriptions  # noqa: E402

ACTOR = "bench"


def prepare_source(src, root: Path, views: int, packages: int) -> list[str]:
    from iss_plugin.adapters.fixtures import build_rpms

    catalog.create_organization(src.uow(), "ACME Corp", ORG, ACTOR)
    catalog.create_product(src.uow(), ORG, "ACME Tools", CUSTOM_PRODUCT, False, None, ACTOR)
    labels = []
    for i in range(views):
        label = f"view{i}"
        catalog.create_repository(src.uow(), ORG, CUSTOM_PRODUCT, f"{label}-repo", f"{label}-repo", None, "yum", ACTOR)
        files = build_rpms(root / "rpms" / label, packages, prefix=f"{label}-pkg")
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


def created(app, label: str) -> float | None:
    with app.session_factory() as s:
        v = s.scalar(select(m.ContentViewVersion).join(m.ContentView).where(m.ContentView.label == label))
        return ts(v.created) if v else None


def throughput(workers: int, args, tmp: Path, services: Services) -> dict:
    root = tmp / f"w{workers}"
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
    sc = write_config(root / "source.toml", "source", root / "source", src_db, bus)
    dc = write_config(root / "destination.toml", "destination", root / "destination", dst_db, bus)
    try:
        procs.start("source-relay", sc, "relay")
        procs.start("source-status", sc, "worker", "status")
        procs.start("destination-relay", dc, "run", "--role", "relay")
        for i in range(workers):
            procs.start(f"source-export-{i}", sc, "worker", "export")
            procs.start(f"destination-import-{i}", dc, "worker", "import")
        wait(lambda: consumers(url, f"b-{tag}.export") >= workers, 180, "export workers")
        wait(lambda: consumers(url, f"b-{tag}.import.destination") >= workers, 180, "import workers")
        t0 = time.monotonic()
        for v in views:
            content_views.publish(src.uow(), ORG, v, None, ACTOR, src.server_id)

        def all_live() -> bool:
            procs.check()
            return all(created(dst, v) is not None for v in views)

        wait(all_live, 900, "every view on the destination", interval=0.05)
        elapsed = time.monotonic() - t0
        latencies = [created(dst, v) - created(src, v) for v in views]  # type: ignore[operator]
        return {
            "workers": workers,
            "views": len(views),
            "seconds": elapsed,
            "per_minute": len(views) / elapsed * 60,
            "p50": statistics.median(latencies),
            "p95": pct(latencies, 95),
        }
    finally:
        procs.stop()
        src.close()
        dst.close()


def fanout(destinations: int, args, tmp: Path) -> dict:
    """One version to `destinations` subscribers: the export worker's call, timed; files counted."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from iss_plugin.services import propagation

    root = tmp / f"fanout-{destinations}"
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
        t0 = time.monotonic()
        made = propagation.on_content_view_published(src.uow(), envelope, src.source_context())
        elapsed = time.monotonic() - t0
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workers", default="1,2,4")
    p.add_argument("--views", type=int, default=8)
    p.add_argument("--packages", type=int, default=40)
    p.add_argument("--fanout", type=int, default=100)
    p.add_argument("--skip-services", action="store_true")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="iss-bench-scale-"))
    try:
        print(f"# 1. throughput: {args.views} views published at once, {args.packages} packages each")
        if args.skip_services or not (reachable(RABBIT) and reachable(PG)):
            print("SKIPPED (RabbitMQ or PostgreSQL not reachable, or --skip-services)")
        else:
            services = Services()
            try:
                rows = [throughput(int(w), args, tmp, services) for w in args.workers.split(",")]
            finally:
                services.close()
            base = rows[0]["per_minute"]
            print(f"{'workers':>8} {'views/min':>10} {'x of 1':>7} {'p50 s':>7} {'p95 s':>7} {'total s':>8}")
            for r in rows:
                print(
                    f"{r['workers']:>8} {r['per_minute']:>10.1f} {r['per_minute'] / base:>7.2f} "
                    f"{r['p50']:>7.2f} {r['p95']:>7.2f} {r['seconds']:>8.1f}"
                )
        print(f"\n# 2. fan-out: one version to 1 and to {args.fanout} destinations (export worker, SQLite)")
        one, many = fanout(1, args, tmp), fanout(args.fanout, args, tmp)
        print(f"{'destinations':>12} {'bundles':>8} {'files':>6} {'bytes':>12} {'seconds':>8}")
        for r in (one, many):
            print(f"{r['destinations']:>12} {r['bundles']:>8} {r['files']:>6} {r['bytes']:>12} {r['seconds']:>8.2f}")
        print(
            f"ratio {args.fanout} vs 1: bytes x{many['bytes'] / max(one['bytes'], 1):.2f}, "
            f"time x{many['seconds'] / max(one['seconds'], 1e-9):.2f} (goal: bytes x1, time at most x3)"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
