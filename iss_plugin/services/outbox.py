"""Writing events into the outbox, in the caller's transaction.

A row becomes a message only if the surrounding transaction commits; the relay
(`iss_plugin.adapters.bus.relay`) publishes it with publisher confirms and marks it sent after the
broker confirmed it. Events are validated against their schema here, so an invalid event fails
the change that produced it instead of reaching the bus."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from iss_plugin.adapters.bus.codec import check_envelope
from iss_plugin.adapters.db.models import OutboxEvent
from iss_plugin.domain.events import ADDRESSED_TYPES, make_envelope, routing_key
from iss_plugin.domain.jsontypes import JSONObject


def add_event(
    session: Session,
    event_type: str,
    data: JSONObject,
    *,
    source: str,
    subject: str | None = None,
    target_server: str | None = None,
) -> str:
    """Add an event row; it is sent by the relay only if the surrounding transaction commits.

    `target_server`: the server an addressed event goes to (bundle.ready: the destination;
    bundle.imported/rejected: the source that sent the bundle). Raises SchemaViolation."""
    if event_type in ADDRESSED_TYPES and not target_server:
        raise ValueError(f"{event_type} is addressed to one server: give target_server")
    envelope = make_envelope(event_type, source, data, subject=subject)
    return publish_event(session, envelope, routing_key(event_type, target_server))


def publish_event(session: Session, envelope: JSONObject, routing_key: str) -> str:
    """Emit a ready envelope (a consumer's answer) through the outbox, in the caller's transaction.

    Validates first (SchemaViolation on a bad event). Returns the event id."""
    check_envelope(envelope)
    event_id: str = envelope["id"]
    session.add(OutboxEvent(event_id=event_id, type=envelope["type"], routing_key=routing_key, body=envelope))
    return event_id


def pending(session: Session) -> tuple[int, datetime | None]:
    """How many events wait for the relay, and when the oldest was written."""
    count, oldest = session.execute(
        select(func.count(OutboxEvent.id), func.min(OutboxEvent.created)).where(OutboxEvent.sent_at.is_(None))
    ).one()
    return int(count), oldest
