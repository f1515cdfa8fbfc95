"""Publishing batches with publisher confirms.

`PikaStreamingPublisher` (amqp://): pika's SelectConnection, every message of a batch written at
once, confirms collected as they stream back (multiple=True acks included), mandatory publish so
a message no queue (and no alternate exchange) takes comes back instead of vanishing.
`KombuPublisher` (memory:// and any other kombu transport): one publish at a time; on AMQP kombu
waits for each confirm.

`publish_batch()` answers which event ids the broker confirmed. Anything else (nacked, returned,
timed out, cut off by a connection loss) was not confirmed and must be published again."""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .codec import CONTENT_ENCODING, CONTENT_TYPE

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
    def publish_batch(self, messages: Sequence[OutgoingMessage]) -> BatchResult: ...
    def idle(self, seconds: float) -> None: ...
    def close(self) -> None: ...


class PikaStreamingPublisher:
    """Streaming publisher confirms over one pika SelectConnection, driven from the caller's thread."""

    def __init__(self, url: str, exchange: str, *, confirm_timeout: float = 30.0, heartbeat: int = 30,
                 connect_timeout: float = 10.0, mandatory: bool = True):
        self.url = url
        self.exchange = exchange
        self.confirm_timeout = confirm_timeout
        self.heartbeat = heartbeat
        self.connect_timeout = connect_timeout
        self.mandatory = mandatory
        self._conn = None
        self._ioloop = None
        self._channel = None
        self._ready = False
        self._error: str | None = None
        self._reset_batch()

    # --- connection ----------------------------------------------------------------------------
    def connect(self) -> None:
        import pika

        params = pika.URLParameters(self.url)
        params.heartbeat = self.heartbeat
        params.connection_attempts = 1
        params.socket_timeout = self.connect_timeout
        params.blocked_connection_timeout = self.confirm_timeout
        self._ready, self._error = False, None
        try:
            self._conn = pika.SelectConnection(params, on_open_callback=self._on_open,
                                               on_open_error_callback=self._on_open_error,
                                               on_close_callback=self._on_closed)
        except Exception as e:  # noqa: BLE001
            raise PublishError(f"cannot connect to {_safe(self.url)}: {e}") from e
        self._ioloop = self._conn.ioloop
        self._run_until(self.connect_timeout, "connecting")
        if not self._ready:
            error = self._error or "not ready"
            self._drop()
            raise PublishError(f"cannot connect to {_safe(self.url)}: {error}")

    def _on_open(self, conn) -> None:
        conn.channel(on_open_callback=self._on_channel_open)

    def _on_channel_open(self, channel) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=self._on_confirm_selected)

    def _on_confirm_selected(self, _frame) -> None:
        self._ready = True
        self._next_tag = 1
        self._stop()

    def _on_open_error(self, _conn, error) -> None:
        self._error = f"connection failed: {error!r}"
        self._ready = False
        self._stop()

    def _on_closed(self, _conn, reason) -> None:
        self._error = f"connection closed: {reason!r}"
        self._ready = False
        self._channel = None
        self._stop()

    def _on_channel_closed(self, channel, reason) -> None:
        self._error = f"channel closed: {reason!r}"
        self._ready = False
        self._channel = None
        conn = channel.connection if hasattr(channel, "connection") else self._conn
        if conn is not None and conn.is_open:
            conn.close()
        else:
            self._stop()

    def _stop(self) -> None:
        if self._ioloop is not None:
            self._ioloop.stop()

    def _run_until(self, timeout: float, what: str) -> None:
        """Run the I/O loop until a callback stops it, or `timeout` seconds."""
        timer_fired = []

        def on_timeout():
            timer_fired.append(True)
            self._error = f"timed out after {timeout:g} s {what}"
            self._stop()

        ioloop = self._ioloop
        timer = ioloop.call_later(timeout, on_timeout)
        ioloop.start()
        if not timer_fired:
            ioloop.remove_timeout(timer)

    def _drop(self) -> None:
        conn, ioloop = self._conn, self._ioloop
        self._channel, self._ready = None, False
        if conn is None:
            return
        try:
            if conn.is_open or conn.is_opening:
                conn.close()
            if not conn.is_closed:
                # let the close handshake finish (bounded); _on_closed stops the loop
                timer = ioloop.call_later(2.0, ioloop.stop)
                ioloop.start()
                ioloop.remove_timeout(timer)
        except Exception:  # noqa: BLE001
            pass
        try:
            ioloop.close()
        except Exception:  # noqa: BLE001
            pass
        self._conn = self._ioloop = None

    # --- publishing ----------------------------------------------------------------------------
    def _reset_batch(self) -> None:
        self._outstanding: dict[int, str] = {}
        self._lowest = 1
        self._result = BatchResult()

    def _on_return(self, _channel, _method, properties, _body) -> None:
        if properties.message_id:
            self._result.returned.add(properties.message_id)

    def _on_confirm(self, frame) -> None:
        method = frame.method
        target = self._result.confirmed if method.NAME == "Basic.Ack" else self._result.nacked
        tag = method.delivery_tag
        if method.multiple:
            while self._lowest <= tag:
                event_id = self._outstanding.pop(self._lowest, None)
                if event_id is not None:
                    target.add(event_id)
                self._lowest += 1
        else:
            event_id = self._outstanding.pop(tag, None)
            if event_id is not None:
                target.add(event_id)
            while self._lowest not in self._outstanding and self._lowest < self._next_tag:
                self._lowest += 1
        if not self._outstanding:
            self._stop()

    def publish_batch(self, messages: Sequence[OutgoingMessage]) -> BatchResult:
        import pika

        if not self._ready:
            self.connect()
        self._outstanding = {}
        self._lowest = self._next_tag
        self._result = BatchResult()
        stamp = int(time.time())
        publish = self._channel.basic_publish
        try:
            for m in messages:
                props = pika.BasicProperties(content_type=CONTENT_TYPE, content_encoding=CONTENT_ENCODING,
                                             delivery_mode=2, message_id=m.event_id, type=m.event_type,
                                             timestamp=stamp)
                publish(self.exchange, m.routing_key, m.body, props, mandatory=self.mandatory)
                self._outstanding[self._next_tag] = m.event_id
                self._next_tag += 1
        except Exception as e:  # noqa: BLE001 - channel/connection gone while writing
            self._error = f"publish failed: {e!r}"
            self._ready = False
        if self._outstanding and self._ready:
            self._run_until(self.confirm_timeout, "waiting for publisher confirms")
        result = self._result
        result.confirmed -= result.returned
        if self._outstanding or not self._ready:
            result.error = self._error or f"{len(self._outstanding)} messages unconfirmed"
            self._drop()  # late confirms of an abandoned batch must not count: new channel, new tags
        return result

    def idle(self, seconds: float) -> None:
        """Wait, serving heartbeats, instead of sleeping."""
        if self._conn is None or not self._ready:
            time.sleep(seconds)
            return
        self._run_until(seconds, "idle")
        if not self._ready:
            self._drop()
        self._error = None

    def close(self) -> None:
        self._drop()


class KombuPublisher:
    """One confirmed publish at a time through kombu (memory://, or AMQP with confirm_publish)."""

    def __init__(self, connection, exchange: str, *, confirm_timeout: float = 30.0):
        self.connection = connection
        self.exchange = exchange
        self.confirm_timeout = confirm_timeout
        self._producer = None

    def _ensure(self):
        from kombu import Exchange, Producer

        if self._producer is None:
            self.connection.ensure_connection(max_retries=1)
            channel = self.connection.channel()
            self._producer = Producer(channel, exchange=Exchange(self.exchange, "topic", durable=True), auto_declare=False)
        return self._producer

    def publish_batch(self, messages: Sequence[OutgoingMessage]) -> BatchResult:
        result = BatchResult()
        try:
            producer = self._ensure()
            for m in messages:
                producer.publish(m.body, routing_key=m.routing_key, content_type=CONTENT_TYPE,
                                 content_encoding=CONTENT_ENCODING, message_id=m.event_id, type=m.event_type,
                                 delivery_mode=2, retry=False, confirm_timeout=self.confirm_timeout)
                result.confirmed.add(m.event_id)
        except Exception as e:  # noqa: BLE001 - whatever was not confirmed stays unsent
            result.error = f"publish failed: {e!r}"
            self.close()
        return result

    def idle(self, seconds: float) -> None:
        time.sleep(seconds)

    def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.channel.close()
            except Exception:  # noqa: BLE001
                pass
        try:
            self.connection.release()
        except Exception:  # noqa: BLE001
            pass


def _safe(url: str) -> str:
    """The URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


def make_publisher(bus, *, connection=None) -> Publisher:
    """pika streaming confirms for amqp://, kombu for the rest (memory://)."""
    from .connection import is_amqp, make_kombu_connection

    if is_amqp(bus.url):
        url = bus.url.replace("pyamqp://", "amqp://", 1)
        return PikaStreamingPublisher(url, bus.exchange, confirm_timeout=bus.confirm_timeout, heartbeat=bus.heartbeat)
    return KombuPublisher(connection or make_kombu_connection(bus), bus.exchange, confirm_timeout=bus.confirm_timeout)
