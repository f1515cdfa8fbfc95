"""SQL of event retention (services/event_retention.py): deleting a batch of old rows of the event
tables, and the running totals of what was deleted (pruned_event_counts), per dialect."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session

from iss_plugin.adapters.db.models import OutboxEvent, ProcessedEvent, PrunedEventCount

SENT = "sent"  # outbox rows the broker confirmed; else processed-event markers


def delete_old_rows(session: Session, outcome: str, cutoff: datetime, rows: int) -> Counter[str]:
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


def add_pruned_counts(session: Session, outcome: str, removed: Counter[str]) -> None:
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
