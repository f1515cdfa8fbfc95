"""CloudEvents 1.0 envelopes (JSON structured mode) for the iss event types."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

CONTENT_VIEW_PUBLISHED = "iss.content_view.published.v1"
REPOSITORY_CHANGED = "iss.repository.changed.v1"
BUNDLE_READY = "iss.bundle.ready.v1"
BUNDLE_IMPORTED = "iss.bundle.imported.v1"
BUNDLE_REJECTED = "iss.bundle.rejected.v1"
EXPORT_REQUESTED = "iss.export.requested.v1"

EVENT_TYPES = (
    CONTENT_VIEW_PUBLISHED,
    REPOSITORY_CHANGED,
    BUNDLE_READY,
    BUNDLE_IMPORTED,
    BUNDLE_REJECTED,
    EXPORT_REQUESTED,
)


def schema_path(event_type: str) -> str:
    return f"events/{event_type}.json"


def make_envelope(event_type: str, source: str, data: dict, *, subject: str | None = None,
                  event_id: str | None = None, time: datetime | None = None) -> dict:
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    envelope = {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": event_type,
        "time": (time or datetime.now(timezone.utc)).isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "dataschema": f"https://iss.example/schemas/{schema_path(event_type)}",
        "data": data,
    }
    if subject:
        envelope["subject"] = subject
    return envelope


def routing_key(event_type: str, target_server: str | None = None) -> str:
    """Topic routing key: the type without its version, plus the addressed server when there is one."""
    base = event_type.rsplit(".", 1)[0]
    return f"{base}.{target_server}" if target_server else base
