"""Exactly-once *effect* for at-least-once delivery.

A consumer records the event id in the same transaction as its state change; a redelivered or
duplicated event finds its id and is skipped. ProcessedEvent's primary key is
(event_id, consumer), so two workers racing on the same event cannot both commit: the loser's
insert fails (at flush or commit) and it treats the event as a duplicate.

Typical handler:

    def on_bundle_ready(event):
        process_once(app.uow, event.id, "import", lambda uow: import_bundle(uow, event))

`claim()` inserts the marker first, so on PostgreSQL a concurrent duplicate waits on the row
lock and then sees a duplicate instead of doing the work twice."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from iss_plugin.adapters.db.models import ProcessedEvent
from iss_plugin.adapters.db.uow import UnitOfWork

T = TypeVar("T")


def already_processed(session: Session, event_id: str, consumer: str) -> bool:
    return (
        session.scalar(
            select(ProcessedEvent.event_id).where(
                ProcessedEvent.event_id == event_id, ProcessedEvent.consumer == consumer
            )
        )
        is not None
    )


def mark_processed(session: Session, event_id: str, consumer: str) -> None:
    """Record the event in the caller's transaction (commit makes it and the change durable together)."""
    session.add(ProcessedEvent(event_id=event_id, consumer=consumer))


def claim(session: Session, event_id: str, consumer: str) -> bool:
    """Insert the marker now (flush, in a savepoint). False if the event was already processed.

    The caller's transaction stays usable either way."""
    if already_processed(session, event_id, consumer):
        return False
    try:
        with session.begin_nested():
            session.add(ProcessedEvent(event_id=event_id, consumer=consumer))
    except IntegrityError:
        return False
    return True


def process_once(
    make_uow: Callable[[], UnitOfWork], event_id: str, consumer: str, work: Callable[[UnitOfWork], T]
) -> tuple[bool, T | None]:
    """Run `work(uow)` and commit it with the marker, unless the event was processed already.

    Returns (True, result) when the work ran and committed, (False, None) for a duplicate. The
    unit of work must not be committed by `work` itself. Other errors propagate (nothing is
    committed: the unit of work rolls back)."""
    with make_uow() as uow:
        if not claim(uow.session, event_id, consumer):
            return False, None
        result = work(uow)
        try:
            uow.commit()
        except IntegrityError:
            uow.rollback()
            if _processed_now(make_uow, event_id, consumer):
                return False, None
            raise
    return True, result


def _processed_now(make_uow: Callable[[], UnitOfWork], event_id: str, consumer: str) -> bool:
    with make_uow() as uow:
        return already_processed(uow.session, event_id, consumer)


def commit_processed(uow: UnitOfWork, event_id: str, consumer: str) -> bool:
    """Record the event and commit the caller's transaction with it. False: another worker committed
    the same event first (a redelivery handled twice at once): this transaction is rolled back. It
    holds nothing the other did not do: what either worker acts on it locks first and marks (in
    flight), so the other one waited and then skipped it. Any other integrity error is raised."""
    mark_processed(uow.session, event_id, consumer)
    try:
        uow.commit()
    except IntegrityError:
        uow.rollback()
        if already_processed(uow.session, event_id, consumer):
            return False
        raise
    return True


# --- forced sends ---------------------------------------------------------------------------------
# A forced send (the destination asked: iss.export.requested.v1) goes out whatever is in flight, so
# the in-flight marker cannot tell a second handler of the same request that it is done. Its claim
# is a processed marker per request and subscription, committed with the in-flight marker (before an
# online push, with the handler's commit for a bundle file): another handler of the same request
# that finds it, under the subscription's lock, skips the subscription. A new request has a new id.

FORCED_SEND = "export.forced"
_KEY_LENGTH = 64  # ProcessedEvent.event_id


def _forced_send_key(request_id: str, subscription_id: int) -> str:
    key = f"{request_id}@{subscription_id}"
    return key if len(key) <= _KEY_LENGTH else hashlib.sha256(key.encode()).hexdigest()


def forced_send_claimed(session: Session, request_id: str, subscription_id: int) -> bool:
    return already_processed(session, _forced_send_key(request_id, subscription_id), FORCED_SEND)


def claim_forced_send(session: Session, request_id: str, subscription_id: int) -> None:
    """In the caller's transaction: it commits with the send's in-flight marker."""
    mark_processed(session, _forced_send_key(request_id, subscription_id), FORCED_SEND)


def release_forced_send(session: Session, request_id: str, subscription_id: int) -> None:
    """A forced push that failed: its request, redelivered, sends it again."""
    key = _forced_send_key(request_id, subscription_id)
    session.execute(
        delete(ProcessedEvent).where(ProcessedEvent.event_id == key, ProcessedEvent.consumer == FORCED_SEND)
    )
