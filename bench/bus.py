"""Bus benchmark: relay throughput against raw pika streaming confirms, and consume rates.

    .venv/bin/python bench/bus.py [--messages 20000] [--url amqp://guest:guest@127.0.0.1:5672/]

Needs RabbitMQ. With `rabbitmqctl` at hand it works in a throwaway vhost (deleted at the end);
otherwise in the URL's vhost with unique names that it deletes. Prints side-by-side numbers and
ratios measured in the same run; not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pika
from kombu import Queue

from iss_plugin.adapters.bus import topology as T
from iss_plugin.adapters.bus.codec import CONTENT_TYPE
from iss_plugin.adapters.bus.connection import make_kombu_connection
from iss_plugin.adapters.bus.consumer import EventConsumer
from iss_plugin.adapters.bus.publisher import make_publisher
from iss_plugin.adapters.bus.relay import OutboxRelay
from iss_plugin.adapters.db import migrate
from iss_plugin.adapters.db.engine import make_engine, make_session_factory
from iss_plugin.adapters.db.models import OutboxEvent
from iss_plugin.domain import events as E
from iss_plugin.settings import BusSettings


def envelope(i: int) -> dict:
    data = E.content_view_published(
        organization="ACME", content_view="base", version=f"{i}.0", description="x" * 700, blessed=True
    )
    return E.make_envelope(E.CONTENT_VIEW_PUBLISHED, "urn:iss:server:bench", data)


def raw_pika_streaming(url: str, exchange: str, bodies: list[bytes], routing_key: str) -> float:
    """Publish every body with streaming confirms on a SelectConnection; seconds until all acked."""
    state = {"acked": 0, "start": 0.0, "end": 0.0}
    n = len(bodies)

    def on_confirm(frame):
        m = frame.method
        if m.NAME != "Basic.Ack":
            raise RuntimeError("nack in raw benchmark")
        state["acked"] = m.delivery_tag if m.multiple else state["acked"] + 1
        if state["acked"] >= n:
            state["end"] = time.perf_counter()
            conn.close()

    def on_confirm_ok(_frame):
        # the same properties as the relay's messages, so the ratio measures the relay's own cost
        state["start"] = time.perf_counter()
        stamp = int(time.time())
        for _i, b in enumerate(bodies):
            props = pika.BasicProperties(
                content_type=CONTENT_TYPE,
                content_encoding="utf-8",
                delivery_mode=2,
                message_id=str(uuid.uuid4()),
                type=E.CONTENT_VIEW_PUBLISHED,
                timestamp=stamp,
            )
            channel.basic_publish(exchange, routing_key, b, props, mandatory=True)

    def on_channel(ch):
        nonlocal channel
        channel = ch
        ch.confirm_delivery(ack_nack_callback=on_confirm, callback=on_confirm_ok)

    channel = None
    conn = pika.SelectConnection(
        pika.URLParameters(url),
        on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
        on_close_callback=lambda c, r: c.ioloop.stop(),
    )
    conn.ioloop.start()
    return state["end"] - state["start"]


def fill_outbox(session_factory, n: int) -> None:
    with session_factory() as s:
        for i in range(n):
            env = envelope(i)
            s.add(OutboxEvent(event_id=env["id"], type=env["type"], routing_key=E.routing_key(env["type"]), body=env))
        s.commit()


def purge(bus, name: str) -> None:
    with make_kombu_connection(bus) as c:
        Queue(name)(c.channel()).purge()


def consume_rate(bus, top, queue: str, n: int, prefetch: int, validate: bool) -> float:
    done = threading.Event()
    count = [0]

    def handler(_event):
        count[0] += 1
        if count[0] >= n:
            done.set()

    consumer = EventConsumer(
        make_kombu_connection(bus),
        top,
        [queue],
        {E.CONTENT_VIEW_PUBLISHED: handler},
        name="bench",
        prefetch=prefetch,
        validate=validate,
    )
    t0 = time.perf_counter()
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    done.wait(300)
    elapsed = time.perf_counter() - t0
    consumer.should_stop = True
    thread.join(10)
    return count[0] / elapsed


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--consume", type=int, default=5000, help="messages per consume run")
    ap.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    tag = uuid.uuid4().hex[:8]
    vhost = f"iss-bench-{tag}"
    base = args.url.rstrip("/")
    made_vhost = subprocess.run(["rabbitmqctl", "add_vhost", vhost], capture_output=True).returncode == 0
    if made_vhost:
        subprocess.run(
            ["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], capture_output=True, check=True
        )
        url = base.rsplit("/", 1)[0] + "/" + vhost if base.count("/") > 2 else base + "/" + vhost
    else:
        url = args.url
    bus = BusSettings(url=url, exchange=f"bench-{tag}", prefix=f"bench-{tag}")
    top = T.build(bus, export=True)
    queue = T.export_queue_name(bus.prefix)
    results = {}
    try:
        with make_kombu_connection(bus) as c:
            T.declare(c, top)
        bodies = [json.dumps(envelope(i), separators=(",", ":")).encode() for i in range(args.messages)]
        rk = E.routing_key(E.CONTENT_VIEW_PUBLISHED)
        print(f"{args.messages} messages of {len(bodies[0])} bytes, persistent, quorum queue, same broker, same run")

        with tempfile.TemporaryDirectory() as tmp:
            db = f"sqlite:///{tmp}/bench.db"
            migrate.upgrade(db)
            engine = make_engine(db)
            factory = make_session_factory(engine)
            rates = {"raw": [], "relay": []}
            for _round in range(args.rounds):  # alternate, so both see the same broker and machine load
                purge(bus, queue)
                secs = raw_pika_streaming(url, bus.exchange, bodies, rk)
                rates["raw"].append(args.messages / secs)
                purge(bus, queue)
                fill_outbox(factory, args.messages)
                relay = OutboxRelay(factory, make_publisher(bus), batch_size=args.batch)
                t0 = time.perf_counter()
                r = relay.run_once()
                secs = time.perf_counter() - t0
                relay.close()
                assert r.published == args.messages, r
                rates["relay"].append(args.messages / secs)
            engine.dispose()
        ratios = sorted(r / w for r, w in zip(rates["relay"], rates["raw"], strict=False))
        raw, rel = statistics.median(rates["raw"]), statistics.median(rates["relay"])
        ratio = statistics.median(ratios)
        results["raw_pika_streaming_msgs"] = round(raw)
        results["relay_sqlite_msgs"] = round(rel)
        results["relay_vs_raw"] = round(ratio, 2)
        print(
            f"raw pika streaming confirms : {raw:9.0f} msg/s median (runs: {', '.join(f'{x:.0f}' for x in rates['raw'])})"
        )
        print(
            f"outbox relay (SQLite)       : {rel:9.0f} msg/s median (runs: {', '.join(f'{x:.0f}' for x in rates['relay'])})"
        )
        print(
            f"relay / raw, per round      : {', '.join(f'{x:.2f}' for x in ratios)}; median {ratio:.2f}x (goal >= 0.7x)"
        )

        n = min(args.consume, args.messages)
        for prefetch, validate in ((1, True), (4, True), (100, True), (100, False)):
            purge(bus, queue)
            with make_kombu_connection(bus) as c:
                from kombu import Producer

                p = Producer(c.channel())
                for b in bodies[:n]:
                    p.publish(
                        b,
                        exchange=bus.exchange,
                        routing_key=rk,
                        content_type=CONTENT_TYPE,
                        content_encoding="utf-8",
                        retry=False,
                    )
            rate = consume_rate(bus, top, queue, n, prefetch, validate)
            key = f"consume_prefetch_{prefetch}{'' if validate else '_novalidate'}"
            results[key] = round(rate)
            print(
                f"consume, prefetch {prefetch:3d}, schema validation {'on ' if validate else 'off'}: {rate:8.0f} msg/s"
            )
    finally:
        if made_vhost:
            subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
