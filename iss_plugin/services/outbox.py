"""Writing events into the outbox, in the caller's transaction."""
from __future__ import annotations

from sqlalchemy.orm import Session

from iss_plugin.adapters.db.models import OutboxEvent
from iss_plugin.domain.events import make_envelope, routing_key


def add_event(session: Session, event_type: str, data: dict, *, source: str,
              subject: str | None = None, target_server: str | None = None) -> str:
    """Add an event row; it is sent by the relay only if the surrounding transaction commits."""
    envelope = make_envelope(event_type, source, data, subject=subject)
    session.add(OutboxEvent(event_id=envelope["id"], type=event_type,
                            routing_key=routing_key(event_type, target_server), body=envelope))
    return envelope["id"]
