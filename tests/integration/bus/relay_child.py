"""A relay in its own process for the kill -9 test: after the broker confirmed a batch and before
the rows are marked sent, it prints CONFIRMED and waits to be killed."""

from __future__ import annotations

import sys
import time

from iss_plugin.adapters.bus.publisher import make_publisher
from iss_plugin.adapters.bus.relay import OutboxRelay
from iss_plugin.adapters.db.engine import make_engine, make_session_factory
from iss_plugin.settings import BusSettings


def main() -> None:
    db_url, bus_url, exchange = sys.argv[1:4]
    bus = BusSettings(url=bus_url, exchange=exchange, prefix=exchange)

    def stall(ids):
        print(f"CONFIRMED {len(ids)}", flush=True)
        time.sleep(3600)

    relay = OutboxRelay(make_session_factory(make_engine(db_url)), make_publisher(bus), on_confirmed=stall)
    relay.run_once()


if __name__ == "__main__":
    main()
