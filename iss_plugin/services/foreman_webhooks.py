"""A Foreman webhook received by the web API becomes an iss.content_view.published.v1 outbox row,
mapped exactly as producers/foreman_hook.py maps it (schemas/foreman_webhook.py, shared)."""

from __future__ import annotations

from typing import TypedDict

from sqlalchemy import select

from iss_plugin.adapters.db.models import OutboxEvent
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain.errors import RejectedInput
from iss_plugin.domain.events import routing_key
from iss_plugin.domain.jsontypes import JSONObject
from schemas.foreman_webhook import EVENT_TYPE, WebhookPayloadError, to_event

from .audit import audit
from .outbox import publish_event


class HookAccepted(TypedDict):
    event_id: str
    duplicate: bool  # the same publish was delivered before: nothing new was written
    organization: str
    content_view: str
    version: str


def accept_publish_webhook(uow: UnitOfWork, webhook: object, source: str, actor: str) -> HookAccepted:
    """RejectedInput (nothing written) for a body that is not a content view publish or breaks the schema."""
    try:
        envelope: JSONObject = to_event(webhook, source=source)  # type: ignore[arg-type]  # checked inside
    except WebhookPayloadError as e:
        raise RejectedInput(f"the Foreman webhook was refused: {e}") from None
    data = envelope["data"]
    with uow:
        seen = uow.session.scalar(select(OutboxEvent.id).where(OutboxEvent.event_id == envelope["id"]))
        if seen is None:
            publish_event(uow.session, envelope, routing_key(EVENT_TYPE))  # SchemaViolation before anything is written
            audit(
                uow.session,
                actor,
                "foreman.webhook",
                f"{data['organization']}/{data['content_view']}/{data['version']}",
                organization=data["organization"],
                event_id=envelope["id"],
            )
            uow.commit()
    return {
        "event_id": envelope["id"],
        "duplicate": seen is not None,
        "organization": data["organization"],
        "content_view": data["content_view"],
        "version": data["version"],
    }
