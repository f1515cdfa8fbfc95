"""Which service handles which event type, per role. Thin: the bus base decodes, validates and
acks; these adapt an Event to a service call in a fresh unit of work."""

from __future__ import annotations

from iss_plugin.bootstrap import App
from iss_plugin.domain import events as ev
from iss_plugin.domain.events import Event
from iss_plugin.services import propagation


def export_handlers(app: App) -> dict:
    ctx = app.source_context()
    return {
        ev.CONTENT_VIEW_PUBLISHED: lambda e: propagation.on_content_view_published(app.uow(), _env(e), ctx),
        ev.REPOSITORY_CHANGED: lambda e: propagation.on_repository_changed(app.uow(), _env(e), ctx),
        ev.EXPORT_REQUESTED: lambda e: propagation.on_export_requested(app.uow(), _env(e), ctx),
    }


def import_handlers(app: App) -> dict:
    ctx = app.destination_context()
    return {ev.BUNDLE_READY: lambda e: propagation.on_bundle_ready(app.uow(), _env(e), ctx)}


def status_handlers(app: App) -> dict:
    ctx = app.source_context()
    handle = lambda e: propagation.on_bundle_status(app.uow(), _env(e), ctx)  # noqa: E731
    return {ev.BUNDLE_IMPORTED: handle, ev.BUNDLE_REJECTED: handle}


def _env(event: Event) -> dict:
    return event.to_envelope()
