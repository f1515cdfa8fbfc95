"""Parked messages (the dead-letter side of the bus): list them, replay or discard one, audited.

The web dashboard and the JSON API call these; `adapters.bus.parking` does the broker work.
Replay and discard write an audit row (`parked.replay`, `parked.discard`) after the broker
confirmed the change; a message that is not there any more is a NotFound and changes nothing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Protocol, TypeVar

from iss_plugin.adapters.bus.parking import ParkedMessage, ParkedPage, ParkedQueues
from iss_plugin.adapters.bus.topology import build
from iss_plugin.adapters.db.uow import UnitOfWork

from .audit import record

if TYPE_CHECKING:
    from iss_plugin.settings import Settings


class App(Protocol):
    """What these functions need of bootstrap.App (services do not import the bootstrap)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def server_id(self) -> str: ...

    def uow(self) -> UnitOfWork: ...


K = TypeVar("K", bound=Hashable)

__all__ = [
    "ParkedMessage",
    "ParkedPage",
    "discard",
    "list_parked",
    "parked_count",
    "parked_page",
    "parked_tally",
    "replay",
]


def _queues(app: App) -> ParkedQueues:
    server = app.server_id
    topology = build(app.settings.bus, export_for=[server], status_for=[server], import_for=[server])
    return ParkedQueues(app.settings.bus, topology)


def list_parked(app: App) -> list[ParkedMessage]:
    """Every parked message of this server's role queues (export, import, status): reads them all
    (tests, small queues); the dashboard reads `parked_page`."""
    return _queues(app).messages()


def parked_count(app: App) -> int:
    """How many messages the parking queues hold, counted by the broker (no message read)."""
    return _queues(app).count()


def parked_tally(app: App, key: Callable[[ParkedMessage], K]) -> Counter[K]:
    """Parked messages counted per `key` (reads every message, keeps only the counts)."""
    return _queues(app).tally(key)


def parked_page(app: App, offset: int, limit: int) -> ParkedPage:
    """At most `limit` parked messages from `offset` on, and the total counted without reading."""
    return _queues(app).page(offset, limit)


def replay(app: App, event_id: str, actor: str) -> ParkedMessage:
    """Publish the parked message `event_id` again to its original routing key; it leaves the parking queue."""
    parked = _queues(app).replay(event_id)
    _audit(app, actor, "parked.replay", parked)
    return parked


def discard(app: App, event_id: str, actor: str) -> ParkedMessage:
    """Drop the parked message `event_id` for good."""
    parked = _queues(app).discard(event_id)
    _audit(app, actor, "parked.discard", parked)
    return parked


def _audit(app: App, actor: str, action: str, parked: ParkedMessage) -> None:
    record(
        app.uow(),
        actor,
        action,
        parked.event_id,
        organization=parked.organization,
        outcome="success",
        queue=parked.queue,
        routing_key=parked.routing_key,
        event_type=parked.event_type,
        reason=parked.reason,
    )
