"""The part of kombu's API iss uses, as typed protocols.

kombu ships `py.typed` but leaves its signatures unannotated, so every call through its own classes
is an untyped call. These protocols say what iss relies on; kombu's objects satisfy them as they
are. Only the constructors (Connection, Producer, Exchange, Queue, binding) are called untyped."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

if TYPE_CHECKING:
    # What kombu's own annotations call a channel (Exchange/Queue binding); at run time it is the
    # channel of whichever transport the connection uses.
    from kombu.transport.virtual import Channel as Channel

# An AMQP field table as the client decoded it. The values are whatever the sender or the broker
# put there (strings or bytes, numbers, timestamps, nested tables such as x-death), so the code
# that reads one checks what it finds (policy.retries_done).
Headers: TypeAlias = Mapping[str, Any]


class ClosableChannel(Protocol):
    def close(self) -> None: ...


class BoundEntity(Protocol):
    """An exchange or a queue bound to a channel."""

    def declare(self) -> object: ...


class Entity(Protocol):
    """A kombu Exchange or Queue: a name, and bound to a channel by calling it."""

    @property
    def name(self) -> str: ...

    def __call__(self, channel: Channel) -> BoundEntity: ...


class Transport(Protocol):
    @property
    def driver_type(self) -> str: ...


class Connection(Protocol):
    """kombu.Connection."""

    @property
    def transport_cls(self) -> str | type: ...

    @property
    def transport(self) -> Transport: ...

    @property
    def connection_errors(self) -> tuple[type[BaseException], ...]: ...

    def channel(self) -> Channel: ...

    def ensure_connection(
        self,
        errback: Callable[[Exception, float], None] | None = None,
        max_retries: int | None = None,
        *,
        callback: Callable[[], None] | None = None,
    ) -> Connection: ...

    def heartbeat_check(self) -> None: ...

    def as_uri(self) -> str: ...

    def release(self) -> None: ...

    def __enter__(self) -> Connection: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class Producer(Protocol):
    """kombu.Producer: publish keeps kombu's message properties as keywords (headers, message_id, ...)."""

    @property
    def channel(self) -> ClosableChannel: ...

    def publish(
        self,
        body: bytes | str,
        routing_key: str | None = None,
        *,
        exchange: str | None = None,
        mandatory: bool = False,
        retry: bool = False,
        confirm_timeout: float | None = None,
        **properties: object,
    ) -> object: ...


class Message(Protocol):
    """kombu.Message, as a consumer receives it."""

    @property
    def headers(self) -> Headers | None: ...

    @property
    def body(self) -> bytes | str: ...

    @property
    def content_type(self) -> str | None: ...

    @property
    def content_encoding(self) -> str | None: ...

    @property
    def delivery_info(self) -> Mapping[str, object]: ...

    @property
    def properties(self) -> Mapping[str, object]: ...

    @property
    def delivery_tag(self) -> Any: ...  # an int on AMQP, a uuid string on kombu memory://

    def ack(self) -> None: ...

    def reject(self, requeue: bool = False) -> None: ...
