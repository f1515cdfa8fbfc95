"""A consumer in its own process for the kill -9 test: its handler announces the event and hangs,
so the process dies holding an unacked delivery."""

from __future__ import annotations

import sys
import time

from iss_plugin.adapters.bus import topology as T
from iss_plugin.adapters.bus.connection import make_kombu_connection
from iss_plugin.adapters.bus.consumer import EventConsumer
from iss_plugin.domain import events as E
from iss_plugin.settings import BusSettings


def main() -> None:
    url, exchange, prefix = sys.argv[1:4]
    bus = BusSettings(url=url, exchange=exchange, prefix=prefix, retry_delays_ms=(300, 600), max_attempts=3)
    topology = T.build(bus, export=True)

    def hang(event):
        print(f"HANDLING {event.id}", flush=True)
        time.sleep(3600)

    EventConsumer(
        make_kombu_connection(bus),
        topology,
        [T.export_queue_name(prefix)],
        {E.CONTENT_VIEW_PUBLISHED: hang},
        name="child",
    ).run()


if __name__ == "__main__":
    main()
