"""The parked messages of this server's role queues (`Q.parked`): list, replay, discard.

Reading a queue without consuming it: messages are taken with basic_get (no ack) and, once read,
put back with reject(requeue=True) in the order they came; the one being replayed or discarded
is acked instead. Works the same on RabbitMQ and on kombu memory:// (whose queues live in the
process: `iss run` and the dashboard in it share them). While a reader holds messages, another
reader of the same parked queue sees it shorter; nothing consumes parked queues otherwise.

Bounded memory, not bounded reads: a queue is not an array, so a page at an offset is found by
taking messages from the head of the queue; the bodies outside the page are dropped as soon as
they arrive (only their delivery tags are kept, as runs of consecutive numbers), so memory holds
one page of bodies whatever the queue holds. But RabbitMQ puts a rejected message at the BACK of
a quorum queue, and the messages of a closed channel come back in no reliable order (both
measured on 3.10.8), so keeping the order means taking every message of a queue the page lies
in and rejecting them all in order (a full turn). A parking queue wholly before or after the page
is not read (its message count, from a passive queue.declare, places the page). Messages stream
through a consumer (a basic_get costs a round trip each). Replay and discard scan the same way,
keeping nothing but tags.

A message's stable id is its envelope's `id` (the event id); a body that is not an envelope gets
`body-<sha256 of the body>`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from iss_plugin.domain.errors import NotFound, UsageError

from . import policy
from .connection import make_kombu_connection
from .queue_turn import HeldTags, put_back, read_body, ready_count
from .queue_turn import messages as turn_messages
from .queue_turn import text as _text
from .topology import Topology

if TYPE_CHECKING:
    from iss_plugin.settings import BusSettings

    from .kombu_types import Connection, Message

# x-iss-* headers the consumer adds when it retries or parks; a replay starts over without them
_PARK_HEADERS = (
    policy.RETRIES_HEADER,
    policy.PARK_REASON_HEADER,
    policy.ERROR_HEADER,
    policy.ATTEMPTS_HEADER,
    policy.QUEUE_HEADER,
    policy.PARKED_AT_HEADER,
    policy.CONSUMER_HEADER,
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-delivery-count",
)


K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class ParkedMessage:
    event_id: str
    queue: str  # the parking queue it waits in
    origin_queue: str  # the role queue it was parked from
    routing_key: str  # where a replay publishes it
    event_type: str | None
    organization: str | None
    reason: str | None
    error: str | None
    attempts: int | None
    parked_at: str | None
    payload: str  # the body as text (for display: escape it)


def _describe(queue: str, origin: str, message: Message) -> ParkedMessage:
    read = read_body(message)
    headers = dict(message.headers or {})
    attempts = headers.get(policy.ATTEMPTS_HEADER)
    return ParkedMessage(
        event_id=read.event_id,
        queue=queue,
        origin_queue=_text(headers.get(policy.QUEUE_HEADER)) or origin,
        routing_key=_text(headers.get(policy.ROUTING_KEY_HEADER)) or "",
        event_type=_text(read.envelope.get("type")),
        organization=read.organization,
        reason=_reason(headers),
        error=_text(headers.get(policy.ERROR_HEADER)),
        attempts=attempts if isinstance(attempts, int) else None,
        parked_at=_text(headers.get(policy.PARKED_AT_HEADER)),
        payload=read.payload,
    )


def _reason(headers: dict[str, Any]) -> str | None:
    if headers.get(policy.PARK_REASON_HEADER):
        return _text(headers[policy.PARK_REASON_HEADER])
    deaths = headers.get("x-death") or []
    return _text(deaths[0].get("reason")) if deaths else None


@dataclass(frozen=True)
class ParkedPage:
    """One page of the parking queues, in queue order (export, import, status; each head first).

    `total` is the sum of the queues' message counts when they were counted (messages another
    reader holds unacked at that moment are not in it); `read` is how many messages the broker
    handed over to make this page (those skipped to reach the offset included)."""

    messages: tuple[ParkedMessage, ...]
    offset: int
    limit: int
    total: int
    read: int

    @property
    def has_next(self) -> bool:
        return self.offset + self.limit < self.total


class ParkedQueues:
    """The parking queues of `topology` on the broker of `bus`."""

    def __init__(self, bus: BusSettings, topology: Topology) -> None:
        self.bus = bus
        self.topology = topology

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        with make_kombu_connection(self.bus) as conn:
            conn.ensure_connection(max_retries=1)
            yield conn

    def messages(self) -> list[ParkedMessage]:
        """Every parked message (reads whole queues: for tests and small queues; pages use `page`)."""
        found: list[ParkedMessage] = []
        with self._connection() as conn:
            for role in self.topology.queues:
                count = ready_count(conn, role.parked)
                if count:
                    found += self._read(conn, role.parked, role.name, count)[0]
        return found

    def page(self, offset: int, limit: int) -> ParkedPage:
        """At most `limit` messages from `offset` on (over the queues in order), the total counted,
        not read. Keeps `limit` bodies at most; takes (and puts back) every message of the queues
        the page lies in."""
        if offset < 0 or limit < 1:
            raise UsageError(f"a page needs offset >= 0 and limit >= 1 (got offset {offset}, limit {limit})")
        shown: list[ParkedMessage] = []
        read = 0
        with self._connection() as conn:
            counts = [(role, ready_count(conn, role.parked)) for role in self.topology.queues]
            skip = offset
            for role, count in counts:
                if len(shown) >= limit:
                    break  # the page is full: the queues after it are not read
                if skip >= count:  # this whole queue lies before the page: not read
                    skip -= count
                    continue
                got, taken = self._read(conn, role.parked, role.name, count, skip=skip, want=limit - len(shown))
                shown += got
                read += taken
                skip = 0
        return ParkedPage(tuple(shown), offset, limit, sum(count for _, count in counts), read)

    def count(self) -> int:
        """How many messages the parking queues hold (their message counts: nothing read)."""
        with self._connection() as conn:
            return sum(ready_count(conn, role.parked) for role in self.topology.queues)

    def tally(self, key: Callable[[ParkedMessage], K]) -> Counter[K]:
        """How many parked messages per `key(message)`: every message is read and dropped at once
        (memory: the counter), for what a count cannot tell (reasons, organizations)."""
        counts: Counter[K] = Counter()

        def add(message: ParkedMessage) -> None:
            counts[key(message)] += 1

        with self._connection() as conn:
            for role in self.topology.queues:
                count = ready_count(conn, role.parked)
                if count:
                    self._read(conn, role.parked, role.name, count, visit=add)
        return counts

    def replay(self, event_id: str) -> ParkedMessage:
        """Publish the parked message again to the exchange with its original routing key (or to
        its role queue when it has none), without the park headers; then remove it."""

        def republish(conn: Connection, parked: ParkedMessage, message: Message) -> None:
            from kombu.messaging import Producer

            headers = {k: v for k, v in dict(message.headers or {}).items() if k not in _PARK_HEADERS}
            exchange, key = (
                (self.topology.exchange, parked.routing_key) if parked.routing_key else ("", parked.origin_queue)
            )
            producer = Producer(conn.channel())  # type: ignore[no-untyped-call]  # kombu's constructors are unannotated
            try:
                producer.publish(  # type: ignore[no-untyped-call]  # kombu's Producer is unannotated
                    message.body,
                    exchange=exchange,
                    routing_key=key,
                    headers=headers,
                    content_type=message.content_type or "application/json",
                    content_encoding=message.content_encoding or "utf-8",
                    delivery_mode=2,
                    retry=False,
                )
            finally:
                producer.channel.close()

        return self._take(event_id, republish)

    def discard(self, event_id: str) -> ParkedMessage:
        return self._take(event_id, lambda conn, parked, message: None)

    def _take(self, event_id: str, act: Callable[[Connection, ParkedMessage, Message], None]) -> ParkedMessage:
        with self._connection() as conn:

            def act_here(message: Message, parked: ParkedMessage) -> None:
                act(conn, parked, message)

            for role in self.topology.queues:
                count = ready_count(conn, role.parked)
                if not count:
                    continue
                taken = self._read(conn, role.parked, role.name, count, take=(event_id, act_here))[0]
                if taken:
                    return taken[0]
        raise NotFound(
            f"no parked message with id '{event_id}' (it was replayed or discarded already?); reload the list"
        )

    def _read(
        self,
        conn: Connection,
        queue_name: str,
        origin: str,
        count: int,
        *,
        skip: int = 0,
        want: int | None = None,
        take: tuple[str, Callable[[Message, ParkedMessage], None]] | None = None,
        visit: Callable[[ParkedMessage], None] | None = None,
    ) -> tuple[list[ParkedMessage], int]:
        """Take the queue's `count` messages from its head and put them all back in their order (a
        full turn); answers (what was found, how many messages were taken). Without `take`:
        messages `skip` to `skip + want` (None: to the end) are described and kept, the others
        dropped as they come (their delivery tags kept). With `take` (event id, action): messages
        are described until the first of that id, which is handed to the action and acked
        instead; found is [it] or []. With `visit`: every message is described and handed to it.

        Why the whole queue (measured on RabbitMQ 3.10.8, quorum queues): reject(requeue=True)
        puts a message at the BACK, so only a full turn of in-order rejects leaves the order as it
        was; the messages a closed channel held come back in no reliable order (seen: 0, 9, 1,
        2, ...), so every message is rejected, and the channel is closed only once the queue's
        count shows the rejects applied (a close before that scrambled a 3,000-message turn)."""
        channel = conn.channel()
        held = HeldTags()
        found: list[ParkedMessage] = []
        taken = acked = 0
        end = None if want is None else skip + want
        try:
            for message in turn_messages(conn, channel, queue_name, count):
                taken += 1
                if take is not None:
                    if not found:
                        parked = _describe(queue_name, origin, message)
                        if parked.event_id == take[0]:
                            take[1](message, parked)
                            message.ack()
                            found.append(parked)
                            acked = 1
                            continue
                elif visit is not None:
                    visit(_describe(queue_name, origin, message))
                elif skip < taken and (end is None or taken <= end):
                    found.append(_describe(queue_name, origin, message))
                held.add(message.delivery_tag)  # outside the page, its body is dropped here
        finally:
            put_back(conn, channel, queue_name, held, count - acked if taken else None)
        return found, taken
