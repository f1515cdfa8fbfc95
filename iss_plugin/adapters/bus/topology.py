"""The one place that says what exists on the broker; declared idempotently.

    <exchange>                  durable topic exchange; alternate exchange <exchange>.unroutable
    <exchange>.unroutable       fanout -> quorum queue <prefix>.unroutable (nothing is dropped silently)
    <prefix>.export             quorum; iss.content_view.published, iss.repository.changed,
                                iss.export.requested.<server> (a request addressed to this
                                source), iss.export.requested (an older destination's
                                unaddressed request)                          (on the source)
    <prefix>.import.<server>    quorum; iss.bundle.ready.<server>             (on a destination)
    <prefix>.status.<server>    quorum; iss.bundle.imported.<server>,
                                iss.bundle.rejected.<server>                  (on the source)

Each role queue Q also has
    Q.retry.<ms>ms   quorum, x-message-ttl=<ms>, dead-letters back to Q (default exchange): one per
                     delay in settings.bus.retry_delays_ms. A consumer retries a message by
                     publishing a copy there; the broker's x-death entries count the attempts.
    Q.parked         quorum; where a message ends after max_attempts, or at once for a permanent
                     error, with its reason in headers (x-iss-park-reason, x-iss-error). Q itself
                     dead-letters there too when a message crashes consumers `DELIVERY_LIMIT`
                     times (quorum x-delivery-limit: x-death reason `delivery_limit`).

Dead-lettering uses the at-least-once strategy of quorum queues (RabbitMQ >= 3.10).
The same topology as RabbitMQ definitions: `python -m iss_plugin.adapters.bus.topology --help`
(deploy/rabbitmq/definitions.json is its output for one source and one destination).

kombu's memory:// transport has no TTL or dead-lettering: there only the exchange, the role
queues and their parking queues are declared, and the consumer retries in-process.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from iss_plugin.domain.events import (
    BUNDLE_IMPORTED,
    BUNDLE_READY,
    BUNDLE_REJECTED,
    CONTENT_VIEW_PUBLISHED,
    EXPORT_REQUESTED,
    REPOSITORY_CHANGED,
    UNADDRESSED_EXPORT_REQUESTED,
    routing_key,
)
from schemas import JSONObject

if TYPE_CHECKING:
    from .kombu_types import Connection, Entity

DELIVERY_LIMIT = 20  # redeliveries (consumer crashes) before the broker parks a message
EXPORT, IMPORT, STATUS = "export", "import", "status"
QUORUM: dict[str, str | int] = {"x-queue-type": "quorum"}
DEAD_LETTER_SAFELY: dict[str, str | int] = {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}


class BusNames(Protocol):
    """What the topology needs of settings.bus (BusSettings, or the stand-in `main` makes of its arguments)."""

    @property
    def exchange(self) -> str: ...

    @property
    def prefix(self) -> str: ...

    @property
    def retry_delays_ms(self) -> tuple[int, ...]: ...

    @property
    def max_attempts(self) -> int: ...


@dataclass(frozen=True)
class QueueSpec:
    name: str
    arguments: dict[str, str | int] = field(default_factory=dict, hash=False, compare=True)  # x-arguments
    routing_keys: tuple[str, ...] = ()  # bindings on the main exchange


@dataclass(frozen=True)
class RoleQueue:
    """A queue consumers read, with its retry queues (delay_ms -> name) and its parking queue."""

    role: str
    name: str
    routing_keys: tuple[str, ...]
    retry: tuple[tuple[int, str], ...]
    parked: str

    def retry_queue(self, attempt: int) -> tuple[int, str]:
        """(delay, queue) for retrying after failed attempt `attempt` (1-based): the delays grow, the last repeats."""
        return self.retry[min(max(attempt, 1), len(self.retry)) - 1]


@dataclass(frozen=True)
class Topology:
    exchange: str
    prefix: str
    retry_delays_ms: tuple[int, ...]
    max_attempts: int
    queues: tuple[RoleQueue, ...] = ()

    @property
    def unroutable_exchange(self) -> str:
        return f"{self.exchange}.unroutable"

    @property
    def unroutable_queue(self) -> str:
        return f"{self.prefix}.unroutable"

    def queue(self, name: str) -> RoleQueue:
        for q in self.queues:
            if q.name == name:
                return q
        raise KeyError(f"queue {name!r} is not in this topology ({', '.join(q.name for q in self.queues)})")

    def queue_specs(self, *, with_retry: bool = True) -> list[QueueSpec]:
        """Every queue to declare, main queues first."""
        specs: list[QueueSpec] = []
        for q in self.queues:
            specs.append(
                QueueSpec(
                    q.name,
                    {
                        **QUORUM,
                        "x-dead-letter-exchange": "",
                        "x-dead-letter-routing-key": q.parked,
                        **DEAD_LETTER_SAFELY,
                        "x-delivery-limit": DELIVERY_LIMIT,
                    },
                    q.routing_keys,
                )
            )
        for q in self.queues:
            if with_retry:
                for delay, name in q.retry:
                    specs.append(
                        QueueSpec(
                            name,
                            {
                                **QUORUM,
                                "x-message-ttl": delay,
                                "x-dead-letter-exchange": "",
                                "x-dead-letter-routing-key": q.name,
                                **DEAD_LETTER_SAFELY,
                            },
                        )
                    )
            specs.append(QueueSpec(q.parked, dict(QUORUM)))
        specs.append(QueueSpec(self.unroutable_queue, dict(QUORUM)))
        return specs


def export_queue_name(prefix: str) -> str:
    return f"{prefix}.export"


def import_queue_name(prefix: str, server_id: str) -> str:
    return f"{prefix}.import.{server_id}"


def status_queue_name(prefix: str, server_id: str) -> str:
    return f"{prefix}.status.{server_id}"


def export_routing_keys(sources: Iterable[str]) -> list[str]:
    """What an export queue of `sources` takes: publishes, repository changes, the export requests
    addressed to them, and an older destination's unaddressed request (the queue ends a request's
    way, so taking it loops nothing; links never carry it, see links.py)."""
    return [
        routing_key(CONTENT_VIEW_PUBLISHED),
        routing_key(REPOSITORY_CHANGED),
        *(routing_key(EXPORT_REQUESTED, s) for s in sources),
        UNADDRESSED_EXPORT_REQUESTED,
    ]


def _role_queue(role: str, name: str, keys: Iterable[str], delays: tuple[int, ...]) -> RoleQueue:
    retry = tuple((d, f"{name}.retry.{d}ms") for d in delays)
    return RoleQueue(role, name, tuple(keys), retry, f"{name}.parked")


def build(
    bus: BusNames,
    *,
    export: bool = False,
    export_for: Iterable[str] = (),
    status_for: Iterable[str] = (),
    import_for: Iterable[str] = (),
) -> Topology:
    """The topology for settings.bus: the export queue (a source; `export_for`: the source server
    ids whose addressed export requests it takes, so `export_for` alone makes it too), status queues
    of source servers, import queues of destination servers."""
    delays = tuple(int(d) for d in bus.retry_delays_ms) or (1000,)
    if any(d <= 0 for d in delays) or bus.max_attempts < 1:
        raise ValueError("retry delays must be positive and max_attempts at least 1")
    queues: list[RoleQueue] = []
    sources = list(dict.fromkeys(export_for))
    if export or sources:
        queues.append(_role_queue(EXPORT, export_queue_name(bus.prefix), export_routing_keys(sources), delays))
    for server in dict.fromkeys(status_for):
        queues.append(
            _role_queue(
                STATUS,
                status_queue_name(bus.prefix, server),
                [routing_key(BUNDLE_IMPORTED, server), routing_key(BUNDLE_REJECTED, server)],
                delays,
            )
        )
    for server in dict.fromkeys(import_for):
        queues.append(
            _role_queue(IMPORT, import_queue_name(bus.prefix, server), [routing_key(BUNDLE_READY, server)], delays)
        )
    return Topology(bus.exchange, bus.prefix, delays, bus.max_attempts, tuple(queues))


def is_memory(connection: Connection) -> bool:
    return connection.transport_cls in ("memory",) or getattr(connection.transport, "driver_type", "") == "memory"


def kombu_entities(topology: Topology, *, memory: bool = False) -> tuple[list[Entity], list[Entity]]:
    """(exchanges, queues) as kombu objects."""
    from kombu.entity import Exchange, Queue, binding

    main: Entity = Exchange(  # type: ignore[no-untyped-call]  # kombu's constructors are unannotated
        topology.exchange,
        "topic",
        durable=True,
        arguments=None if memory else {"alternate-exchange": topology.unroutable_exchange},
    )
    exchanges = [main]
    if not memory:
        exchanges.append(Exchange(topology.unroutable_exchange, "fanout", durable=True))  # type: ignore[no-untyped-call]  # kombu's constructors are unannotated
    queues: list[Entity] = []
    for spec in topology.queue_specs(with_retry=not memory):
        bindings = [binding(main, routing_key=k) for k in spec.routing_keys]  # type: ignore[no-untyped-call]  # kombu's constructors are unannotated
        if spec.name == topology.unroutable_queue and not memory:
            bindings = [binding(exchanges[1], routing_key="")]  # type: ignore[no-untyped-call]  # kombu's constructors are unannotated
        queues.append(
            Queue(  # type: ignore[no-untyped-call]  # kombu's constructors are unannotated
                spec.name,
                bindings=bindings or None,
                durable=True,
                queue_arguments=None if memory else spec.arguments,
                no_declare=False,
            )
        )
    return exchanges, queues


def declare(connection: Connection, topology: Topology) -> None:
    """Declare everything (idempotent: a second declare with the same settings changes nothing).

    Raises the broker's PRECONDITION_FAILED if a queue exists with other arguments."""
    memory = is_memory(connection)
    exchanges, queues = kombu_entities(topology, memory=memory)
    with connection.channel() as channel:
        for ex in exchanges:
            ex(channel).declare()
        for q in queues:
            q(channel).declare()


def definitions(topology: Topology, vhost: str = "/") -> JSONObject:
    """The topology as RabbitMQ definitions (rabbitmqctl import_definitions / management API)."""
    exchanges = [
        {
            "name": topology.exchange,
            "vhost": vhost,
            "type": "topic",
            "durable": True,
            "auto_delete": False,
            "internal": False,
            "arguments": {"alternate-exchange": topology.unroutable_exchange},
        },
        {
            "name": topology.unroutable_exchange,
            "vhost": vhost,
            "type": "fanout",
            "durable": True,
            "auto_delete": False,
            "internal": False,
            "arguments": {},
        },
    ]
    queues: list[JSONObject] = []
    bindings: list[JSONObject] = []
    for spec in topology.queue_specs():
        queues.append(
            {"name": spec.name, "vhost": vhost, "durable": True, "auto_delete": False, "arguments": spec.arguments}
        )
        for key in spec.routing_keys:
            bindings.append(
                {
                    "source": topology.exchange,
                    "vhost": vhost,
                    "destination": spec.name,
                    "destination_type": "queue",
                    "routing_key": key,
                    "arguments": {},
                }
            )
    bindings.append(
        {
            "source": topology.unroutable_exchange,
            "vhost": vhost,
            "destination": topology.unroutable_queue,
            "destination_type": "queue",
            "routing_key": "",
            "arguments": {},
        }
    )
    return {"exchanges": exchanges, "queues": queues, "bindings": bindings}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m iss_plugin.adapters.bus.topology",
        description="Print the iss RabbitMQ topology as definitions (JSON) for operators.",
    )
    parser.add_argument("--exchange", default="iss")
    parser.add_argument("--prefix", default="iss")
    parser.add_argument("--vhost", default="/")
    parser.add_argument("--retry-delays-ms", default="1000,5000,30000", help="comma-separated")
    parser.add_argument("--max-attempts", type=int, default=5)
    parser.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="SERVER_ID",
        help="a source server: the export queue (with its addressed requests) and its status queue",
    )
    parser.add_argument(
        "--destination", action="append", default=[], metavar="SERVER_ID", help="a destination server: its import queue"
    )
    args = parser.parse_args(argv)

    @dataclass(frozen=True)
    class _Bus:
        exchange: str
        prefix: str
        retry_delays_ms: tuple[int, ...]
        max_attempts: int

    bus = _Bus(
        args.exchange, args.prefix, tuple(int(x) for x in args.retry_delays_ms.split(",") if x), args.max_attempts
    )
    topology = build(bus, export_for=args.source, status_for=args.source, import_for=args.destination)
    json.dump(definitions(topology, args.vhost), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
