"""Publishing batches with publisher confirms.

`PikaStreamingPublisher` (amqp://): pika's SelectConnection, every message of a batch written at
once, confirms collected as they stream back (multiple=True acks included), mandatory publish so
a message no queue (and no alternate exchange) takes comes back instead of vanishing.
`KombuPublisher` (memory:// and any other kombu transport): one publish at a time; on AMQP kombu
waits for each confirm.

`publish_batch()` answers which event ids the broker confirmed. Anything else (nacked, returned,
timed out, cut off by a connection loss) was not confirmed and must be published again."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .codec import CONTENT_ENCODING, CONTENT_TYPE
from .connection import without_password

if TYPE_CHECKING:
    from pika import BasicProperties, SelectConnection
    from pika.channel import Channel
    from pika.frame import Method
    from pika.spec import Basic

    from iss_plugin.settings import BusSettings

    from .kombu_types import Connection, Producer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    event_id: str
    event_type: str
    routing_key: str
    body: bytes


@dataclass
class BatchResult:
    confirmed: set[str] = field(default_factory=set)
    nacked: set[str] = field(default_factory=set)
    returned: set[str] = field(default_factory=set)
    error: str | None = None  # the connection failed or a confirm timed out: reconnect before the next batch


class PublishError(Exception):
    """Could not connect or publish; nothing unconfirmed may be considered sent."""


class Publisher(Protocol):
    def submit(self, messages: Sequence[OutgoingMessage]) -> Ticket: ...
    def publish_batch(self, messages: Sequence[OutgoingMessage]) -> BatchResult: ...
    def idle(self, seconds: float) -> None: ...
    def close(self) -> None: ...


class Ticket:
    """One submitted batch; `result()` waits until every message is confirmed, refused, or lost."""

    def __init__(self, event_ids: Sequence[str]) -> None:
        self.event_ids = list(event_ids)
        self.pending = len(self.event_ids)
        self.result_ = BatchResult()
        self.done = threading.Event()
        if not self.pending:
            self.done.set()

    def resolve(self, event_id: str, ok: bool) -> None:
        (self.result_.confirmed if ok else self.result_.nacked).add(event_id)
        self.pending -= 1
        if self.pending <= 0:
            self.done.set()

    def fail(self, error: str) -> None:
        if not self.done.is_set():
            self.result_.error = error
            self.done.set()

    def result(self, timeout: float | None = None) -> BatchResult:
        if not self.done.wait(timeout):
            self.fail(f"no confirm within {timeout:g} s")
        res = self.result_
        res.confirmed -= res.returned
        return res


class PikaStreamingPublisher:
    """Streaming publisher confirms: a pika SelectConnection in its own I/O thread.

    `submit()` hands a batch to the I/O thread and returns at once, so the caller can read and
    mark outbox rows while earlier batches are written and confirmed (the relay keeps a small
    window of batches in flight). Heartbeats are served by the I/O thread."""

    def __init__(
        self,
        url: str,
        exchange: str,
        *,
        confirm_timeout: float = 30.0,
        heartbeat: int = 30,
        connect_timeout: float = 10.0,
        mandatory: bool = True,
    ) -> None:
        self.url = url
        self.exchange = exchange
        self.confirm_timeout = confirm_timeout
        self.heartbeat = heartbeat
        self.connect_timeout = connect_timeout
        self.mandatory = mandatory
        self._conn: SelectConnection | None = None
        self._channel: Channel | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._closed = threading.Event()
        self._error: str | None = None
        self._tags: dict[int, tuple[Ticket, str]] = {}
        self._by_id: dict[str, Ticket] = {}
        self._lowest = 1
        self._next_tag = 1

    # --- connection (caller's thread) ----------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._ready.is_set() and not self._closed.is_set()

    def connect(self) -> None:
        import pika

        self.close()
        params = pika.URLParameters(self.url)
        params.heartbeat = self.heartbeat
        params.connection_attempts = 1
        params.socket_timeout = self.connect_timeout
        params.blocked_connection_timeout = self.confirm_timeout
        self._ready, self._closed, self._error = threading.Event(), threading.Event(), None
        self._tags, self._by_id, self._lowest, self._next_tag = {}, {}, 1, 1
        try:
            self._conn = pika.SelectConnection(
                params,
                on_open_callback=self._on_open,
                on_open_error_callback=self._on_open_error,
                on_close_callback=self._on_closed,
            )
        except Exception as e:
            raise PublishError(f"cannot connect to {without_password(self.url)}: {e}") from e
        self._thread = threading.Thread(target=self._io_loop, args=(self._conn,), name="iss-relay-io", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.connect_timeout) or self._closed.is_set():
            error = self._error or f"not connected within {self.connect_timeout:g} s"
            self.close()
            raise PublishError(f"cannot connect to {without_password(self.url)}: {error}")

    def close(self) -> None:
        conn, thread = self._conn, self._thread
        self._conn = self._thread = None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            conn.ioloop.add_callback_threadsafe(lambda: self._close_in_loop(conn))
        if thread is not None:
            thread.join(5)
        self._closed.set()
        self._fail_all(self._error or "publisher closed")

    # --- the I/O thread ------------------------------------------------------------------------
    def _io_loop(self, conn: SelectConnection) -> None:
        try:
            conn.ioloop.start()
        except Exception as e:
            self._error = f"I/O loop failed: {e!r}"
        finally:
            self._closed.set()
            self._fail_all(self._error or "connection closed")
            with contextlib.suppress(Exception):
                conn.ioloop.close()

    def _close_in_loop(self, conn: SelectConnection) -> None:
        # pika has no is_opening: a connection neither closing nor closed is open or still opening,
        # and close() ends either (an opening one is aborted and its socket closed)
        if conn.is_closed:
            conn.ioloop.stop()
        elif not conn.is_closing:
            conn.close()

    def _on_open(self, conn: SelectConnection) -> None:
        conn.channel(on_open_callback=self._on_channel_open)

    def _on_channel_open(self, channel: Channel) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=lambda _f: self._ready.set())

    def _on_open_error(self, conn: SelectConnection, error: BaseException) -> None:
        self._error = f"connection failed: {error!r}"
        self._closed.set()
        conn.ioloop.stop()

    def _on_closed(self, conn: SelectConnection, reason: BaseException) -> None:
        self._error = self._error or f"connection closed: {reason!r}"
        self._closed.set()
        self._fail_all(self._error)
        conn.ioloop.stop()

    def _on_channel_closed(self, channel: Channel, reason: Exception) -> None:
        self._error = f"channel closed: {reason!r}"
        self._closed.set()
        self._fail_all(self._error)
        conn = channel.connection
        if conn.is_open:
            conn.close()

    def _fail_all(self, error: str) -> None:
        tickets = {t for t, _ in self._tags.values()}
        self._tags.clear()
        self._by_id.clear()
        for t in tickets:
            t.fail(error)

    def _on_return(self, _channel: Channel, _method: Basic.Return, properties: BasicProperties, _body: bytes) -> None:
        message_id = properties.message_id
        if message_id is None:
            return
        ticket = self._by_id.get(message_id)
        if ticket is not None:
            ticket.result_.returned.add(message_id)

    def _on_confirm(self, frame: Method[Basic.Ack | Basic.Nack]) -> None:
        method = frame.method
        ok = method.NAME == "Basic.Ack"
        tag = method.delivery_tag
        tags = range(self._lowest, tag + 1) if method.multiple else (tag,)
        for t in tags:
            entry = self._tags.pop(t, None)
            if entry is not None:
                ticket, event_id = entry
                self._by_id.pop(event_id, None)
                ticket.resolve(event_id, ok)
        while self._lowest not in self._tags and self._lowest < self._next_tag:
            self._lowest += 1

    def _publish(self, ticket: Ticket, messages: Sequence[OutgoingMessage]) -> None:
        import pika

        if self._closed.is_set() or self._channel is None:
            ticket.fail(self._error or "not connected")
            return
        stamp = int(time.time())
        publish = self._channel.basic_publish
        try:
            for m in messages:
                props = pika.BasicProperties(
                    content_type=CONTENT_TYPE,
                    content_encoding=CONTENT_ENCODING,
                    delivery_mode=2,
                    message_id=m.event_id,
                    type=m.event_type,
                    timestamp=stamp,
                )
                self._tags[self._next_tag] = (ticket, m.event_id)
                self._by_id[m.event_id] = ticket
                self._next_tag += 1
                publish(self.exchange, m.routing_key, m.body, props, mandatory=self.mandatory)
        except Exception as e:
            self._error = f"publish failed: {e!r}"
            self._fail_all(self._error)

    # --- API (caller's thread) -----------------------------------------------------------------
    def submit(self, messages: Sequence[OutgoingMessage]) -> Ticket:
        """Hand a batch to the I/O thread; returns at once. Raises PublishError if not connected."""
        if not self.connected:
            self.connect()
        ticket = Ticket([m.event_id for m in messages])
        if messages:
            conn = self._conn
            try:
                if conn is None:  # closed by another thread since connect()
                    raise PublishError("no connection")
                conn.ioloop.add_callback_threadsafe(lambda: self._publish(ticket, messages))
            except Exception as e:
                ticket.fail(f"publisher loop gone: {e!r}")
        return ticket

    def publish_batch(self, messages: Sequence[OutgoingMessage]) -> BatchResult:
        result = self.submit(messages).result(self.confirm_timeout)
        if result.error:
            self.close()  # late confirms of an abandoned batch must not count: new channel, new tags
        return result

    def idle(self, seconds: float) -> None:
        time.sleep(seconds)  # the I/O thread serves heartbeats


class KombuPublisher:
    """One confirmed publish at a time through kombu (memory://, or AMQP with confirm_publish)."""

    def __init__(self, connection: Connection, exchange: str, *, confirm_timeout: float = 30.0) -> None:
        self.connection = connection
        self.exchange = exchange
        self.confirm_timeout = confirm_timeout
        self._producer: Producer | None = None

    def _ensure(self) -> Producer:
        from kombu.entity import Exchange
        from kombu.messaging import Producer as KombuProducer

        if self._producer is None:
            self.connection.ensure_connection(max_retries=1)
            channel = self.connection.channel()
            self._producer = KombuProducer(  # type: ignore[no-untyped-call]  # kombu's constructors are unannotated
                channel,
                exchange=Exchange(self.exchange, "topic", durable=True),  # type: ignore[no-untyped-call]  # kombu's constructors are unannotated
                auto_declare=False,
            )
        return self._producer

    def submit(self, messages: Sequence[OutgoingMessage]) -> Ticket:
        """Publishes synchronously; the ticket is complete on return."""
        ticket = Ticket([])
        ticket.result_ = self.publish_batch(messages)
        return ticket

    def publish_batch(self, messages: Sequence[OutgoingMessage]) -> BatchResult:
        result = BatchResult()
        try:
            producer = self._ensure()
            for m in messages:
                producer.publish(
                    m.body,
                    routing_key=m.routing_key,
                    content_type=CONTENT_TYPE,
                    content_encoding=CONTENT_ENCODING,
                    message_id=m.event_id,
                    type=m.event_type,
                    delivery_mode=2,
                    retry=False,
                    confirm_timeout=self.confirm_timeout,
                )
                result.confirmed.add(m.event_id)
        except Exception as e:
            result.error = f"publish failed: {e!r}"
            self.close()
        return result

    def idle(self, seconds: float) -> None:
        time.sleep(seconds)

    def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                producer.channel.close()
        with contextlib.suppress(Exception):
            self.connection.release()


def make_publisher(bus: BusSettings, *, connection: Connection | None = None) -> Publisher:
    """pika streaming confirms for amqp://, kombu for the rest (memory://)."""
    from .connection import is_amqp, make_kombu_connection

    if is_amqp(bus.url):
        url = bus.url.replace("pyamqp://", "amqp://", 1)
        return PikaStreamingPublisher(url, bus.exchange, confirm_timeout=bus.confirm_timeout, heartbeat=bus.heartbeat)
    return KombuPublisher(connection or make_kombu_connection(bus), bus.exchange, confirm_timeout=bus.confirm_timeout)
