"""The outbox relay (`iss relay`): unsent outbox rows -> broker, marked sent only after the confirm.

    relay = relay_from_settings(settings, session_factory)
    relay.run_once()                 # publish what is unsent now; returns RelayResult
    relay.run_forever(stop_event)    # until stop_event is set; reconnects with backoff

Rows are read in id order, in batches, in short transactions (never held open while waiting for
the broker). A row whose message was nacked, returned, or not confirmed in time (or whose
connection died) stays unsent and goes again on the next pass: delivery is at least once, and
consumers absorb duplicates (services/idempotency.py). Killing the relay between the confirm and
the mark-sent commit therefore yields a duplicate, never a loss.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypedDict, Unpack

from sqlalchemy import Text, cast, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from iss_plugin.adapters.db.models import OutboxEvent

from .publisher import OutgoingMessage, Publisher, PublishError, Ticket, make_publisher

if TYPE_CHECKING:
    from iss_plugin.settings import Settings

    from .topology import Topology

log = logging.getLogger(__name__)

MARK_CHUNK = 500
BACKOFF_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)


@dataclass
class RelayResult:
    published: int = 0
    unconfirmed: int = 0
    batches: int = 0
    error: str | None = None


class RelayOptions(TypedDict, total=False):
    """OutboxRelay's keyword options, as relay_from_settings passes them on."""

    batch_size: int
    window: int
    poll_interval: float
    confirm_timeout: float
    on_confirmed: Callable[[list[int]], None] | None


# one batch in flight: its outbox rows (id, event_id, type, routing_key, body) and its ticket
Row = tuple[int, str, str, str, str]


class OutboxRelay:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        publisher: Publisher,
        *,
        batch_size: int = 1000,
        window: int = 3,
        poll_interval: float = 0.5,
        confirm_timeout: float = 30.0,
        on_confirmed: Callable[[list[int]], None] | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.publisher = publisher
        self.batch_size = batch_size
        self.window = window
        self.confirm_timeout = confirm_timeout
        self.poll_interval = poll_interval
        self.on_confirmed = on_confirmed  # called with row ids after the confirm, before marking (tests, metrics)

    # --- one pass ------------------------------------------------------------------------------
    def run_once(self, *, max_batches: int | None = None) -> RelayResult:
        """Publish every row unsent at the start of the pass (rows that fail wait for the next pass).

        Up to `window` batches are in flight: while the broker confirms one, the next is read and
        the previous marked. Raises PublishError (after marking what was confirmed) if the broker
        connection failed or a confirm did not come in time."""
        result = RelayResult()
        inflight: deque[tuple[Sequence[Row], Ticket]] = deque()
        after_id, exhausted, submitted = 0, False, 0
        error = None
        while True:
            while (
                error is None
                and not exhausted
                and len(inflight) < self.window
                and (max_batches is None or submitted < max_batches)
            ):
                rows = self._fetch(after_id)
                if not rows:
                    exhausted = True
                    break
                after_id = rows[-1][0]
                exhausted = len(rows) < self.batch_size
                messages = [OutgoingMessage(r[1], r[2], r[3], r[4].encode()) for r in rows]
                inflight.append((rows, self.publisher.submit(messages)))
                submitted += 1
            if not inflight:
                break
            rows, ticket = inflight.popleft()
            batch = ticket.result(self.confirm_timeout)
            sent = [r[0] for r in rows if r[1] in batch.confirmed]
            if sent and self.on_confirmed is not None:
                self.on_confirmed(sent)
            self._mark_sent(sent)
            result.batches += 1
            result.published += len(sent)
            result.unconfirmed += len(rows) - len(sent)
            if batch.nacked or batch.returned:
                log.warning(
                    "relay: %d nacked, %d returned (unroutable): they stay unsent",
                    len(batch.nacked),
                    len(batch.returned),
                )
            if batch.error and error is None:
                error = batch.error
                self.publisher.close()  # fails the batches still in flight; they are collected above
            if max_batches is not None and submitted >= max_batches and not inflight:
                break
        if error:
            result.error = error
            raise PublishError(error)
        return result

    def _fetch(self, after_id: int) -> Sequence[Row]:
        with self.session_factory() as session:
            return session.execute(
                select(
                    OutboxEvent.id,
                    OutboxEvent.event_id,
                    OutboxEvent.type,
                    OutboxEvent.routing_key,
                    cast(OutboxEvent.body, Text),
                )
                .where(OutboxEvent.sent_at.is_(None), OutboxEvent.id > after_id)
                .order_by(OutboxEvent.id)
                .limit(self.batch_size)
            ).all()

    def _mark_sent(self, ids: list[int]) -> None:
        if not ids:
            return
        now = datetime.now(UTC)
        with self.session_factory() as session:
            for i in range(0, len(ids), MARK_CHUNK):
                session.execute(
                    update(OutboxEvent)
                    .where(OutboxEvent.id.in_(ids[i : i + MARK_CHUNK]))
                    .values(sent_at=now)
                    .execution_options(synchronize_session=False)
                )
            session.commit()

    # --- the loop ------------------------------------------------------------------------------
    def run_forever(self, stop_event: threading.Event) -> None:
        """Relay until `stop_event` is set. Broker or database down: back off, reconnect, go on."""
        failures = 0
        while not stop_event.is_set():
            try:
                result = self.run_once()
            except (PublishError, OperationalError) as e:
                delay = BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS) - 1)]
                failures += 1
                log.warning("relay: %s; retrying in %.1f s", e, delay)
                self.publisher.close()
                stop_event.wait(delay)
                continue
            failures = 0
            if result.published == 0 and result.unconfirmed == 0:
                self._idle(stop_event)
            elif result.unconfirmed:
                stop_event.wait(self.poll_interval)  # nacked/returned rows: do not spin on them
        self.publisher.close()

    def _idle(self, stop_event: threading.Event) -> None:
        step = min(self.poll_interval, 0.25)
        waited = 0.0
        while waited < self.poll_interval and not stop_event.is_set():
            self.publisher.idle(step)
            waited += step

    def close(self) -> None:
        self.publisher.close()


def relay_from_settings(
    settings: Settings,
    session_factory: sessionmaker[Session],
    *,
    queues_of: Sequence[Topology] = (),
    **kwargs: Unpack[RelayOptions],
) -> OutboxRelay:
    """A relay for settings.bus: pika streaming confirms for amqp://, kombu for memory://.

    Declares the exchange (and its alternate exchange and unroutable queue) first, and the queues
    of `queues_of` (the workers of the same process): an event relayed before its worker had bound
    its queue would go to the unroutable queue instead (the first start of `iss run`)."""
    from .connection import make_kombu_connection
    from .topology import build, declare

    bus = settings.bus
    with make_kombu_connection(bus) as conn:
        declare(conn, build(bus))
        for topology in queues_of:
            declare(conn, topology)
    kwargs.setdefault("confirm_timeout", bus.confirm_timeout)
    return OutboxRelay(session_factory, make_publisher(bus), **kwargs)
