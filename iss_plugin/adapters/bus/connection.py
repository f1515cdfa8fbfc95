"""kombu connections as iss wants them: heartbeats on, publisher confirms on AMQP, fast polling in memory."""

from __future__ import annotations

from urllib.parse import urlsplit

AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")


def is_amqp(url: str) -> bool:
    return urlsplit(url).scheme in AMQP_SCHEMES


def is_memory_url(url: str) -> bool:
    return urlsplit(url).scheme == "memory"


def make_kombu_connection(bus, *, url: str | None = None):
    """A kombu Connection for settings.bus (not connected yet).

    AMQP: heartbeat=settings.bus.heartbeat, every channel in confirm mode (a publish returns once
    the broker confirmed it, or raises). memory://: polled every 10 ms (one process only)."""
    from kombu import Connection

    url = url or bus.url
    if is_amqp(url):
        return Connection(url, heartbeat=bus.heartbeat, connect_timeout=10, transport_options={"confirm_publish": True})
    if is_memory_url(url):
        return Connection(url, transport_options={"polling_interval": 0.01})
    return Connection(url)
