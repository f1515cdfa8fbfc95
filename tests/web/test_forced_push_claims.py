"""A forced send (iss.export.requested.v1: the destination asks for a bundle whatever is in flight)
pushes at most once per subscription for one request, even when two workers handle that request
at once (a redelivery after a lost ack, two export workers): the second finds the first one's
claim of that request committed with its in-flight marker and skips it, on SQLite as on
PostgreSQL. A new request (another event id) afterwards is pushed again: that is what force means.
A forced push that fails releases its claim with its marker, so the request's redelivery pushes.
Same servers as tests/web/test_push_claims.py: real uvicorn destinations counting their pushes,
the requesting one slow (its first push read only once the other worker is done)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select, update

from consumers.demo import ORG
from iss_plugin.adapters.db import models as m
from iss_plugin.bootstrap import App
from iss_plugin.domain import events as ev
from iss_plugin.domain.errors import TransientError
from iss_plugin.domain.jsontypes import JSONObject
from iss_plugin.services import propagation
from tests.conftest import closed_port
from tests.integration.propagation.conftest import CV, outbox, publish, wait_until
from tests.web.test_push_claims import T, _in_own_process_state, fan_out  # noqa: F401 - the fixture


def _export_request(src: App, dst: App) -> JSONObject:
    """`dst` asks `src` for the content view in full (it lost what it had), a new event id each call."""
    data = ev.export_requested(
        organization=ORG,
        destination=dst.server_id,
        reason="manual",
        content_view=CV,
        kind="full",
        source_server=src.server_id,
    )
    return ev.make_envelope(ev.EXPORT_REQUESTED, dst.server_id, data)


def _handling(event: JSONObject) -> Any:
    return lambda app: propagation.on_export_requested(app.uow(), event, app.source_context())


def _answers_to(src: App, dst: App) -> int:
    return sum(a.body["data"]["destination"] == dst.server_id for a in outbox(src, ev.BUNDLE_IMPORTED))


@pytest.mark.parametrize("second_starts", ["during_the_push", "with_the_first"])
def test_one_export_request_handled_by_two_workers_at_once_is_pushed_once(fan_out, second_starts):  # noqa: F811 - the fixture imported above
    """during_the_push: the other worker reads while no lock is held; with_the_first: either may wait
    for the other's lock (PostgreSQL row lock, SQLite write lock) or find its claim committed."""
    src, dsts, served, done = fan_out
    publish(src)
    event = _export_request(src, dsts[0])  # the slow destination asks
    first = _in_own_process_state(src, done, _handling(event))
    second = _in_own_process_state(src, done, _handling(event))
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(first)
        if second_starts == "during_the_push":
            wait_until(served[0].received.is_set, T, "the first push to reach the requesting destination")
        b = pool.submit(second)  # the same event
        outcomes = [f.exception(2 * T) or f.result() for f in (a, b)]

    assert [s.pushes for s in served] == [1, 0, 0], f"pushes received per destination; the workers: {outcomes}"
    assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
    assert sorted(len(o) for o in outcomes) == [0, 1], outcomes
    assert _answers_to(src, dsts[0]) == 1

    again = _export_request(src, dsts[0])  # a new request, once the first is done: sent again
    assert [b["destination"] for b in _handling(again)(src)] == [dsts[0].server_id]
    assert [s.pushes for s in served] == [2, 0, 0]
    assert _answers_to(src, dsts[0]) == 2


def test_a_forced_push_that_fails_is_pushed_when_its_request_is_redelivered(fan_out):  # noqa: F811 - the fixture imported above
    src, dsts, served, done = fan_out
    done.set()  # nothing to wait for
    publish(src)
    with src.session_factory() as s, s.begin():
        s.execute(
            update(m.Destination)
            .where(m.Destination.server_id == dsts[0].server_id)
            .values(url=f"http://127.0.0.1:{closed_port()}")
        )
    event = _export_request(src, dsts[0])
    with pytest.raises(TransientError):
        _handling(event)(src)
    assert served[0].pushes == 0
    with src.session_factory() as s, s.begin():
        s.execute(update(m.Destination).where(m.Destination.server_id == dsts[0].server_id).values(url=served[0].url))
        [sub] = [x for x in s.scalars(select(m.Subscription)) if x.destination.server_id == dsts[0].server_id]
        assert sub.in_flight is None

    assert [b["destination"] for b in _handling(event)(src)] == [dsts[0].server_id]  # the redelivery
    assert [s.pushes for s in served] == [1, 0, 0]
    assert _handling(event)(src) == []  # processed now
    assert [s.pushes for s in served] == [1, 0, 0]
