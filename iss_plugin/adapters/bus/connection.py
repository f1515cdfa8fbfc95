"""kombu connections as iss wants them: heartbeats on, publisher confirms on AMQP, fast polling in memory."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from iss_plugin.settings import BusSettings

    from .kombu_types import Connection

AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")


def is_amqp(url: str) -> bool:
    return urlsplit(url).scheme in AMQP_SCHEMES


def is_memory_url(url: str) -> bool:
    return urlsplit(url).scheme == "memory"


def without_password(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


def make_kombu_connection(bus: BusSettings, *, url: str | None = None) -> Connection:
    """A kombu Connection for settings.bus (not connected yet).

    AMQP: heartbeat=settings.bus.heartbeat, every channel in confirm mode (a publish returns once
    the broker confirmed it, or raises). memory://: polled every 10 ms (one process only)."""
    from kombu.connection import Connection as KombuConnection

    url = url or bus.url
    options: dict[str, object] = {}
    if is_amqp(url):
        options = {"heartbeat": bus.heartbeat, "connect_timeout": 10, "transport_options": {"confirm_publish": True}}
    elif is_memory_url(url):
        options = {"transport_options": {"polling_interval": 0.01}}
    connection: Connection = KombuConnection(url, **options)  # type: ignore[no-untyped-call]  # kombu's constructors are unannotated
    return connection
