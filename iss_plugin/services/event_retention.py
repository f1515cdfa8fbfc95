"""Retention of the event tables: sent outbox rows and processed-event markers older than
`event_retention_days` are deleted, a bounded batch per transaction, so neither table grows
without end and no transaction holds its locks for long.

Never deleted: an unsent outbox row (whatever its age: the relay still owes it to the broker) and
a marker younger than the retention (a redelivered copy of its event must still find it; the
safe minimum is in docs/operations.md "Event retention"). What is deleted is added to
pruned_event_counts in the same transaction, so /metrics' event counters never go down."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from iss_plugin.adapters.db.event_tables import SENT, add_pruned_counts, delete_old_rows, pruned_counts
from iss_plugin.adapters.db.uow import UnitOfWork

BATCH_ROWS = 5000  # rows per transaction: tens of milliseconds of lock (docs/operations.md)
PROCESSED = "processed"
__all__ = ["BATCH_ROWS", "EventsPruned", "prune_events", "pruned_counts", "retention_cutoff"]


@dataclass
class EventsPruned:
    outbox: int = 0  # sent outbox rows deleted
    processed: int = 0  # processed-event markers deleted
    transactions: int = 0
    longest_transaction_seconds: float = 0.0
    complete: bool = True  # False: max_batches stopped it with old rows left (the next pass goes on)


def retention_cutoff(now: datetime, retention_days: int) -> datetime | None:
    """Rows older than this go; None: keep everything (retention 0)."""
    return now - timedelta(days=retention_days) if retention_days > 0 else None


def prune_events(
    make_uow: Callable[[], UnitOfWork],
    retention_days: int,
    *,
    now: datetime | None = None,
    batch_rows: int = BATCH_ROWS,
    max_batches: int | None = None,
) -> EventsPruned:
    """Delete sent outbox rows and processed markers older than the retention, batch_rows per
    committed transaction, at most max_batches transactions (None: until none is left)."""
    result = EventsPruned()
    cutoff = retention_cutoff(now or datetime.now(UTC), retention_days)
    if cutoff is None:
        return result
    for outcome in (SENT, PROCESSED):
        while True:
            if max_batches is not None and result.transactions >= max_batches:
                result.complete = False
                return result
            started = time.monotonic()
            with make_uow() as uow:
                removed = delete_old_rows(uow.session, outcome, cutoff, batch_rows)
                add_pruned_counts(uow.session, outcome, removed)
                uow.commit()
                sqlite = uow.session.get_bind().dialect.name == "sqlite"
            took = time.monotonic() - started
            result.transactions += 1
            result.longest_transaction_seconds = max(result.longest_transaction_seconds, took)
            deleted = sum(removed.values())
            if outcome == SENT:
                result.outbox += deleted
            else:
                result.processed += deleted
            if deleted < batch_rows:
                break
            if sqlite:
                # one writer at a time on SQLite: leave the database to the relay and the workers
                # waiting in their busy handler (it polls every 100 ms at most) as long again
                time.sleep(max(took, 0.1))
    return result
