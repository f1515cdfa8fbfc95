"""web/throttle.py with a fake clock: the sliding window, Retry-After, reset, the bound on keys."""

from __future__ import annotations

from iss_plugin.web.throttle import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_window_slides_and_retry_after_counts_down():
    clock = Clock()
    t = LoginThrottle(3, 10, 60, clock=clock)
    for _ in range(3):
        assert t.refusal("alice", "a") is None
        started = t.failed("alice", "a")
        clock.now += 10
    assert started is not None and started.kind == "login"
    refused = t.refusal("alice", "a")
    assert refused is not None and refused.retry_after == 30  # first failure at 1000, now 1030, window 60
    clock.now += 30  # the first failure leaves the window: two remain, below the limit
    assert t.refusal("alice", "a") is None
    assert t.failed("alice", "a") is not None  # a third in the window again


def test_success_clears_the_login_not_the_address():
    t = LoginThrottle(2, 2, 60, clock=Clock())
    t.failed("alice", "a")
    t.succeeded("alice")
    assert t.failed("alice", "a") is not None  # address a has 2 failures now
    refused = t.refusal("bob", "a")
    assert refused is not None and refused.kind == "address"
    assert t.refusal("bob", "b") is None


def test_keys_are_bounded():
    t = LoginThrottle(1, 0, 60, clock=Clock(), max_keys=100)
    for n in range(1000):
        t.failed(f"user{n}", None)
    assert len(t.logins.failures) == 100 and len(t.addresses.failures) == 0
    assert t.refusal("user999", None) is not None and t.refusal("user0", None) is None
