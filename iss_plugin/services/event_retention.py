"""Retention of the event tables: sent outbox rows and processed-event markers older than
`event_retention_days` are deleted, a bounded batch per transaction, so neither table grows
without end and no transaction holds its locks for long.

Never deleted: an unsent outbox row (whatever its age: the relay still owes it to the broker) and
a marker younger than the retention (a redelivered copy of its event must still find it; the
safe minimum is in docs/operations.md "Event retention"). What is deleted is added to
pruned_event_counts in the same transaction, so /metrics' event counters never go down."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session

from iss_plugin.adapters.db.models import OutboxEvent, ProcessedEvent, PrunedEventCount
from iss_plugin.adapters.db.uow import UnitOfWork

BATCH_ROWS = 5000  # rows per transaction: tens of milliseconds of lock (docs/operations.md)
SENT = "sent"
PROCESSED = "processed"


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
                removed = _delete_batch(uow.session, outcome, cutoff, batch_rows)
                _count_pruned(uow.session, outcome, removed)
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


def _delete_batch(session: Session, outcome: str, cutoff: datetime, rows: int) -> Counter[str]:
    """One statement: the rows it deleted (RETURNING), by event type or consumer."""
    if outcome == SENT:
        old = select(OutboxEvent.id).where(OutboxEvent.sent_at.is_not(None), OutboxEvent.sent_at < cutoff)
        stmt = (
            delete(OutboxEvent).where(OutboxEvent.id.in_(old.limit(rows).scalar_subquery())).returning(OutboxEvent.type)
        )
    else:
        keys = select(ProcessedEvent.event_id, ProcessedEvent.consumer).where(ProcessedEvent.at < cutoff)
        stmt = (
            delete(ProcessedEvent)
            .where(tuple_(ProcessedEvent.event_id, ProcessedEvent.consumer).in_(keys.limit(rows)))
            .returning(ProcessedEvent.consumer)
        )
    names = session.execute(stmt.execution_options(synchronize_session=False)).scalars()
    return Counter(names)


def _count_pruned(session: Session, outcome: str, removed: Counter[str]) -> None:
    """Add to pruned_event_counts atomically (two pruners at once each add what they deleted)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    for name, n in sorted(removed.items()):
        stmt = insert(PrunedEventCount).values(name=name, outcome=outcome, count=n)
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["name", "outcome"], set_={"count": PrunedEventCount.count + stmt.excluded.count}
            )
        )


def pruned_counts(session: Session) -> dict[tuple[str, str], int]:
    """(event type or consumer, outcome) -> rows retention removed so far."""
    rows = session.execute(select(PrunedEventCount.name, PrunedEventCount.outcome, PrunedEventCount.count))
    return {(name, outcome): count for name, outcome, count in rows}
