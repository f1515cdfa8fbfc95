"""The one ack policy of every iss consumer, as a pure decision (no I/O, unit-tested).

    decoded, valid, handler returned      -> ACK (after the handler's commit)
    body not UTF-8 JSON object            -> PARK reason "decode"      (never acked silently)
    envelope/data breaks its schema       -> PARK reason "schema"
    no handler for the event type         -> PARK reason "unhandled"
    IssError with transient=False         -> PARK reason = error.reason (rule_violation, integrity, ...)
    IssError(transient=True), connection
    or database operational errors, and
    any unexpected exception              -> RETRY after retry_delays_ms[attempt-1] (last repeats),
                                             PARK reason "max_attempts" once max_attempts are used

Attempts are counted from the broker's x-death entries of this queue's retry queues (reason
"expired"), never from x-delivery-count (that one counts requeues only). A consumer crash
(redelivery) is not an attempt; quorum x-delivery-limit parks a message that keeps killing
consumers. On memory:// (no dead-lettering) the consumer keeps the count in `x-iss-retries`;
the larger of the two counts wins, so either transport gives the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from iss_plugin.domain.errors import IssError

if TYPE_CHECKING:
    from .kombu_types import Headers

RETRIES_HEADER = "x-iss-retries"
PARK_REASON_HEADER = "x-iss-park-reason"
ERROR_HEADER = "x-iss-error"
ATTEMPTS_HEADER = "x-iss-attempts"
ROUTING_KEY_HEADER = "x-iss-routing-key"
QUEUE_HEADER = "x-iss-queue"
PARKED_AT_HEADER = "x-iss-parked-at"
CONSUMER_HEADER = "x-iss-consumer"

DECODE, SCHEMA, UNHANDLED, MAX_ATTEMPTS = "decode", "schema", "unhandled", "max_attempts"


class Action(Enum):
    ACK = "ack"
    RETRY = "retry"
    PARK = "park"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str | None = None  # park reason
    error: str | None = None  # one line for x-iss-error
    delay_ms: int | None = None  # retry delay
    attempt: int = 1  # the attempt that just ended (1-based)


def retries_done(headers: Headers | None, retry_queue_prefix: str) -> int:
    """How many retries this message already went through (x-death of our retry queues, or our header)."""
    headers = headers or {}
    from_broker = 0
    for entry in headers.get("x-death") or ():
        try:
            queue = entry.get("queue") or ""
            if isinstance(queue, bytes):
                queue = queue.decode()
            reason = entry.get("reason")
            if isinstance(reason, bytes):
                reason = reason.decode()
            if reason == "expired" and queue.startswith(retry_queue_prefix):
                from_broker += int(entry.get("count") or 0)
        except (AttributeError, TypeError, ValueError):
            continue
    try:
        ours = int(headers.get(RETRIES_HEADER) or 0)
    except (TypeError, ValueError):
        ours = 0
    return max(from_broker, ours)


def is_transient(exc: BaseException) -> bool:
    """Could the same message succeed later? Permanent only for IssError(transient=False)."""
    if isinstance(exc, IssError):
        return bool(exc.transient)
    return True


def describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\r", " ").replace("\n", " | ")
    return text[:1000]


def on_invalid(reason: str, error: str, attempt: int = 1) -> Decision:
    return Decision(Action.PARK, reason=reason, error=error[:1000], attempt=attempt)


def on_success(attempt: int = 1) -> Decision:
    return Decision(Action.ACK, attempt=attempt)


def on_error(exc: BaseException, attempt: int, *, retry_delays_ms: tuple[int, ...], max_attempts: int) -> Decision:
    """What to do with a message whose handler raised `exc` on attempt `attempt` (1-based)."""
    if not is_transient(exc):
        reason = getattr(exc, "reason", None) or "error"
        return Decision(Action.PARK, reason=reason, error=describe(exc), attempt=attempt)
    if attempt >= max_attempts:
        return Decision(Action.PARK, reason=MAX_ATTEMPTS, error=describe(exc), attempt=attempt)
    delays = tuple(retry_delays_ms) or (1000,)
    return Decision(Action.RETRY, error=describe(exc), delay_ms=delays[min(attempt, len(delays)) - 1], attempt=attempt)
