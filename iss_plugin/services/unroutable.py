"""Messages the broker could not route (the alternate exchange's queue): list them, replay them, audited.

`iss bus unroutable list|replay` call these; `adapters.bus.unroutable` does the broker work.
A replay writes one audit row (`unroutable.replay`) per message the broker confirmed and routed;
a message still unroutable stays in the queue, and an id not there changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from iss_plugin.adapters.bus.connection import is_amqp
from iss_plugin.adapters.bus.topology import build
from iss_plugin.adapters.bus.unroutable import (
    NOT_FOUND,
    REPLAYED,
    STAYED,
    ReplayReport,
    UnroutableListing,
    UnroutableQueue,
)
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain.errors import UsageError

from .audit import record

if TYPE_CHECKING:
    from iss_plugin.settings import Settings

__all__ = [
    "NOT_FOUND",
    "REPLAYED",
    "STAYED",
    "ReplayReport",
    "UnroutableListing",
    "list_unroutable",
    "replay",
    "startup_warning",
    "waiting_count",
]


class App(Protocol):
    """What these functions need of bootstrap.App (services do not import the bootstrap)."""

    @property
    def settings(self) -> Settings: ...

    def uow(self) -> UnitOfWork: ...


def _queue(app: App) -> UnroutableQueue:
    return UnroutableQueue(app.settings.bus, build(app.settings.bus))


def waiting_count(app: App) -> int | None:
    """How many messages wait in the unroutable queue, counted by the broker (passive declare, nothing
    read); None when the bus has no such queue (kombu memory:// has no alternate exchange). Raises
    TransientError when the broker does not answer."""
    if not is_amqp(app.settings.bus.url):
        return None
    return _queue(app).count()


def startup_warning(app: App) -> str | None:
    """What a worker or `iss run` warns at start when unroutable messages wait, else None. Raises as
    waiting_count does: the caller decides that a failed check does not stop the start."""
    waiting = waiting_count(app)
    if not waiting:
        return None
    noun = "message waits" if waiting == 1 else "messages wait"
    return (
        f"{waiting} unroutable {noun} in {build(app.settings.bus).unroutable_queue} (published with a routing key "
        "no queue bound when it arrived): run `iss bus unroutable list` to see them and "
        "`iss bus unroutable replay` once the queue that takes them exists"
    )


def list_unroutable(app: App, limit: int) -> UnroutableListing:
    """The first `limit` unroutable messages in queue order and how many wait (nothing consumed)."""
    return _queue(app).listing(limit)


def replay(app: App, event_ids: Sequence[str], replay_all: bool, actor: str) -> ReplayReport:
    """Republish the unroutable messages of `event_ids` (or all of them) to their original routing keys."""
    if replay_all and event_ids:
        raise UsageError(
            "give either --event-id ID (repeatable) or --all, not both: nothing was replayed; "
            "see `iss bus unroutable list` for the ids"
        )
    if not replay_all and not event_ids:
        raise UsageError(
            "say what to replay: --event-id ID (repeatable) or --all; see `iss bus unroutable list` for the ids"
        )
    report = _queue(app).replay(None if replay_all else list(event_ids))
    for done in report.having(REPLAYED):
        record(
            app.uow(),
            actor,
            "unroutable.replay",
            done.event_id,
            organization=done.organization,
            outcome="success",
            queue=report.queue,
            exchange=report.exchange,
            routing_key=done.routing_key,
            event_type=done.event_type,
        )
    return report
