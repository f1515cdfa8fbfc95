"""Which service handles which event type, per role. Thin: the bus base decodes, validates and
acks; these adapt an Event to a service call in a fresh unit of work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from iss_plugin.adapters.bus.consumer import Handler
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.bootstrap import App
from iss_plugin.domain import events as ev
from iss_plugin.domain.events import Event
from iss_plugin.services import propagation

Context = TypeVar("Context")


def export_handlers(app: App) -> dict[str, Handler]:
    ctx = app.source_context()
    return {
        ev.CONTENT_VIEW_PUBLISHED: _handler(app, propagation.on_content_view_published, ctx),
        ev.REPOSITORY_CHANGED: _handler(app, propagation.on_repository_changed, ctx),
        ev.EXPORT_REQUESTED: _handler(app, propagation.on_export_requested, ctx),
    }


def import_handlers(app: App) -> dict[str, Handler]:
    ctx = app.destination_context()
    return {ev.BUNDLE_READY: _handler(app, propagation.on_bundle_ready, ctx)}


def status_handlers(app: App) -> dict[str, Handler]:
    handle = _handler(app, propagation.on_bundle_status, app.source_context())
    return {ev.BUNDLE_IMPORTED: handle, ev.BUNDLE_REJECTED: handle}


def _handler(app: App, service: Callable[[UnitOfWork, dict[str, Any], Context], object], ctx: Context) -> Handler:
    """Call `service` with a fresh unit of work, the event's envelope and `ctx`."""

    def handle(event: Event) -> None:
        service(app.uow(), event.to_envelope(), ctx)

    return handle
