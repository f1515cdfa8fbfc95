"""Event retention benchmark: prune N old sent outbox rows and N old processed markers on SQLite and
PostgreSQL while a consumer-like writer and a relay-like writer keep committing, in batches of
5,000 rows and (side by side) in one transaction.

    nice -n 10 .venv/bin/python bench/prune_events.py [--rows 200000] [--postgres postgresql+psycopg://postgres@127.0.0.1:5432]

Prints, per database and batch size: the time to prune, the transactions and the longest one, and
the concurrent writers' longest and 99th-percentile commit (against the same writers with no
pruning), plus the Events page and /metrics' event counts before and after. Not a test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from iss_plugin.adapters.db import migrate
from iss_plugin.adapters.db.engine import make_engine, make_session_factory
from iss_plugin.adapters.db.models import OutboxEvent, ProcessedEvent
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.services import dashboard
from iss_plugin.services.event_retention import BATCH_ROWS, prune_events

OLD = datetime.now(UTC) - timedelta(days=60)
CHUNK = 10_000


def body(event_id: str) -> dict:
    """About the size of a real bundle.ready envelope."""
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "iss://source",
        "type": "iss.bundle.ready.v1",
        "time": OLD.isoformat(),
        "data": {
            "organization": "ACME",
            "destination": "dc-east",
            "bundle_id": event_id,
            "location": f"file:///var/lib/iss/exports/dc-east/{event_id}.tar.gz",
            "repositories": [{"label": f"tools/r{i}", "version": i, "packages": 100 + i} for i in range(8)],
        },
    }


def fill(factory: sessionmaker[Session], rows: int, tag: str) -> None:
    with factory() as s:
        for start in range(0, rows, CHUNK):
            n = range(start, min(start + CHUNK, rows))
            s.execute(
                insert(OutboxEvent),
                [
                    {
                        "event_id": f"{tag}-{i}",
                        "type": "iss.bundle.ready.v1",
                        "routing_key": "iss.bundle.ready.v1.dc-east",
                        "body": body(f"{tag}-{i}"),
                        "created": OLD,
                        "sent_at": OLD,
                    }
                    for i in n
                ],
            )
            s.execute(insert(ProcessedEvent), [{"event_id": f"{tag}-{i}", "consumer": "import", "at": OLD} for i in n])
            s.commit()


class Writers:
    """A consumer (a marker and an outbox row, one commit) and a relay (marks its rows sent), each
    timing every commit."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._consumer), threading.Thread(target=self._relay)]

    def _timed(self, work: Callable[[Session], None]) -> None:
        started = time.monotonic()
        with self.factory() as s:
            work(s)
            s.commit()
        with self.lock:
            self.latencies.append(time.monotonic() - started)

    def _consumer(self) -> None:
        while not self.stop.is_set():
            key = uuid.uuid4().hex

            def handle(s: Session, key: str = key) -> None:
                s.add(ProcessedEvent(event_id=key, consumer="import"))
                s.add(OutboxEvent(event_id=key, type="iss.bundle.imported.v1", routing_key="r", body=body(key)))

            self._timed(handle)
            time.sleep(0.005)

    def _relay(self) -> None:
        while not self.stop.is_set():

            def mark(s: Session) -> None:
                ids = s.scalars(select(OutboxEvent.id).where(OutboxEvent.sent_at.is_(None)).limit(50)).all()
                if ids:
                    s.execute(update(OutboxEvent).where(OutboxEvent.id.in_(ids)).values(sent_at=datetime.now(UTC)))

            self._timed(mark)
            time.sleep(0.005)

    def __enter__(self) -> Writers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def summary(self) -> tuple[float, float, int]:
        xs = sorted(self.latencies)
        return xs[-1], xs[int(len(xs) * 0.99) - 1] if len(xs) > 100 else xs[-1], len(xs)


def page_and_metrics_ms(factory: sessionmaker[Session]) -> tuple[float, float]:
    def uow() -> UnitOfWork:
        return UnitOfWork(factory, lambda s: None)

    t = time.monotonic()
    dashboard.events(uow(), None)
    page = time.monotonic() - t
    t = time.monotonic()
    dashboard.event_counts(uow())
    return page * 1000, (time.monotonic() - t) * 1000


def run(name: str, url: str, rows: int) -> None:
    migrate.upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    make_uow = lambda: UnitOfWork(factory, lambda s: None)  # noqa: E731
    with Writers(factory) as idle:
        time.sleep(3)
    base_max, base_p99, base_n = idle.summary()
    print(f"\n== {name}: {rows:,} old sent outbox rows + {rows:,} old markers")
    print(f"   writers alone (3 s): {base_n} commits, longest {base_max * 1000:.1f} ms, p99 {base_p99 * 1000:.1f} ms")
    for batch in (BATCH_ROWS, rows):
        t = time.monotonic()
        fill(factory, rows, f"b{batch}")
        print(f"   filled in {time.monotonic() - t:.1f} s", end="; ")
        page, counts = page_and_metrics_ms(factory)
        print(f"Events page {page:.0f} ms, event counts {counts:.0f} ms")
        before = {(c.type, c.outcome): c.count for c in dashboard.event_counts(make_uow())}
        with Writers(factory) as busy:
            t = time.monotonic()
            pruned = prune_events(make_uow, 30, batch_rows=batch)
            took = time.monotonic() - t
        w_max, w_p99, w_n = busy.summary()
        after = {(c.type, c.outcome): c.count for c in dashboard.event_counts(make_uow())}
        page, counts = page_and_metrics_ms(factory)
        grew = all(after.get(k, 0) >= v for k, v in before.items() if k[1] != "pending")  # pending: a gauge
        print(
            f"   batch {batch:>7,}: pruned {pruned.outbox:,} + {pruned.processed:,} in {took:.1f} s, "
            f"{pruned.transactions} transactions, longest {pruned.longest_transaction_seconds * 1000:.0f} ms; "
            f"writers {w_n} commits, longest {w_max * 1000:.0f} ms ({w_max / base_max:.1f}x alone), "
            f"p99 {w_p99 * 1000:.1f} ms; after: Events page {page:.0f} ms, event counts {counts:.0f} ms, "
            f"counters kept: {grew}"
        )
        with factory() as s:
            left = s.scalar(
                select(func.count()).select_from(OutboxEvent).where(OutboxEvent.sent_at < OLD + timedelta(1))
            )
            assert left == 0, left
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run("SQLite", f"sqlite:///{tmp}/iss.db", args.rows)
    import psycopg

    name = f"iss_bench_{uuid.uuid4().hex[:12]}"
    admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        run("PostgreSQL", f"{args.postgres}/{name}", args.rows)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
