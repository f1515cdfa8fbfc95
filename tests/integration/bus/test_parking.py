"""Parked messages: list without consuming, replay to the original routing key, discard; the same
on kombu memory:// and on RabbitMQ (adapters/bus/parking.py)."""

from __future__ import annotations

import pytest

from iss_plugin.adapters.bus import policy
from iss_plugin.adapters.bus import topology as T
from iss_plugin.adapters.bus.codec import encode
from iss_plugin.adapters.bus.parking import ParkedQueues
from iss_plugin.domain import events as E
from iss_plugin.domain.errors import ImportRuleViolation, NotFound

from .conftest import Running, declare_all, drain, wait_for
from .test_consumer_policy import consumer_for, published, raw, send

pytestmark = pytest.mark.rabbitmq


def park(bus, topology, envelopes) -> None:
    def refuse(event):
        raise ImportRuleViolation(f"<script>alert({event.id!r})</script> refused")

    with Running(consumer_for(bus, topology, {E.CONTENT_VIEW_PUBLISHED: refuse})) as c:
        for env in envelopes:
            send(bus, encode(env))
        assert wait_for(lambda: c.stats["parked"] == len(envelopes))


def test_list_replay_discard(any_bus):
    topology = declare_all(any_bus, export=True)
    first, second, third = published("1.0"), published("2.0"), published("3.0")
    park(any_bus, topology, [first, second, third])
    queues = ParkedQueues(any_bus, topology)
    listed = queues.messages()
    assert [m.event_id for m in listed] == [first["id"], second["id"], third["id"]]
    assert queues.messages() == listed  # listing consumes nothing and keeps the order
    m = listed[0]
    assert m.reason == "rule_violation" and "<script>" in (m.error or "")
    assert m.routing_key == "iss.content_view.published" and m.organization == "ACME"
    assert m.event_type == E.CONTENT_VIEW_PUBLISHED and m.attempts == 1
    assert m.origin_queue == T.export_queue_name(any_bus.prefix)

    replayed = queues.replay(second["id"])
    assert replayed.event_id == second["id"]
    q = topology.queue(T.export_queue_name(any_bus.prefix))
    back = drain(any_bus, q.name, expect=1)
    assert len(back) == 1 and raw(back[0]) == encode(second)
    assert policy.PARK_REASON_HEADER not in (back[0].headers or {})  # a replay starts over
    assert [x.event_id for x in queues.messages()] == [first["id"], third["id"]]

    queues.discard(first["id"])
    assert [x.event_id for x in queues.messages()] == [third["id"]]
    assert drain(any_bus, q.name) == []  # a discard publishes nothing


def test_unknown_id_is_not_found_and_changes_nothing(any_bus):
    topology = declare_all(any_bus, export=True)
    env = published()
    park(any_bus, topology, [env])
    queues = ParkedQueues(any_bus, topology)
    with pytest.raises(NotFound, match="no parked message with id 'nope'"):
        queues.replay("nope")
    with pytest.raises(NotFound):
        queues.discard("nope")
    assert [m.event_id for m in queues.messages()] == [env["id"]]


def test_queues_never_declared_list_empty(any_bus):
    topology = T.build(any_bus, export=True, import_for=["nobody"])
    assert ParkedQueues(any_bus, topology).messages() == []
