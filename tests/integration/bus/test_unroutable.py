"""The unroutable queue (adapters/bus/unroutable.py): what the alternate exchange kept is listed in
order without being consumed, replayed to its original routing key once a queue binds it, and stays
in its place, body intact, while none does. Real RabbitMQ on the session's throwaway vhost."""

from __future__ import annotations

import pytest

from iss_plugin.adapters.bus import topology as T
from iss_plugin.adapters.bus.codec import encode
from iss_plugin.adapters.bus.publisher import OutgoingMessage, make_publisher
from iss_plugin.adapters.bus.unroutable import NOT_FOUND, REPLAYED, STAYED, UnroutableQueue
from iss_plugin.domain import events as E
from iss_plugin.domain.errors import TransientError, UsageError

from .conftest import declare_all, drain, unique_bus
from .test_consumer_policy import published, raw

pytestmark = pytest.mark.rabbitmq
NOWHERE = "iss.bundle.ready.nowhere"  # an import queue no worker declared


def publish(bus, envelopes, routing_key: str = "iss.content_view.published") -> None:
    """As the relay does: pika, confirms, mandatory; the alternate exchange takes what no queue binds."""
    publisher = make_publisher(bus)
    try:
        result = publisher.publish_batch(
            [OutgoingMessage(env["id"], env["type"], routing_key, encode(env)) for env in envelopes]
        )
    finally:
        publisher.close()
    assert result.confirmed == {env["id"] for env in envelopes} and not result.returned


def parked_unroutable(bus, n: int = 3) -> tuple[T.Topology, list[dict]]:
    """The first start: the exchange (with its alternate exchange) exists, no role queue yet."""
    topology = declare_all(bus)
    envelopes = [published(f"{i}.0") for i in range(1, n + 1)]
    publish(bus, envelopes)
    return topology, envelopes


def ids(queue: UnroutableQueue) -> list[str]:
    return [m.event_id for m in queue.listing(1000).messages]


def test_list_shows_what_waits_in_order_and_consumes_nothing(amqp_bus):
    topology, envs = parked_unroutable(amqp_bus)
    queue = UnroutableQueue(amqp_bus, topology)
    listed = queue.listing(10)
    assert listed.queue == f"{amqp_bus.prefix}.unroutable" and listed.total == 3
    assert [m.event_id for m in listed.messages] == [e["id"] for e in envs]
    first = listed.messages[0]
    assert (first.position, first.event_type, first.routing_key) == (
        1,
        E.CONTENT_VIEW_PUBLISHED,
        "iss.content_view.published",
    )
    assert first.source == "urn:iss:server:test" and first.time == envs[0]["time"] and first.organization == "ACME"
    assert queue.listing(10) == listed  # read twice: nothing consumed, nothing reordered
    short = queue.listing(2)
    assert short.total == 3 and [m.event_id for m in short.messages] == [e["id"] for e in envs[:2]]
    assert ids(queue) == [e["id"] for e in envs] and queue.count() == 3


def test_replay_all_once_the_queue_exists_delivers_in_order_and_empties_it(amqp_bus):
    topology, envs = parked_unroutable(amqp_bus, 5)
    declare_all(amqp_bus, export=True)  # the export worker starts: its queue binds the key now
    report = UnroutableQueue(amqp_bus, topology).replay(None)
    assert [(o.event_id, o.outcome) for o in report.outcomes] == [(e["id"], REPLAYED) for e in envs]
    assert "the broker confirmed it" in report.outcomes[0].detail
    got = drain(amqp_bus, T.export_queue_name(amqp_bus.prefix), expect=5)
    assert [raw(m) for m in got] == [encode(e) for e in envs]  # in order, bodies intact
    assert UnroutableQueue(amqp_bus, topology).count() == 0


def test_replay_of_a_still_unroutable_message_keeps_it_in_its_place(amqp_bus):
    topology = declare_all(amqp_bus)
    a, b, c = published("1.0"), published("2.0"), published("3.0")
    publish(amqp_bus, [a])
    publish(amqp_bus, [b], routing_key=NOWHERE)
    publish(amqp_bus, [c])
    queue = UnroutableQueue(amqp_bus, topology)
    before = queue.listing(10).messages

    report = queue.replay([b["id"]])  # nothing binds any key yet
    assert [(o.event_id, o.outcome) for o in report.outcomes] == [(b["id"], STAYED)]
    assert "still unroutable" in report.outcomes[0].detail and NOWHERE in report.outcomes[0].detail
    assert queue.listing(10).messages == before  # same count, same order, bodies intact

    declare_all(amqp_bus, export=True)
    report = queue.replay(None)
    assert {o.event_id: o.outcome for o in report.outcomes} == {a["id"]: REPLAYED, b["id"]: STAYED, c["id"]: REPLAYED}
    left = queue.listing(10).messages
    assert [m.event_id for m in left] == [b["id"]] and left[0].payload == encode(b).decode()
    assert left[0].routing_key == NOWHERE
    got = drain(amqp_bus, T.export_queue_name(amqp_bus.prefix), expect=2)
    assert [raw(m) for m in got] == [encode(a), encode(c)]


def test_unknown_id_changes_nothing_and_the_known_ones_are_replayed(amqp_bus):
    topology, envs = parked_unroutable(amqp_bus)
    declare_all(amqp_bus, export=True)
    queue = UnroutableQueue(amqp_bus, topology)
    report = queue.replay(["nope"])
    assert [(o.event_id, o.outcome) for o in report.outcomes] == [("nope", NOT_FOUND)]
    assert "nothing changed for it" in report.outcomes[0].detail
    assert ids(queue) == [e["id"] for e in envs]
    assert drain(amqp_bus, T.export_queue_name(amqp_bus.prefix)) == []  # nothing published

    report = queue.replay(["nope", envs[1]["id"]])
    assert [(o.event_id, o.outcome) for o in report.outcomes] == [(envs[1]["id"], REPLAYED), ("nope", NOT_FOUND)]
    assert ids(queue) == [envs[0]["id"], envs[2]["id"]]


def test_memory_bus_has_no_unroutable_queue():
    bus = unique_bus("memory://")
    with pytest.raises(UsageError, match=r"memory:// \(settings bus.url\) has no unroutable queue"):
        UnroutableQueue(bus, T.build(bus))


def test_broker_down_is_a_clear_error_and_changes_nothing(amqp_bus):
    topology, envs = parked_unroutable(amqp_bus)
    down = unique_bus("amqp://guest:secret@127.0.0.1:1/nowhere", exchange=amqp_bus.exchange, prefix=amqp_bus.prefix)
    for act in (lambda q: q.listing(10), lambda q: q.replay(None)):
        with pytest.raises(TransientError, match=r"cannot reach the broker at amqp://guest:\*\*\*@127.0.0.1:1/nowhere"):
            act(UnroutableQueue(down, topology))
    assert ids(UnroutableQueue(amqp_bus, topology)) == [e["id"] for e in envs]


def test_a_message_arriving_during_a_replay_is_kept_after_the_ones_that_were_there(amqp_bus, monkeypatch):
    topology = declare_all(amqp_bus)
    a, b, late = published("1.0"), published("2.0"), published("3.0")
    publish(amqp_bus, [a])
    publish(amqp_bus, [b], routing_key=NOWHERE)
    declare_all(amqp_bus, export=True)
    republish = UnroutableQueue._publish

    def relay_publishes_meanwhile(self, conn, picks):  # the relay goes on while the replay holds the queue
        publish(amqp_bus, [late], routing_key=NOWHERE)
        republish(self, conn, picks)

    monkeypatch.setattr(UnroutableQueue, "_publish", relay_publishes_meanwhile)
    report = UnroutableQueue(amqp_bus, topology).replay(None)
    monkeypatch.undo()
    assert [(o.event_id, o.outcome) for o in report.outcomes] == [(a["id"], REPLAYED), (b["id"], STAYED)]
    assert ids(UnroutableQueue(amqp_bus, topology)) == [b["id"], late["id"]]


def test_a_refused_republish_keeps_every_message(amqp_bus):
    topology, envs = parked_unroutable(amqp_bus)
    from iss_plugin.adapters.bus.connection import make_kombu_connection

    with make_kombu_connection(amqp_bus) as conn:
        conn.channel().exchange_delete(amqp_bus.exchange)  # e.g. a broker whose exchange someone removed
    queue = UnroutableQueue(amqp_bus, topology)
    report = queue.replay(None)
    assert [o.outcome for o in report.outcomes] == [STAYED] * 3
    assert "not republished" in report.outcomes[0].detail and "NOT_FOUND" in report.outcomes[0].detail
    assert ids(queue) == [e["id"] for e in envs]
