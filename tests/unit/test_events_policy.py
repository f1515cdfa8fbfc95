"""The consumer's ack policy, decided without a broker."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

from iss_plugin.adapters.bus import policy
from iss_plugin.adapters.bus.policy import Action
from iss_plugin.domain.errors import BackendError, BaseMismatch, BundleIntegrityError, TransientError

DELAYS = (1000, 5000, 30000)


def decide(exc, attempt, max_attempts=5):
    return policy.on_error(exc, attempt, retry_delays_ms=DELAYS, max_attempts=max_attempts)


def test_permanent_iss_errors_park_at_once_with_their_reason():
    for exc, reason in (
        (BundleIntegrityError("bad sha256"), "integrity"),
        (BaseMismatch("no base"), "base_mismatch"),
        (BackendError("gone", transient=False), "backend"),
    ):
        d = decide(exc, 1)
        assert (d.action, d.reason) == (Action.PARK, reason)
        assert type(exc).__name__ in d.error


def test_transient_errors_retry_with_growing_delays_then_park():
    assert [decide(TransientError("x"), n).delay_ms for n in (1, 2, 3, 4)] == [1000, 5000, 30000, 30000]
    assert all(decide(TransientError("x"), n).action is Action.RETRY for n in (1, 2, 3, 4))
    last = decide(TransientError("x"), 5)
    assert (last.action, last.reason, last.attempt) == (Action.PARK, "max_attempts", 5)


def test_database_and_unexpected_errors_are_retried():
    assert decide(OperationalError("SELECT 1", {}, Exception("database is locked")), 1).action is Action.RETRY
    assert decide(BackendError("timeout", transient=True), 1).action is Action.RETRY
    assert decide(KeyError("bug"), 1).action is Action.RETRY
    assert decide(KeyError("bug"), 5).reason == "max_attempts"


def test_attempts_come_from_x_death_of_our_retry_queues_only():
    headers = {
        "x-delivery-count": 7,  # requeues: not attempts
        "x-death": [
            {"queue": "iss.export.retry.5000ms", "reason": "expired", "count": 1},
            {"queue": "iss.export.retry.1000ms", "reason": "expired", "count": 1},
            {"queue": "iss.export", "reason": "delivery_limit", "count": 1},
            {"queue": "other.retry.1000ms", "reason": "expired", "count": 9},
        ],
    }
    assert policy.retries_done(headers, "iss.export.retry.") == 2
    assert policy.retries_done({}, "iss.export.retry.") == 0
    assert policy.retries_done(None, "iss.export.retry.") == 0
    assert policy.retries_done({policy.RETRIES_HEADER: 3}, "iss.export.retry.") == 3  # memory://
    assert policy.retries_done({"x-death": "garbage"}, "q.retry.") == 0


def test_errors_are_one_line_and_bounded():
    d = decide(BundleIntegrityError("a\nb" + "x" * 5000), 1)
    assert "\n" not in d.error and len(d.error) <= 1000
