"""Katello's "content view publish succeeded" webhook -> an iss.content_view.published.v1 envelope.

Pure and standard-library only: shared by producers/foreman_hook.py (which must run with only
pika, the standard library and this package) and the web API's POST /api/v1/hooks/foreman.

Both the flat variables of Katello's example template (`content_view_label`,
`organization_label`, `content_view_version_name`, ...) and nested objects
(`content_view: {id, name, label}`, `organization: {...}`, `version: "2.0"`) are understood.
Foreman's numeric ids are not carried: they mean nothing on another server. The event id is
derived from organization/content view/version, so a webhook delivered twice yields the same event."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

EVENT_TYPE = "iss.content_view.published.v1"
ROUTING_KEY = "iss.content_view.published"
SCHEMA = f"events/{EVENT_TYPE}.json"
DATASCHEMA = f"https://iss.example/schemas/{SCHEMA}"
CONTENT_TYPE = "application/cloudevents+json"
ACCEPTED_EVENTS = ("content_view.publish_succeeded", "content_view.publish_suceeded")  # Katello's example has the typo
ID_NAMESPACE = uuid.UUID("6f1d3c2e-8f5a-4c1b-9e7d-2a4b6c8d0e1f")

EXAMPLE_PAYLOAD = {
    "event_name": "actions.katello.content_view.publish_succeeded",
    "context": {"user_login": "admin", "remote_ip": "192.0.2.10"},
    "payload": {
        "content_view_version_id": 42,
        "content_view_version_name": "RHEL 8 Base 3.0",
        "content_view_id": 7,
        "content_view_name": "RHEL 8 Base",
        "content_view_label": "RHEL_8_Base",
        "organization_id": 1,
        "organization_name": "ACME Corporation",
        "organization_label": "ACME",
        "description": "monthly refresh",
        "task": {
            "id": "1b0d7a0e-0c6f-4f65-9a4e-3c2b1a098765",
            "label": "Actions::Katello::ContentView::Publish",
            "result": "success",
            "state": "stopped",
        },
    },
}


class WebhookPayloadError(ValueError):
    """The webhook body cannot be mapped to an event (what is missing or wrong, said once)."""


def _pick(payload: dict[str, Any], flat: str, nested: str, key: str) -> Any:
    value = payload.get(flat)
    if value in (None, ""):
        obj = payload.get(nested)
        value = obj.get(key) if isinstance(obj, dict) else None
    return value


def _version(payload: dict[str, Any]) -> str | None:
    for key in ("version", "content_view_version"):
        value = payload.get(key)
        if isinstance(value, dict):
            if "major" in value:
                return f"{value['major']}.{value.get('minor', 0)}"
            value = value.get("version") or value.get("name")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value) if isinstance(value, float) else f"{value}.0"
        if isinstance(value, str) and value.strip():
            m = re.search(r"(\d+)\.(\d+)\s*$", value.strip())
            if m:
                return f"{int(m.group(1))}.{int(m.group(2))}"
    if "major" in payload:
        return f"{payload['major']}.{payload.get('minor', 0)}"
    name = payload.get("content_view_version_name")
    if isinstance(name, str):
        m = re.search(r"(\d+)\.(\d+)\s*$", name.strip())
        if m:
            return f"{int(m.group(1))}.{int(m.group(2))}"
    return None


def to_event(webhook: dict[str, Any], *, source: str, time: datetime | None = None) -> dict[str, Any]:
    """Map a foreman_webhooks body to an iss.content_view.published.v1 envelope (not yet validated)."""
    if not isinstance(webhook, dict):
        raise WebhookPayloadError("the webhook body is not a JSON object")
    event_name = webhook.get("event_name")
    if event_name is not None and not str(event_name).endswith(ACCEPTED_EVENTS):
        raise WebhookPayloadError(
            f"event {event_name!r} is not a content view publish (expected "
            f"actions.katello.content_view.publish_succeeded)"
        )
    payload = webhook.get("payload", webhook)
    if not isinstance(payload, dict):
        raise WebhookPayloadError("the webhook's payload is not a JSON object")
    organization = _pick(payload, "organization_label", "organization", "label")
    content_view = _pick(payload, "content_view_label", "content_view", "label")
    version = _version(payload)
    missing = [
        name
        for name, value in (
            ("organization label", organization),
            ("content view label", content_view),
            ("content view version (X.Y)", version),
        )
        if not value
    ]
    if missing:
        raise WebhookPayloadError(
            "the payload does not say "
            + ", ".join(missing)
            + " (the webhook template must include organization_label, content_view_label and "
            "content_view_version_name or version)"
        )
    data = {
        "organization": str(organization),
        "content_view": str(content_view),
        "version": version,
        "origin": "foreman",
    }
    for key, value in (
        ("organization_name", _pick(payload, "organization_name", "organization", "name")),
        ("content_view_name", _pick(payload, "content_view_name", "content_view", "name")),
        ("description", payload.get("description")),
    ):
        if isinstance(value, str) and value:
            data[key] = value
    stamp = (time or datetime.now(UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z")
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid5(ID_NAMESPACE, f"{EVENT_TYPE}:{organization}/{content_view}/{version}")),
        "source": source,
        "type": EVENT_TYPE,
        "time": stamp,
        "datacontenttype": "application/json",
        "dataschema": DATASCHEMA,
        "subject": f"{organization}/{content_view}/{version}",
        "data": data,
    }
