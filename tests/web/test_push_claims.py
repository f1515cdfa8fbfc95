"""One push per subscription and version, whatever else runs beside the worker: a content view
version published to N online destinations is handled by two source processes at once (two export
workers given the same event, as after a redelivery; or an export worker and reconcile), each with
its own engine and sessions; every destination, a real uvicorn on loopback that counts the pushes it
receives, receives exactly one. The first destination is slow: it reads its push only once the other
worker is done, so the other worker runs while the first push is in progress (no transaction, and
on PostgreSQL no row lock, is held by the first worker then). On SQLite as on PostgreSQL: a worker
must not act on what it read before its own earlier commit."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import select

from consumers.demo import ORG, make_server, prepare_destination, prepare_source
from iss_plugin.adapters.bundles import push
from iss_plugin.adapters.db import models as m
from iss_plugin.bootstrap import App
from iss_plugin.services import propagation, subscriptions
from iss_plugin.web.app import create_app
from tests.conftest import closed_port
from tests.integration.propagation.conftest import ACTOR, CV, memory_bus, outbox, publish, versions, wait_until
from tests.web.test_bus_over_http import Served

N = 3  # online destinations subscribed to the content view
T = 60


class CountingDestination:
    """A destination's app served by uvicorn on loopback, counting the pushes it receives. `hold`:
    the first push waits (before the destination reads a byte of it) until the event is set; any
    later one does not, so a test of code that pushes twice fails at once instead of timing out."""

    def __init__(self, app: App, hold: threading.Event | None = None) -> None:
        self.port = closed_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.pushes = 0
        self.received = threading.Event()
        self._lock = threading.Lock()
        inner = create_app(app)

        async def counting(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == push.PUSH_PATH:
                with self._lock:
                    self.pushes += 1
                    first = self.pushes == 1
                self.received.set()
                if hold is not None and first:
                    await anyio.to_thread.run_sync(hold.wait, T)
            await inner(scope, receive, send)

        self.served = Served(app, self.port, asgi=counting)

    def __enter__(self) -> CountingDestination:
        self.served.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.served.__exit__(*exc)


@pytest.fixture
def fan_out(tmp_path: Path, database_url: str):
    """(source, [destination apps], [their counting servers], the worker-done event): N online
    destinations subscribed to the content view, the first one slow (held until `done` is set)."""
    src = make_server(tmp_path, "source", bus=memory_bus(), database_url=database_url)
    prepare_source(src, tmp_path / "rpms", 3, ACTOR)
    done = threading.Event()
    dsts: list[App] = []
    served: list[CountingDestination] = []
    try:
        for i in range(N):
            dst = make_server(tmp_path, f"destination-{i}", bus=memory_bus())
            dsts.append(dst)
            prepare_destination(dst, src, tmp_path, ACTOR)
            counting = CountingDestination(dst, hold=done if i == 0 else None).__enter__()
            served.append(counting)
            subscriptions.add_destination(
                src.uow(), f"dst-{i}", dst.server_id, dst.signer.public_pem, ACTOR, url=counting.url
            )
            subscriptions.subscribe(src.uow(), f"dst-{i}", ORG, CV, None, ACTOR)
        yield src, dsts, served, done
    finally:
        done.set()
        for s in served:
            s.__exit__()
        for d in dsts:
            d.close()
        src.close()


def _in_own_process_state(src: App, done: threading.Event, work: Callable[[App], Any]) -> Callable[[], Any]:
    """`work` run as another worker would: its own App (engine, sessions) over the source's settings;
    `done` set when it returns or raises (the slow destination then reads its push)."""

    def run() -> Any:
        app = App(src.settings)
        try:
            return work(app)
        finally:
            app.close()
            done.set()

    return run


def _published(app: App) -> Any:
    [event] = outbox(app, "iss.content_view.published.v1")
    return propagation.on_content_view_published(app.uow(), event.body, app.source_context())


def _reconcile(app: App) -> Any:
    return propagation.reconcile(app.uow(), app.source_context())


@pytest.mark.parametrize("other", ["redelivered", "reconcile"])
def test_each_online_destination_receives_one_push_of_a_version_two_workers_fan_out(fan_out, other):
    src, dsts, served, done = fan_out
    publish(src)
    first = _in_own_process_state(src, done, _published)
    second = _in_own_process_state(src, done, _published if other == "redelivered" else _reconcile)
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(first)
        if other == "reconcile":  # reconcile finds nothing locked only once the first push is under way
            wait_until(served[0].received.is_set, T, "the first push to reach the slow destination")
        b = pool.submit(second)
        outcomes = [f.exception(2 * T) or f.result() for f in (a, b)]

    assert [s.pushes for s in served] == [1] * N, f"pushes received per destination; the workers: {outcomes}"
    assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
    assert [versions(d) for d in dsts] == [["1.0"]] * N
    answers = outbox(src, "iss.bundle.imported.v1")
    assert sorted(a.body["data"]["destination"] for a in answers) == sorted(d.server_id for d in dsts)
    assert sorted(b["destination"] for o in outcomes for b in o) == sorted(d.server_id for d in dsts)
    with src.session_factory() as s:
        assert [x.in_flight for x in s.scalars(select(m.Subscription).order_by(m.Subscription.id))] == ["1.0"] * N
