"""Envelopes on the wire: CloudEvents 1.0 structured mode, JSON, validated against schemas/events/.

One place decides what a valid iss event is, for publishers (outbox, relay, consumers' answers)
and for consumers (decode -> validate -> dispatch)."""

from __future__ import annotations

import json

import schemas
from iss_plugin.domain.errors import SchemaViolation
from iss_plugin.domain.events import EVENT_TYPES, schema_path
from schemas import JSONObject

# CloudEvents AMQP binding, structured content mode.
CONTENT_TYPE = "application/cloudevents+json"
CONTENT_ENCODING = "utf-8"
ENVELOPE_SCHEMA = "events/cloudevent.v1.json"


class DecodeError(ValueError):
    """The body is not a JSON object (bad encoding, not JSON, not an object)."""


def envelope_problems(envelope: object) -> list[str]:
    """Every way `envelope` breaks the envelope schema and its type's schema (empty: valid)."""
    if not isinstance(envelope, dict):
        return [f"(top): an event is a JSON object, not {type(envelope).__name__}"]
    event_type = envelope.get("type")
    if event_type not in EVENT_TYPES:
        problems = schemas.problems(ENVELOPE_SCHEMA, envelope)
        return [*problems, f"type: {event_type!r} is not an iss event type ({', '.join(EVENT_TYPES)})"]
    return schemas.problems(schema_path(event_type), envelope)


def check_envelope(envelope: object) -> JSONObject:
    """Return the envelope, or raise SchemaViolation listing every problem."""
    problems = envelope_problems(envelope)
    if problems or not isinstance(envelope, dict):  # not a dict: there are problems
        what = envelope.get("type") if isinstance(envelope, dict) else None
        raise SchemaViolation(f"event {what or '(no type)'} does not match its schema", problems)
    return envelope


def encode(envelope: JSONObject) -> bytes:
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode(CONTENT_ENCODING)


def decode(body: bytes | str) -> JSONObject:
    """bytes -> envelope dict, or DecodeError. Does not validate."""
    try:
        text = body.decode(CONTENT_ENCODING) if isinstance(body, (bytes, bytearray, memoryview)) else body
        value = json.loads(text)
    except (UnicodeDecodeError, ValueError, TypeError) as e:
        raise DecodeError(f"body is not UTF-8 JSON: {e}") from None
    if not isinstance(value, dict):
        raise DecodeError(f"body is JSON but not an object ({type(value).__name__})")
    return value
