"""A destination that fails on its own (its content backend raises BackendError) answers
`destination_error` with the message, not a rule violation: the source records it, backs off like
after a refusal, keeps the bundle (nothing is wrong with it) and sends it again after the grace
time; once the destination's admin fixed it, the same bundle is imported.

Real RabbitMQ (the session's throwaway vhost, unique exchange and prefix), SQLite, every role of
both servers in this process (consumers.run.Runtime). The fault is real: a directory an admin left
where the local backend publishes the repository (it publishes only through its own symlink), so
the import fails before its commit."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from consumers.demo import CUSTOM_PRODUCT, ORG
from iss_plugin.adapters.bus.codec import envelope_problems
from iss_plugin.adapters.db import models as m
from iss_plugin.domain import events as ev
from iss_plugin.services import propagation

from .conftest import exports, imports, make_pair, outbox, publish, subscription, versions, wait_until

T = 60


@pytest.fixture
def rabbit_pair(tmp_path, rabbit_vhost):
    tag = uuid.uuid4().hex[:10]
    bus = {"url": rabbit_vhost, "exchange": f"d-{tag}", "prefix": f"d-{tag}", "retry_delays_ms": (100, 200)}
    pair = make_pair(tmp_path, bus | {"max_attempts": 3, "heartbeat": 10, "confirm_timeout": 10.0})
    try:
        yield pair
    finally:
        pair.close()


def block_publication(pair) -> object:
    """Debris where the destination's local backend publishes acme-tools/utils: it refuses to
    replace what it did not make (BackendError, not transient)."""
    debris = pair.dst.settings.published_path / ORG / CUSTOM_PRODUCT / "utils"
    debris.mkdir(parents=True)
    (debris / "left-by-hand.txt").write_text("an admin's copy\n")
    return debris


def test_a_destination_backend_failure_is_answered_as_destination_error_and_sent_again(rabbit_pair):
    pair = rabbit_pair
    src, dst = pair.src, pair.dst
    debris = block_publication(pair)
    pair.run(src, "relay", "export", "status")
    pair.run(dst, "relay", "import")

    publish(src)
    wait_until(lambda: (subscription(src).rejections or 0) == 1, T, "the source to record the failure")
    sub = subscription(src)
    assert sub.last_rejection.startswith("destination_error: cannot publish 'ACME/acme-tools/utils'")
    assert "not a publication made by iss" in sub.last_rejection
    assert sub.acknowledged is None and sub.in_flight == "1.0"
    assert versions(dst) == []  # nothing imported
    assert [(i.state, i.reason) for i in imports(dst)] == [("failed", "backend")]  # its own history says which
    [answer] = outbox(dst, ev.BUNDLE_REJECTED)
    assert envelope_problems(answer.body) == []  # the schema takes it
    assert answer.body["data"]["reason"] == "destination_error" and answer.body["data"]["has"] is None
    assert [e.state for e in exports(src)] == ["done"]  # the bundle is fine: kept, not retired

    # backs off as after a refusal; then sends the same bundle again
    ctx = src.source_context()
    assert propagation.reconcile(src.uow(), ctx) == []  # within the grace time
    wait_until(lambda: len(outbox(dst, ev.BUNDLE_REJECTED)) == 1, T, "nothing more")
    (debris / "left-by-hand.txt").unlink()
    debris.rmdir()  # the destination's admin moves it away
    again = propagation.reconcile(src.uow(), ctx, now=m.utcnow() + ctx.grace + timedelta(seconds=1))
    assert [b["version"] for b in again] == ["1.0"]
    wait_until(lambda: subscription(src).acknowledged == "1.0", T, "1.0 acknowledged")
    assert (subscription(src).rejections, subscription(src).last_rejection) == (0, None)
    assert versions(dst) == ["1.0"]
    assert len(exports(src)) == 1  # the bundle kept was sent again, not rebuilt
