"""The parked messages of this server's role queues (`Q.parked`): list, replay, discard.

Reading a queue without consuming it: every message is taken with basic_get (no ack) and, once
the whole queue is read, put back with reject(requeue=True) in the order it came; the one being
replayed or discarded is acked instead. Works the same on RabbitMQ and on kombu memory:// (whose
queues live in the process: `iss run` and the dashboard in it share them). While a listing runs,
another reader of the same parked queue sees it shorter; nothing consumes parked queues otherwise.

A message's stable id is its envelope's `id` (the event id); a body that is not an envelope gets
`body-<sha256 of the body>`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from iss_plugin.domain.errors import NotFound

from . import policy
from .connection import make_kombu_connection
from .topology import Topology, is_memory

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


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _describe(queue: str, origin: str, message: Message) -> ParkedMessage:
    body = message.body
    raw = body if isinstance(body, bytes) else str(body).encode()
    payload = raw.decode("utf-8", "replace")
    envelope: Any = None
    with suppress(ValueError):
        envelope = json.loads(payload)
    event_id = envelope.get("id") if isinstance(envelope, dict) else None
    data = envelope.get("data") if isinstance(envelope, dict) else None
    headers = dict(message.headers or {})
    attempts = headers.get(policy.ATTEMPTS_HEADER)
    return ParkedMessage(
        event_id=event_id if isinstance(event_id, str) and event_id else "body-" + hashlib.sha256(raw).hexdigest(),
        queue=queue,
        origin_queue=_text(headers.get(policy.QUEUE_HEADER)) or origin,
        routing_key=_text(headers.get(policy.ROUTING_KEY_HEADER)) or "",
        event_type=_text(envelope.get("type")) if isinstance(envelope, dict) else None,
        organization=_text(data.get("organization")) if isinstance(data, dict) else None,
        reason=_reason(headers),
        error=_text(headers.get(policy.ERROR_HEADER)),
        attempts=attempts if isinstance(attempts, int) else None,
        parked_at=_text(headers.get(policy.PARKED_AT_HEADER)),
        payload=payload,
    )


def _reason(headers: dict[str, Any]) -> str | None:
    if headers.get(policy.PARK_REASON_HEADER):
        return _text(headers[policy.PARK_REASON_HEADER])
    deaths = headers.get("x-death") or []
    return _text(deaths[0].get("reason")) if deaths else None


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
        found: list[ParkedMessage] = []
        with self._connection() as conn:
            for role in self.topology.queues:
                found += self._walk(conn, role.parked, role.name)
        return found

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
                taken = self._walk(conn, role.parked, role.name, (event_id, act_here))
                if taken:
                    return taken[0]
        raise NotFound(
            f"no parked message with id '{event_id}' (it was replayed or discarded already?); reload the list"
        )

    def _walk(
        self,
        conn: Connection,
        queue_name: str,
        origin: str,
        take: tuple[str, Callable[[Message, ParkedMessage], None]] | None = None,
    ) -> list[ParkedMessage]:
        """Read the whole queue and put every message back in its order; with `take` (event id,
        action), the first message of that id is handed to the action and acked instead, and the
        answer is [it] or []. Without, the answer is every message."""
        from kombu.entity import Queue

        channel = conn.channel()
        held: list[Message] = []
        seen: list[ParkedMessage] = []
        try:
            if not is_memory(conn):
                try:
                    channel.queue_declare(queue=queue_name, passive=True)  # type: ignore[no-untyped-call]  # kombu's channel is unannotated
                except conn.channel_errors:  # type: ignore[attr-defined]  # not declared on this broker: nothing parked there
                    return []
            queue = Queue(queue_name, channel=channel, no_declare=True)  # type: ignore[no-untyped-call]  # kombu's constructors are unannotated
            while True:
                message: Message | None = queue.get(no_ack=False, accept=None)  # type: ignore[no-untyped-call]  # kombu's Queue is unannotated
                if message is None:
                    break
                parked = _describe(queue_name, origin, message)
                if take is not None and parked.event_id == take[0] and not seen:
                    take[1](message, parked)
                    message.ack()
                    seen.append(parked)
                else:
                    held.append(message)
                    if take is None:
                        seen.append(parked)
        finally:
            for m in held:
                with suppress(Exception):
                    m.reject(requeue=True)
            with suppress(Exception):
                channel.close()  # type: ignore[no-untyped-call]  # kombu's channel is unannotated
        return seen
