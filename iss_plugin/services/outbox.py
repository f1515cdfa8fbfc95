"""Writing events into the outbox, in the caller's transaction.

A row becomes a message only if the surrounding transaction commits; the relay
(`iss_plugin.adapters.bus.relay`) publishes it with publisher confirms and marks it sent after the
broker confirmed it. Events are validated against their schema here, so an invalid event fails
the change that produced it instead of reaching the bus."""

from __future__ import annotations

import json
import threading
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

import schemas
from iss_plugin.adapters.bus.codec import check_envelope
from iss_plugin.adapters.db.models import OutboxEvent
from iss_plugin.domain.errors import SchemaViolation
from iss_plugin.domain.events import ADDRESSED_TYPES, BUNDLE_READY, make_envelope, routing_key, schema_path
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
    alike = _copy_for_another_destination(envelope)
    if alike is None:
        return publish_event(session, envelope, routing_key(event_type, target_server))
    if alike in _VALID_COPIES:
        _check_destination(data["destination"])
    else:
        check_envelope(envelope)
        with _VALID_COPIES_LOCK:  # the web server and an embedded runtime write from several threads
            _VALID_COPIES[alike] = None
            while len(_VALID_COPIES) > 256:
                del _VALID_COPIES[next(iter(_VALID_COPIES))]
    return _write(session, envelope, routing_key(event_type, target_server))


def publish_event(session: Session, envelope: JSONObject, routing_key: str) -> str:
    """Emit a ready envelope (a consumer's answer) through the outbox, in the caller's transaction.

    Validates first (SchemaViolation on a bad event). Returns the event id."""
    check_envelope(envelope)
    return _write(session, envelope, routing_key)


# A fan-out writes one bundle.ready per destination, alike but for data.destination (the id and the
# time make_envelope generates are valid by construction). A copy of an envelope validated whole
# is valid when its destination is: that field is checked against its own schema (the server id
# definition; no other rule of the schema names it, tests/unit/test_outbox_validation.py), the
# rest not again (validating costs ~0.5 ms an event, most of a fan-out's cost per destination).
_VALID_COPIES: dict[str, None] = {}  # insertion-ordered: the oldest go first
_VALID_COPIES_LOCK = threading.Lock()


def _copy_for_another_destination(envelope: JSONObject) -> str | None:
    if envelope["type"] != BUNDLE_READY or not isinstance(envelope.get("data"), dict):
        return None
    if "destination" not in envelope["data"]:
        return None
    rest = {k: v for k, v in envelope.items() if k not in ("id", "time")}
    rest["data"] = {k: v for k, v in envelope["data"].items() if k != "destination"}
    try:
        return json.dumps(rest, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):  # not JSON: the full check names the problem
        return None


def _check_destination(destination: object) -> None:
    bad = list(schemas.part_validator(schema_path(BUNDLE_READY), "#/$defs/server_id").iter_errors(destination))
    if bad:
        problems = [f"data/destination: {e.message}" for e in bad]
        raise SchemaViolation(f"event {BUNDLE_READY} does not match its schema", problems)


def _write(session: Session, envelope: JSONObject, routing_key: str) -> str:
    event_id: str = envelope["id"]
    session.add(OutboxEvent(event_id=event_id, type=envelope["type"], routing_key=routing_key, body=envelope))
    return event_id


def pending(session: Session) -> tuple[int, datetime | None]:
    """How many events wait for the relay, and when the oldest was written."""
    count, oldest = session.execute(
        select(func.count(OutboxEvent.id), func.min(OutboxEvent.created)).where(OutboxEvent.sent_at.is_(None))
    ).one()
    return int(count), oldest
