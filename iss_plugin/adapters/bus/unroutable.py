"""The unroutable queue (`<prefix>.unroutable`): what the broker could not route, listed and replayed.

The exchange's alternate exchange `<exchange>.unroutable` (topology.py) keeps every message no
queue binds, with its original routing key. Listing reads the queue in a full turn
(queue_turn.py): every message taken unacked and put back in its order, nothing consumed.

Replay republishes copies of the chosen messages to the exchange with their original routing
keys, on a channel in confirm mode, mandatory, in queue order, while the reading channel still
holds every original unacked. The alternate exchange makes "still unroutable" invisible to the
publisher: the broker routes such a copy to the alternate exchange, counts it as routed (no
basic.return, whatever `mandatory` says) and confirms it, so the copy lands at the back of this
very queue. Each copy therefore carries a marker header (REPLAY_HEADER, unique per copy); once
every copy is confirmed, the ready messages of the queue are taken once more: a copy found
there came back, so it is dropped and its original stays where it was (no duplicate, no move
to the back, no loop); every other original is acked only now, after the broker confirmed its
copy. A returned copy (an exchange without the alternate exchange), a nack, a channel error or
a timeout keeps the original too. A crash between the confirm and the ack leaves the original
in the queue as well as the delivered copy: a duplicate, never a loss (consumers skip event
ids they have seen).

AMQP only: kombu memory:// has no alternate exchange, so nothing is ever unroutable there.
One reader at a time: while a list or replay holds the queue, another reader sees it shorter."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from iss_plugin.domain.errors import TransientError, UsageError

from .connection import is_amqp, make_kombu_connection, without_password
from .queue_turn import HeldTags, put_back, read_body, ready_count
from .queue_turn import messages as turn_messages
from .queue_turn import text as _text
from .topology import Topology

if TYPE_CHECKING:
    from iss_plugin.settings import BusSettings

    from .kombu_types import Connection, Message

REPLAY_HEADER = "x-iss-unroutable-replay"  # "<run>:<n>" on each copy a replay publishes
MAX_RETURN_READS = 100_000  # ready messages one replay takes at most while it looks for its copies
REPLAYED, STAYED, NOT_FOUND = "replayed", "stayed", "not found"


@dataclass(frozen=True)
class UnroutableMessage:
    position: int  # 1-based place in the queue when it was read
    event_id: str  # the envelope's id; `body-<sha256>` for a body that is not an envelope
    event_type: str | None
    routing_key: str  # the key it was published with (the alternate exchange keeps it)
    source: str | None  # the envelope's source (which server published it)
    time: str | None  # the envelope's time
    organization: str | None
    payload: str


@dataclass(frozen=True)
class UnroutableListing:
    queue: str
    total: int  # ready messages counted when the read began
    messages: tuple[UnroutableMessage, ...]


@dataclass(frozen=True)
class ReplayOutcome:
    event_id: str
    outcome: str  # REPLAYED, STAYED or NOT_FOUND
    event_type: str | None
    routing_key: str | None
    detail: str
    organization: str | None = None


@dataclass(frozen=True)
class ReplayReport:
    exchange: str
    queue: str
    outcomes: tuple[ReplayOutcome, ...]

    def having(self, outcome: str) -> list[ReplayOutcome]:
        return [o for o in self.outcomes if o.outcome == outcome]


def describe(position: int, message: Message) -> UnroutableMessage:
    read = read_body(message)
    return UnroutableMessage(
        position=position,
        event_id=read.event_id,
        event_type=_text(read.envelope.get("type")),
        routing_key=_text((message.delivery_info or {}).get("routing_key")) or "",
        source=_text(read.envelope.get("source")),
        time=_text(read.envelope.get("time")),
        organization=read.organization,
        payload=read.payload,
    )


@dataclass
class _Pick:
    """An original chosen for replay (held unacked) and what became of its copy."""

    tag: Any
    message: UnroutableMessage
    raw: Message
    marker: str
    outcome: str = STAYED
    detail: str = ""


@dataclass
class _Turn:
    held: HeldTags = field(default_factory=HeldTags)
    picks: list[_Pick] = field(default_factory=list)
    taken: int = 0


class UnroutableQueue:
    """The unroutable queue of `topology` on the RabbitMQ of `bus`."""

    def __init__(self, bus: BusSettings, topology: Topology) -> None:
        if not is_amqp(bus.url):
            raise UsageError(
                f"the bus {without_password(bus.url)} (settings bus.url) has no unroutable queue: only RabbitMQ "
                f"has the alternate exchange '{topology.unroutable_exchange}' that keeps what no queue binds, and "
                "kombu memory:// keeps nothing unroutable; run this against the server's RabbitMQ "
                "(bus.url = amqp://..., or ISS_BUS__URL)"
            )
        self.bus = bus
        self.topology = topology

    @property
    def name(self) -> str:
        return self.topology.unroutable_queue

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        with make_kombu_connection(self.bus) as conn:
            try:
                conn.ensure_connection(max_retries=1)
            except Exception as e:  # kombu's OperationalError or the socket's: not connected, nothing done
                raise TransientError(
                    f"cannot reach the broker at {without_password(self.bus.url)} ({e}): nothing was read or "
                    "changed; start RabbitMQ or correct bus.url in the settings, then run the command again"
                ) from e
            yield conn

    def count(self) -> int:
        with self._connection() as conn:
            return ready_count(conn, self.name)

    def listing(self, limit: int) -> UnroutableListing:
        """The first `limit` messages in queue order, and how many wait; takes (and puts back) them all."""
        if limit < 1:
            raise UsageError(f"--limit must be at least 1 (got {limit})")
        shown: list[UnroutableMessage] = []
        with self._connection() as conn:
            count = ready_count(conn, self.name)
            channel = conn.channel()
            held = HeldTags()
            taken = 0
            try:
                for message in turn_messages(conn, channel, self.name, count):
                    taken += 1
                    if taken <= limit:
                        shown.append(describe(taken, message))
                    held.add(message.delivery_tag)
            finally:
                put_back(conn, channel, self.name, held, taken if taken else None)
        return UnroutableListing(self.name, count, tuple(shown))

    def replay(self, event_ids: Sequence[str] | None) -> ReplayReport:
        """Republish every message of `event_ids` (None: all) in queue order; see the module's doc."""
        wanted = None if event_ids is None else set(event_ids)
        run = uuid.uuid4().hex[:16]
        with self._connection() as conn:
            count = ready_count(conn, self.name)
            reader = conn.channel()
            turn = _Turn()
            keep = turn.held
            try:
                self._take(conn, reader, count, wanted, run, turn)
                self._publish(conn, turn.picks)
                self._drop_copies_that_came_back(reader, run, turn)
                keep = self._ack_replayed(reader, turn)
            finally:
                put_back(conn, reader, self.name, keep, turn.taken if turn.taken else None)
        outcomes = [
            ReplayOutcome(
                p.message.event_id,
                p.outcome,
                p.message.event_type,
                p.message.routing_key,
                p.detail,
                p.message.organization,
            )
            for p in turn.picks
        ]
        found = {p.message.event_id for p in turn.picks}
        for event_id in dict.fromkeys(event_ids or ()):
            if event_id not in found:
                outcomes.append(
                    ReplayOutcome(
                        event_id,
                        NOT_FOUND,
                        None,
                        None,
                        f"no message with this id in {self.name} (replayed already? see `iss bus unroutable "
                        "list`); nothing changed for it",
                    )
                )
        return ReplayReport(self.topology.exchange, self.name, tuple(outcomes))

    def _take(self, conn: Connection, reader: Any, count: int, wanted: set[str] | None, run: str, turn: _Turn) -> None:
        """Phase 1: the whole queue, held unacked; the chosen ones remembered with their bodies."""
        for message in turn_messages(conn, reader, self.name, count):
            turn.taken += 1
            turn.held.add(message.delivery_tag)
            described = describe(turn.taken, message)
            if wanted is None or described.event_id in wanted:
                marker = f"{run}:{len(turn.picks)}"
                turn.picks.append(_Pick(message.delivery_tag, described, message, marker))

    def _publish(self, conn: Connection, picks: list[_Pick]) -> None:
        """Phase 2: a copy of each, confirmed one by one, in order; a pick not confirmed stays."""
        import amqp
        from amqp.exceptions import MessageNacked

        channel: Any = conn.channel()
        returned: set[str] = set()

        def on_return(_exc: Exception, _exchange: str, _key: str, message: Any) -> None:
            returned.add(_text((message.properties.get("application_headers") or {}).get(REPLAY_HEADER)) or "")

        channel.events["basic_return"].add(on_return)
        exchange = self.topology.exchange
        try:
            for n, pick in enumerate(picks):
                properties = dict(pick.raw.properties)
                properties["application_headers"] = {**(pick.raw.headers or {}), REPLAY_HEADER: pick.marker}
                copy = amqp.Message(pick.raw.body, **properties)
                where = f"exchange '{exchange}', routing key '{pick.message.routing_key}'"
                try:
                    channel.basic_publish(
                        copy,
                        exchange=exchange,
                        routing_key=pick.message.routing_key,
                        mandatory=True,
                        confirm_timeout=self.bus.confirm_timeout,
                    )
                except MessageNacked:
                    pick.detail = f"the broker refused (nacked) the copy to {where}; it stays in {self.name}"
                    continue
                except (*conn.channel_errors, *conn.connection_errors, TimeoutError) as e:  # type: ignore[attr-defined]  # kombu's Connection is unannotated
                    for rest in picks[n:]:
                        rest.detail = f"not republished ({e}); it stays in {self.name}"
                    return
                if pick.marker in returned:
                    pick.detail = (
                        f"returned by the broker: no queue binds it at {where} and the exchange has no "
                        f"alternate exchange; it stays in {self.name}"
                    )
                    continue
                pick.outcome, pick.detail = REPLAYED, f"to {where}: the broker confirmed it"
        finally:
            with suppress(Exception):
                channel.close()

    def _drop_copies_that_came_back(self, reader: Any, run: str, turn: _Turn) -> None:
        """Phase 3: the ready messages now are copies the alternate exchange took (confirmed before
        this read, so already enqueued) and whatever else arrived meanwhile (held, put back after)."""
        by_marker = {p.marker: p for p in turn.picks}
        for _ in range(MAX_RETURN_READS):
            got = reader.basic_get(queue=self.name, no_ack=False)
            if got is None:
                return
            marker = _text((got.properties.get("application_headers") or {}).get(REPLAY_HEADER)) or ""
            if marker.startswith(run + ":"):
                reader.basic_ack(got.delivery_tag)  # a copy: its original stays in its place
                pick = by_marker.get(marker)
                if pick is not None and pick.outcome == REPLAYED:
                    pick.outcome = STAYED
                    pick.detail = (
                        f"still unroutable: no queue binds '{pick.message.routing_key}' on "
                        f"'{self.topology.exchange}'; it stays in {self.name} in its place (start the worker "
                        "whose queue takes it, e.g. `iss worker import`, then replay again)"
                    )
                continue
            turn.taken += 1
            turn.held.add(got.delivery_tag)

    def _ack_replayed(self, reader: Any, turn: _Turn) -> HeldTags:
        """Phase 4: ack the originals whose copies were confirmed and routed; the rest to put back."""
        gone = {p.tag for p in turn.picks if p.outcome == REPLAYED}
        for tag in gone:
            reader.basic_ack(tag)
        keep = HeldTags()
        for tag in turn.held:
            if tag not in gone:
                keep.add(tag)
        turn.taken -= len(gone)
        return keep
