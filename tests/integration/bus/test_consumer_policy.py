"""One ack policy, the same observable behaviour on kombu memory:// and on RabbitMQ."""

from __future__ import annotations

import itertools
import time

import pytest
from kombu import Producer

from iss_plugin.adapters.bus import policy
from iss_plugin.adapters.bus import topology as T
from iss_plugin.adapters.bus.codec import CONTENT_TYPE, encode
from iss_plugin.adapters.bus.connection import make_kombu_connection
from iss_plugin.adapters.bus.consumer import EventConsumer, parked_reason
from iss_plugin.domain import events as E
from iss_plugin.domain.errors import ImportRuleViolation, TransientError

from .conftest import Running, declare_all, drain, wait_for

pytestmark = pytest.mark.rabbitmq


def raw(message) -> bytes:
    """The body as bytes (py-amqp hands over str when a content_encoding is set)."""
    return message.body if isinstance(message.body, bytes) else message.body.encode()


def published(version: str = "1.0") -> dict:
    return E.make_envelope(
        E.CONTENT_VIEW_PUBLISHED,
        "urn:iss:server:test",
        E.content_view_published(organization="ACME", content_view="base", version=version),
    )


def send(bus, body: bytes, routing_key: str = "iss.content_view.published") -> None:
    with make_kombu_connection(bus) as conn:
        Producer(conn.channel()).publish(
            body,
            exchange=bus.exchange,
            routing_key=routing_key,
            content_type=CONTENT_TYPE,
            content_encoding="utf-8",
            retry=False,
        )


def consumer_for(bus, topology, handlers) -> EventConsumer:
    return EventConsumer(
        make_kombu_connection(bus),
        topology,
        [T.export_queue_name(bus.prefix)],
        handlers,
        name="test",
        prefetch=bus.prefetch,
    )


def test_success_is_acked_once_and_nothing_parks(any_bus):
    topology = declare_all(any_bus, export=True)
    seen = []
    with Running(consumer_for(any_bus, topology, {E.CONTENT_VIEW_PUBLISHED: seen.append})) as c:
        env = published()
        send(any_bus, encode(env))
        assert wait_for(lambda: c.stats["acked"] == 1)
    assert [e.id for e in seen] == [env["id"]]
    assert seen[0].data["version"] == "1.0"
    q = topology.queue(T.export_queue_name(any_bus.prefix))
    assert drain(any_bus, q.parked) == []
    assert drain(any_bus, q.name) == []  # acked: nothing comes back


def test_poison_message_parks_at_once_with_its_reason(any_bus):
    topology = declare_all(any_bus, export=True)
    calls = []

    def handler(event):
        calls.append(event.id)
        raise ImportRuleViolation("Red Hat content never goes into a custom product")

    with Running(consumer_for(any_bus, topology, {E.CONTENT_VIEW_PUBLISHED: handler})) as c:
        env = published()
        send(any_bus, encode(env))
        assert wait_for(lambda: c.stats["parked"] == 1)
    q = topology.queue(T.export_queue_name(any_bus.prefix))
    parked = drain(any_bus, q.parked, expect=1)
    assert len(parked) == 1 and len(calls) == 1
    headers = parked[0].headers
    assert headers[policy.PARK_REASON_HEADER] == "rule_violation" == parked_reason(headers)
    assert "Red Hat content never goes into a custom product" in headers[policy.ERROR_HEADER]
    assert headers[policy.ROUTING_KEY_HEADER] == "iss.content_view.published"
    assert raw(parked[0]) == encode(env)  # the original message, untouched, for a replay
    assert drain(any_bus, q.name) == []


def test_transient_error_retries_with_growing_delays_then_parks_after_max_attempts(any_bus):
    topology = declare_all(any_bus, export=True)
    attempts = []

    def handler(event):
        attempts.append(time.monotonic())
        raise TransientError("the content backend is restarting")

    with Running(consumer_for(any_bus, topology, {E.CONTENT_VIEW_PUBLISHED: handler})) as c:
        send(any_bus, encode(published()))
        assert wait_for(lambda: c.stats["parked"] == 1, timeout=20)
    assert len(attempts) == any_bus.max_attempts == 3
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    # retry_delays_ms = (300, 600): each gap is at least its delay, and the delays grow
    assert gaps[0] >= 0.29 and gaps[1] >= 0.59, gaps
    q = topology.queue(T.export_queue_name(any_bus.prefix))
    parked = drain(any_bus, q.parked, expect=1)
    assert parked[0].headers[policy.PARK_REASON_HEADER] == "max_attempts"
    assert parked[0].headers[policy.ATTEMPTS_HEADER] == 3
    assert "the content backend is restarting" in parked[0].headers[policy.ERROR_HEADER]
    assert c.stats == {"acked": 0, "retried": 2, "parked": 1}


def test_transient_error_that_clears_up_is_handled_on_a_retry(any_bus):
    topology = declare_all(any_bus, export=True)
    attempts = []

    def handler(event):
        attempts.append(event.id)
        if len(attempts) == 1:
            raise TransientError("database locked")

    with Running(consumer_for(any_bus, topology, {E.CONTENT_VIEW_PUBLISHED: handler})) as c:
        send(any_bus, encode(published()))
        assert wait_for(lambda: c.stats["acked"] == 1)
    assert len(attempts) == 2 and c.stats["parked"] == 0


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"\xff\xfe not json at all", "decode"),
        (b"[1, 2, 3]", "decode"),
        (b'{"specversion": "1.0", "type": "iss.content_view.published.v1"}', "schema"),
    ],
)
def test_bad_messages_park_and_are_never_acked_silently(any_bus, body, reason):
    topology = declare_all(any_bus, export=True)
    calls = []
    with Running(consumer_for(any_bus, topology, {E.CONTENT_VIEW_PUBLISHED: calls.append})) as c:
        send(any_bus, body)
        assert wait_for(lambda: c.stats["parked"] == 1)
    q = topology.queue(T.export_queue_name(any_bus.prefix))
    parked = drain(any_bus, q.parked, expect=1)
    assert parked[0].headers[policy.PARK_REASON_HEADER] == reason
    assert raw(parked[0]) == body
    assert calls == []


def test_invalid_data_parks_with_reason_schema_naming_the_field(any_bus):
    topology = declare_all(any_bus, export=True)
    env = published()
    env["data"]["version"] = "two"
    with Running(consumer_for(any_bus, topology, {E.CONTENT_VIEW_PUBLISHED: lambda e: None})) as c:
        send(any_bus, encode(env))
        assert wait_for(lambda: c.stats["parked"] == 1)
    parked = drain(any_bus, topology.queue(T.export_queue_name(any_bus.prefix)).parked, expect=1)
    assert parked[0].headers[policy.PARK_REASON_HEADER] == "schema"
    assert "data/version" in parked[0].headers[policy.ERROR_HEADER]


def test_an_event_without_handler_parks_as_unhandled(any_bus):
    topology = declare_all(any_bus, export=True)
    env = E.make_envelope(
        E.EXPORT_REQUESTED,
        "urn:iss:server:test",
        E.export_requested(organization="ACME", destination="dest-1", content_view="base", reason="manual"),
    )
    with Running(consumer_for(any_bus, topology, {E.CONTENT_VIEW_PUBLISHED: lambda e: None})) as c:
        send(any_bus, encode(env), routing_key=E.routing_key(E.EXPORT_REQUESTED))
        assert wait_for(lambda: c.stats["parked"] == 1)
    parked = drain(any_bus, topology.queue(T.export_queue_name(any_bus.prefix)).parked, expect=1)
    assert parked[0].headers[policy.PARK_REASON_HEADER] == "unhandled"


def test_an_unvalidated_event_whose_type_is_not_a_string_parks_as_unhandled(any_bus):
    """validate=False skips the schema: a "type" that is a list (unhashable) still parks the
    message instead of crashing the consumer."""
    topology = declare_all(any_bus, export=True)
    env = {**published(), "type": ["iss.content_view.published"]}
    consumer = EventConsumer(
        make_kombu_connection(any_bus),
        topology,
        [T.export_queue_name(any_bus.prefix)],
        {E.CONTENT_VIEW_PUBLISHED: lambda e: None},
        name="test",
        validate=False,
    )
    with Running(consumer) as c:
        send(any_bus, encode(env))
        assert wait_for(lambda: c.stats["parked"] == 1, timeout=5)
    parked = drain(any_bus, topology.queue(T.export_queue_name(any_bus.prefix)).parked, expect=1)
    assert parked[0].headers[policy.PARK_REASON_HEADER] == "unhandled"
    assert "['iss.content_view.published']" in parked[0].headers[policy.ERROR_HEADER]


def test_a_long_handler_keeps_its_connection_and_is_acked(any_bus):
    """The handler runs in a worker thread while the consumer keeps reading (heartbeats)."""
    topology = declare_all(any_bus, export=True)
    done = []

    def slow(event):
        time.sleep(2.5)
        done.append(event.id)

    with Running(consumer_for(any_bus, topology, {E.CONTENT_VIEW_PUBLISHED: slow})) as c:
        send(any_bus, encode(published("1.0")))
        send(any_bus, encode(published("2.0")))
        assert wait_for(lambda: c.stats["acked"] == 2, timeout=15)
    assert len(done) == 2
