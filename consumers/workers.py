"""The export, import and status workers: an EventConsumer on the role's queue."""

from __future__ import annotations

from typing import Any

from iss_plugin.adapters.bus.connection import make_kombu_connection
from iss_plugin.adapters.bus.consumer import EventConsumer
from iss_plugin.adapters.bus.topology import build, export_queue_name, import_queue_name, status_queue_name
from iss_plugin.bootstrap import App

from . import handlers
from .roles import ROLES


def make_worker(app: App, role: str, *, connection: Any = None) -> EventConsumer:
    """`connection`: a kombu Connection (default: one to the configured bus)."""
    bus, server = app.settings.bus, app.server_id
    if role == "export":
        topology, queue, table = (
            build(bus, export_for=[server]),
            export_queue_name(bus.prefix),
            handlers.export_handlers(app),
        )
    elif role == "import":
        topology, queue, table = (
            build(bus, import_for=[server]),
            import_queue_name(bus.prefix, server),
            handlers.import_handlers(app),
        )
    elif role == "status":
        topology, queue, table = (
            build(bus, status_for=[server]),
            status_queue_name(bus.prefix, server),
            handlers.status_handlers(app),
        )
    else:
        raise ValueError(f"unknown worker role {role!r}: one of {', '.join(ROLES)}")
    return EventConsumer(
        connection or make_kombu_connection(bus),
        topology,
        [queue],
        table,
        name=f"{role}@{server}",
        prefetch=bus.prefetch,
        confirm_timeout=bus.confirm_timeout,
    )
