"""The consumer base: kombu ConsumerMixin, handlers keyed by event type, one ack policy.

    consumer = EventConsumer(make_kombu_connection(settings.bus), topology, [queue_name],
                             {BUNDLE_READY: on_bundle_ready}, name="import")
    consumer.run()            # until consumer.should_stop = True (from another thread or a signal)

A handler takes an `Event` and returns after its database commit (use
`iss_plugin.services.idempotency.process_once` so a redelivery has no second effect, and
`iss_plugin.services.outbox.publish_event` to emit answers in the same transaction). The
message is acked only after the handler returned; what happens otherwise is decided in
`policy.py` and carried out here (retry through the retry queues, or park with the reason).

Handlers run in a worker thread while this thread keeps reading the connection and sending
heartbeats, so a long export or import does not lose its connection. One message is handled at
a time per consumer; run several consumers (processes) for parallelism.

While the broker is unreachable each failed connection attempt logs one line, and setting
`should_stop` ends kombu's retry loop within a second (`run` then returns).

On memory:// (no TTL, no dead-lettering) a retry waits in this consumer (a timer heap) and is
republished with `x-iss-retries`; pending retries are republished at once when it stops.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from functools import partial

from kombu import Producer
from kombu.mixins import ConsumerMixin

from iss_plugin.domain.events import Event

from . import policy
from .codec import DecodeError, decode, envelope_problems
from .topology import Topology, declare, is_memory, kombu_entities

log = logging.getLogger(__name__)


class StopConnecting(Exception):
    """Raised inside kombu's connection-retry loop to abandon it when the consumer is asked to stop."""


Handler = Callable[[Event], None]


class EventConsumer(ConsumerMixin):
    def __init__(
        self,
        connection,
        topology: Topology,
        queues: Sequence[str],
        handlers: Mapping[str, Handler],
        *,
        name: str,
        prefetch: int = 4,
        confirm_timeout: float = 30.0,
        validate: bool = True,
        handler_wait: float = 1.0,
        safety_interval: float = 0.2,
    ):
        self.connection = connection
        self.topology = topology
        self.queue_names = list(queues)
        for q in self.queue_names:
            topology.queue(q)  # KeyError early for a queue the topology does not know
        self.handlers = dict(handlers)
        self.name = name
        self.prefetch = prefetch
        self.confirm_timeout = confirm_timeout
        self.validate = validate
        self.handler_wait = handler_wait
        self.safety_interval = safety_interval
        self.memory = is_memory(connection)
        self._pending: deque = deque()
        self._running = None  # (future, queue, message, event, attempt)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"iss-{name}")
        self._delayed: list = []  # memory:// retries: (due, seq, queue, body, properties)
        self._seq = itertools.count()
        self._conn = None
        self._producer: Producer | None = None
        self._last_heartbeat = 0.0
        self.stats = {"acked": 0, "retried": 0, "parked": 0}

    # --- ConsumerMixin wiring ------------------------------------------------------------------
    def run(self, _tokens: int = 1, **kwargs: object) -> None:
        try:
            super().run(_tokens, safety_interval=self.safety_interval, **kwargs)
        except StopConnecting:
            log.info("%s stopped while waiting for the broker", self.name)
        finally:
            self._executor.shutdown(wait=True)

    @contextmanager
    def establish_connection(self):
        # As ConsumerMixin's, plus a callback kombu calls every second while it waits between
        # connection attempts: a stop request ends the wait at once instead of after the interval.
        with self.create_connection() as conn:
            conn.ensure_connection(self.on_connection_error, self.connect_max_retries, callback=self._stop_requested)
            yield conn

    def on_connection_error(self, exc, interval):
        """One line per failed connection attempt (kombu's default logs a traceback each time);
        abort the retry loop when a stop was requested."""
        self._stop_requested()
        log.warning(
            "%s: cannot connect to the broker at %s: %s; retrying in %.0f s (SIGINT/SIGTERM stops)",
            self.name,
            self.connection.as_uri(),
            exc,
            interval,
        )

    def _stop_requested(self) -> None:
        if self.should_stop:
            raise StopConnecting(f"{self.name}: stop requested while connecting to the broker")

    def get_consumers(self, Consumer, channel):
        exchanges, queues = kombu_entities(self.topology, memory=self.memory)
        for ex in exchanges:
            ex(channel).declare()
        by_name = {}
        for q in queues:
            q(channel).declare()
            by_name[q.name] = q
        return [
            Consumer(
                queues=[by_name[name]],
                on_message=partial(self._on_message, name),
                prefetch_count=self.prefetch,
                accept=None,
            )
            for name in self.queue_names
        ]

    def on_connection_revived(self):
        # Deliveries of a dead channel cannot be acked: the broker redelivers them.
        self._pending.clear()
        if self._running is not None:
            with suppress(BaseException):
                self._running[0].result()
            self._running = None

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        self._conn = connection
        self._producer = Producer(connection.channel())
        log.info("%s consuming %s", self.name, ", ".join(self.queue_names))

    def on_consume_end(self, connection, channel):
        try:
            if self._running is not None:
                self._finish(block=True)
            self._release_retries(everything=True)
        finally:
            if self._producer is not None:
                with suppress(Exception):
                    self._producer.channel.close()
            self._producer = None

    def on_decode_error(self, message, exc):  # not used with on_message, but never ack silently
        self._park(None, message, policy.on_invalid(policy.DECODE, str(exc)))

    def on_iteration(self):
        self._heartbeat()
        self._release_retries()
        while not self.should_stop:
            if self._running is None:
                if not self._pending:
                    return
                queue, message = self._pending.popleft()
                self._start(queue, message)
                continue
            if not self._finish(block=False):
                return  # still running: go back to reading the connection (heartbeats)

    def _on_message(self, queue: str, message):
        self._pending.append((queue, message))

    # --- one message ---------------------------------------------------------------------------
    def _start(self, queue: str, message) -> None:
        attempt = policy.retries_done(message.headers, self.topology.queue(queue).name + ".retry.") + 1
        try:
            envelope = decode(message.body)
        except DecodeError as e:
            self._settle(queue, message, policy.on_invalid(policy.DECODE, str(e), attempt))
            return
        if self.validate:
            problems = envelope_problems(envelope)
            if problems:
                self._settle(queue, message, policy.on_invalid(policy.SCHEMA, "; ".join(problems), attempt))
                return
        handler = self.handlers.get(envelope.get("type"))
        if handler is None:
            self._settle(
                queue,
                message,
                policy.on_invalid(
                    policy.UNHANDLED, f"{self.name} has no handler for {envelope.get('type')!r}", attempt
                ),
            )
            return
        try:
            event = Event.from_envelope(envelope)
        except (KeyError, TypeError) as e:
            self._settle(queue, message, policy.on_invalid(policy.SCHEMA, f"envelope: {e}", attempt))
            return
        self._running = (self._executor.submit(handler, event), queue, message, event, attempt)

    def _finish(self, *, block: bool) -> bool:
        future, queue, message, event, attempt = self._running
        try:
            future.result(timeout=None if block else self.handler_wait)
        except FutureTimeout:
            return False
        except Exception as e:
            decision = policy.on_error(
                e, attempt, retry_delays_ms=self.topology.retry_delays_ms, max_attempts=self.topology.max_attempts
            )
            log.warning(
                "%s: %s %s attempt %d failed: %s -> %s",
                self.name,
                event.type,
                event.id,
                attempt,
                policy.describe(e),
                decision.action.value,
            )
        else:
            decision = policy.on_success(attempt)
        self._running = None
        self._settle(queue, message, decision)
        return True

    def _settle(self, queue: str, message, decision: policy.Decision) -> None:
        if decision.action is policy.Action.ACK:
            message.ack()
            self.stats["acked"] += 1
        elif decision.action is policy.Action.RETRY:
            self._retry(queue, message, decision)
        else:
            self._park(queue, message, decision)

    # --- retry and park ------------------------------------------------------------------------
    def _copy(self, message, extra_headers: dict) -> tuple[bytes, dict]:
        headers = dict(message.headers or {})
        headers.setdefault(policy.ROUTING_KEY_HEADER, message.delivery_info.get("routing_key", ""))
        headers.update(extra_headers)
        props = {
            "content_type": message.content_type or "application/octet-stream",
            "content_encoding": message.content_encoding or "binary",
            "headers": headers,
            "delivery_mode": 2,
        }
        for key in ("message_id", "type", "timestamp", "correlation_id", "app_id"):
            value = message.properties.get(key)
            if value is not None:
                props[key] = value
        return message.body, props

    def _publish_copy(self, body: bytes, routing_key: str, props: dict) -> None:
        self._producer.publish(
            body,
            exchange="",
            routing_key=routing_key,
            mandatory=False,
            confirm_timeout=self.confirm_timeout,
            retry=False,
            **props,
        )

    def _retry(self, queue: str, message, decision: policy.Decision) -> None:
        role = self.topology.queue(queue)
        body, props = self._copy(
            message, {policy.RETRIES_HEADER: decision.attempt, policy.ERROR_HEADER: decision.error}
        )
        if self.memory:
            due = time.monotonic() + decision.delay_ms / 1000.0
            heapq.heappush(self._delayed, (due, next(self._seq), role.name, body, props))
        else:
            _, retry_queue = role.retry_queue(decision.attempt)
            self._publish_copy(body, retry_queue, props)
        message.ack()
        self.stats["retried"] += 1

    def _park(self, queue: str | None, message, decision: policy.Decision) -> None:
        role = self.topology.queue(queue or self.queue_names[0])
        body, props = self._copy(
            message,
            {
                policy.PARK_REASON_HEADER: decision.reason,
                policy.ERROR_HEADER: decision.error or "",
                policy.ATTEMPTS_HEADER: decision.attempt,
                policy.QUEUE_HEADER: role.name,
                policy.CONSUMER_HEADER: self.name,
                policy.PARKED_AT_HEADER: datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            },
        )
        try:
            self._publish_copy(body, role.parked, props)
        except self.connection.connection_errors:
            raise
        except Exception:
            log.exception("%s: parking a message failed; rejecting it to the queue's dead-letter exchange", self.name)
            message.reject(requeue=False)
            self.stats["parked"] += 1
            return
        message.ack()
        self.stats["parked"] += 1
        log.warning("%s: parked a message from %s: %s %s", self.name, role.name, decision.reason, decision.error)

    def _release_retries(self, *, everything: bool = False) -> None:
        now = time.monotonic()
        while self._delayed and (everything or self._delayed[0][0] <= now):
            _, _, queue, body, props = heapq.heappop(self._delayed)
            self._publish_copy(body, queue, props)

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if self._conn is not None and now - self._last_heartbeat >= 1.0:
            self._last_heartbeat = now
            self._conn.heartbeat_check()


def parked_reason(headers: dict | None) -> str | None:
    """Why a parked message was parked: our header, or the broker's dead-letter reason (delivery_limit)."""
    headers = headers or {}
    if headers.get(policy.PARK_REASON_HEADER):
        return headers[policy.PARK_REASON_HEADER]
    deaths = headers.get("x-death") or []
    return deaths[0].get("reason") if deaths else None


__all__ = ["EventConsumer", "Handler", "StopConnecting", "declare", "parked_reason"]
