"""Reading a queue without consuming it: a full turn (shared by parking.py and unroutable.py).

Every message of the queue is taken unacked and, once read, put back with reject(requeue=True)
in the order it came; RabbitMQ puts a rejected message at the BACK of a quorum queue, so only a
full turn of in-order rejects leaves the order as it was, and the messages of a closed channel
come back in no reliable order (both measured on RabbitMQ 3.10.8). See parking.py for the numbers."""

from __future__ import annotations

import hashlib
import json
import time
from collections import deque
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .topology import is_memory

if TYPE_CHECKING:
    from .kombu_types import Connection, Message

IDLE_SECONDS = 5.0  # a queue that sends nothing for this long has no more messages for this reader
RETURN_WAIT_SECONDS = 10.0  # at most this long for a turn's rejects to be back in their queue
MAX_PREFETCH = 65535  # AMQP's largest prefetch count: the messages one turn streams before basic_get


@dataclass
class HeldTags:
    """Delivery tags of the messages held unacked, in delivery order, as runs of consecutive ints
    (AMQP numbers a channel's deliveries 1, 2, 3...: one run, whatever the count); kombu memory://
    names them with uuids, kept one by one (its queues live in this process anyway)."""

    runs: list[list[Any]] = field(default_factory=list)

    def add(self, tag: Any) -> None:
        last = self.runs[-1] if self.runs else None
        if last is not None and isinstance(tag, int) and isinstance(last[1], int) and tag == last[1] + 1:
            last[1] = tag
        else:
            self.runs.append([tag, tag])

    def __iter__(self) -> Iterator[Any]:
        for first, last in self.runs:
            if isinstance(first, int) and isinstance(last, int):
                yield from range(first, last + 1)
            else:
                yield first


def ready_count(conn: Connection, queue_name: str) -> int:
    """The queue's ready messages (passive declare: nothing read); 0 when it was never declared."""
    channel = conn.channel()
    try:
        declared = channel.queue_declare(queue=queue_name, passive=True)  # type: ignore[no-untyped-call]  # kombu's channel is unannotated
        return int(declared.message_count)
    except conn.channel_errors:  # type: ignore[attr-defined]  # not declared on this broker: nothing there
        return 0
    finally:
        with suppress(Exception):
            channel.close()  # type: ignore[no-untyped-call]  # kombu's channel is unannotated


def await_count(conn: Connection, queue_name: str, expected: int) -> None:
    """Until the queue holds `expected` ready messages again (the rejects applied), at most
    RETURN_WAIT_SECONDS (another reader or a new message may change the count meanwhile)."""
    deadline = time.monotonic() + RETURN_WAIT_SECONDS
    while ready_count(conn, queue_name) < expected and time.monotonic() < deadline:
        time.sleep(0.01)


def put_back(conn: Connection, channel: Any, queue_name: str, held: HeldTags, expected: int | None) -> None:
    """Reject every held message in delivery order (a full turn later the queue is as it was), wait
    until the queue counts `expected` ready messages again (None: nothing was taken, no wait), then
    close the channel (a close before that scrambled a 3,000-message turn)."""
    for tag in held:
        with suppress(Exception):
            channel.basic_reject(tag, requeue=True)
    if expected is not None and not is_memory(conn):
        await_count(conn, queue_name, expected)
    with suppress(Exception):
        channel.close()


def messages(conn: Connection, channel: Any, queue_name: str, count: int) -> Iterator[Message]:
    """The queue's first `count` messages, unacked, one at a time. On AMQP the first 65,535 (the
    largest prefetch) come through a consumer with that prefetch: deliveries stream, where
    basic_get costs a round trip per message (measured on RabbitMQ 3.10: 10,000 quorum-queue
    messages in 40 s by basic_get, 2,500 in 0.23 s consumed); a quorum queue stops at the
    prefetch (or at 2,000 with none), so the rest, if any, come by basic_get. What waits unread
    is bounded by the socket's flow control. The consumer is cancelled before anything is put
    back, so nothing comes back to it."""
    from kombu.entity import Queue

    queue = Queue(queue_name, channel=channel, no_declare=True)  # type: ignore[no-untyped-call]  # kombu's constructors are unannotated
    streamed = 0
    if not is_memory(conn):
        for message in _consume(conn, channel, queue, min(count, MAX_PREFETCH)):
            streamed += 1
            yield message
        if streamed < min(count, MAX_PREFETCH):
            return  # fewer than counted (another reader holds some): the turn ends here
    for _ in range(count - streamed):
        got: Message | None = queue.get(no_ack=False, accept=None)  # type: ignore[no-untyped-call]  # kombu's Queue is unannotated
        if got is None:
            return
        yield got


def _consume(conn: Connection, channel: Any, queue: Any, window: int) -> Iterator[Message]:
    from kombu.messaging import Consumer

    arrived: deque[Message] = deque()
    channel.basic_qos(0, window, False)
    consumer = Consumer(channel, queues=[queue], on_message=arrived.append, auto_declare=False, accept=None)  # type: ignore[no-untyped-call]  # kombu's constructors are unannotated
    consumer.consume()  # type: ignore[no-untyped-call]  # kombu's Consumer is unannotated
    try:
        for n in range(window):
            while not arrived:
                try:
                    conn.drain_events(timeout=IDLE_SECONDS)  # type: ignore[attr-defined]  # kombu's Connection is unannotated
                except TimeoutError:
                    return
            if n % 1000 == 999:
                conn.heartbeat_check()  # a long turn sends nothing else
            yield arrived.popleft()
    finally:
        with suppress(Exception):
            consumer.cancel()  # type: ignore[no-untyped-call]  # kombu's Consumer is unannotated


def text(value: object) -> str | None:
    """A header or envelope value as text (AMQP headers may come as bytes)."""
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class ReadBody:
    """A message's body as read off a queue: its text, its envelope (empty when the body is not a
    JSON object) and its event id (`body-<sha256>` when the envelope names none)."""

    payload: str
    envelope: dict[str, Any]
    event_id: str

    @property
    def organization(self) -> str | None:
        data = self.envelope.get("data")
        return text(data.get("organization")) if isinstance(data, dict) else None


def read_body(message: Message) -> ReadBody:
    body = message.body
    raw = body if isinstance(body, bytes) else str(body).encode()
    payload = raw.decode("utf-8", "replace")
    envelope: Any = None
    with suppress(ValueError):
        envelope = json.loads(payload)
    envelope = envelope if isinstance(envelope, dict) else {}
    event_id = envelope.get("id")
    if not (isinstance(event_id, str) and event_id):
        event_id = "body-" + hashlib.sha256(raw).hexdigest()
    return ReadBody(payload, envelope, event_id)
