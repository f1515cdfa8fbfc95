"""Multi-site links: each site has its own RabbitMQ; a dynamic shovel carries what the other site
needs. Sites never share a broker.

Per link (one source server, one destination server), in RabbitMQ definitions format:
- on the source's broker a durable quorum queue `<prefix>.link.<destination>` bound to
  `iss.bundle.ready.<destination>`, and a shovel moving it to the destination broker's exchange
  (the routing key is kept, so the destination's import queue gets it);
- on the destination's broker `<prefix>.link.<source>` bound to `iss.bundle.imported.<source>`,
  `iss.bundle.rejected.<source>` (to the source's status queue) and `iss.export.requested.<source>`
  (a destination's own request addressed to that source, `iss content-import request`: to its
  export queue), shovelled back to the source broker's exchange.

A link carries only what is addressed to the server on its other side: two sites linked both ways
(each a source of the other) pass nothing back and forth. The unaddressed `iss.export.requested`
of destinations older than addressed requests is never carried (links made before carried it to
every linked source, and round in circles between sites linked both ways): `obsolete_bindings`
names that binding, for operators to delete from links made before (importing definitions only
adds bindings).

The link queues hold messages while a shovel is down or deleted; the shovels ack only after the
other broker confirmed (`on-confirm`), so a shovel restart duplicates at most, never loses (the
consumers' idempotency absorbs duplicates).

    python -m iss_plugin.adapters.bus.links --source S --destination D \\
        --source-uri amqp://... --destination-uri amqp://... [--exchange iss --prefix iss]"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from iss_plugin.domain.events import (
    BUNDLE_IMPORTED,
    BUNDLE_READY,
    BUNDLE_REJECTED,
    EXPORT_REQUESTED,
    UNADDRESSED_EXPORT_REQUESTED,
    routing_key,
)
from iss_plugin.domain.jsontypes import JSONObject


@dataclass(frozen=True)
class Side:
    """One site's broker: its AMQP URI (with the vhost) and the vhost name for definitions."""

    uri: str
    vhost: str


def link_queue_name(prefix: str, toward: str) -> str:
    return f"{prefix}.link.{toward}"


def shovel_name(prefix: str, source: str, destination: str) -> str:
    return f"{prefix}.{source}-to-{destination}"


def link_definitions(
    source: str, destination: str, src: Side, dst: Side, *, exchange: str = "iss", prefix: str = "iss"
) -> tuple[JSONObject, JSONObject]:
    """(the source broker's definitions, the destination broker's) for one link."""
    return (
        _side(src, dst, prefix, exchange, destination, [routing_key(BUNDLE_READY, destination)],
              shovel_name(prefix, source, destination)),
        _side(dst, src, prefix, exchange, source,
              [routing_key(BUNDLE_IMPORTED, source), routing_key(BUNDLE_REJECTED, source),
               routing_key(EXPORT_REQUESTED, source)],
              shovel_name(prefix, destination, source)),
    )  # fmt: skip


def obsolete_bindings(source: str, dst: Side, *, exchange: str = "iss", prefix: str = "iss") -> list[JSONObject]:
    """Bindings a link made by an older iss has on the destination's broker and this one no longer
    makes: the unaddressed export request (`rabbitmqadmin delete binding ...`, or the management
    API's DELETE /api/bindings/<vhost>/e/<exchange>/q/<link queue>/<routing key>)."""
    return [
        {
            "source": exchange,
            "vhost": dst.vhost,
            "destination": link_queue_name(prefix, source),
            "destination_type": "queue",
            "routing_key": UNADDRESSED_EXPORT_REQUESTED,
            "arguments": {},
        }
    ]


def _side(here: Side, there: Side, prefix: str, exchange: str, toward: str, keys: list[str], name: str) -> JSONObject:
    queue = link_queue_name(prefix, toward)
    return {
        "queues": [
            {
                "name": queue,
                "vhost": here.vhost,
                "durable": True,
                "auto_delete": False,
                "arguments": {"x-queue-type": "quorum"},
            }
        ],
        "bindings": [
            {
                "source": exchange,
                "vhost": here.vhost,
                "destination": queue,
                "destination_type": "queue",
                "routing_key": key,
                "arguments": {},
            }
            for key in keys
        ],
        "parameters": [
            {"component": "shovel", "vhost": here.vhost, "name": name, "value": shovel(here, there, queue, exchange)}
        ],
    }


def shovel(here: Side, there: Side, queue: str, exchange: str) -> JSONObject:
    """A dynamic shovel's value (`rabbitmqctl set_parameter -p VHOST shovel NAME '<json>'`)."""
    return {
        "src-protocol": "amqp091",
        "src-uri": here.uri,
        "src-queue": queue,
        "dest-protocol": "amqp091",
        "dest-uri": there.uri,
        "dest-exchange": exchange,  # no dest-exchange-key: the message keeps its routing key
        "ack-mode": "on-confirm",
        "src-delete-after": "never",
        "reconnect-delay": 1,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="RabbitMQ definitions (queues, bindings, shovels) for one iss link")
    p.add_argument("--source", required=True, help="source server id")
    p.add_argument("--destination", required=True, help="destination server id")
    p.add_argument("--source-uri", required=True, help="amqp:// URI of the source site's broker (with vhost)")
    p.add_argument("--destination-uri", required=True, help="amqp:// URI of the destination site's broker")
    p.add_argument("--source-vhost", default="/")
    p.add_argument("--destination-vhost", default="/")
    p.add_argument("--exchange", default="iss")
    p.add_argument("--prefix", default="iss")
    a = p.parse_args(argv)
    dst_side = Side(a.destination_uri, a.destination_vhost)
    src_defs, dst_defs = link_definitions(
        a.source,
        a.destination,
        Side(a.source_uri, a.source_vhost),
        dst_side,
        exchange=a.exchange,
        prefix=a.prefix,
    )
    obsolete = {
        "destination_broker": {"bindings": obsolete_bindings(a.source, dst_side, exchange=a.exchange, prefix=a.prefix)}
    }
    print(json.dumps({"source_broker": src_defs, "destination_broker": dst_defs, "delete": obsolete}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
