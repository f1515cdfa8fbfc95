"""Push onto a destination whose disk is full: the destination extracts the pushed stream in its
content store (a real, full tmpfs: tests/integration/full_disk.py), fails with ENOSPC, answers
destination_error with the errno's words, the path and what to do, and changes nothing; once there
is room the same version is pushed again and imported."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from consumers.demo import ORG, make_server, prepare_destination, prepare_source
from iss_plugin.adapters.db import models as m
from iss_plugin.services import propagation, subscriptions
from tests.conftest import closed_port
from tests.integration.full_disk import FILLER, mount_full_tmpfs, unmount
from tests.integration.propagation.conftest import (
    ACTOR,
    CV,
    memory_bus,
    publish,
    subscription,
    versions,
    wait_until,
)
from tests.web.test_bus_over_http import Served
from tests.web.test_push import start_source


@pytest.fixture
def online_full(tmp_path):
    store = tmp_path / "destination" / "store"
    port = closed_port()
    runtimes: list = []
    apps: list = []
    try:
        mount_full_tmpfs(store)
        src = make_server(tmp_path, "source", bus=memory_bus())
        apps.append(src)
        dst = make_server(tmp_path, "destination", bus=memory_bus())
        apps.append(dst)
        prepare_source(src, tmp_path / "rpms", 3, ACTOR)
        prepare_destination(dst, src, tmp_path, ACTOR)
        url = f"http://127.0.0.1:{port}"
        subscriptions.add_destination(src.uow(), "dst", dst.server_id, dst.signer.public_pem, ACTOR, url=url)
        subscriptions.subscribe(src.uow(), "dst", ORG, CV, None, ACTOR)
        with Served(dst, port):
            yield src, dst, store, runtimes
    finally:
        for r in runtimes:
            r.shutdown()
        for a in apps:
            a.close()
        unmount(store)


def test_a_push_onto_a_full_disk_answers_destination_error_and_is_imported_once_freed(online_full):
    src, dst, store, runtimes = online_full
    before = sorted(p for p in store.rglob("*") if p.is_file())
    start_source(src, runtimes)
    publish(src)
    wait_until(lambda: (subscription(src).rejections or 0) >= 1, 60, "the failure recorded on the source")
    sub = subscription(src)
    assert sub.acknowledged is None and sub.last_rejection.startswith("destination_error: extracting "), (
        sub.last_rejection
    )
    assert "No space left on device (ENOSPC)" in sub.last_rejection
    assert f"free space under {store}" in sub.last_rejection
    assert versions(dst) == []
    assert sorted(p for p in store.rglob("*") if p.is_file()) == before  # nothing half-extracted left
    with dst.session_factory() as s:
        assert s.scalars(select(m.ImportRecord.reason)).all() == ["backend"]

    (store / FILLER).unlink()
    ctx = src.source_context()
    propagation.reconcile(src.uow(), ctx, now=m.utcnow() + ctx.grace + timedelta(seconds=1))
    wait_until(lambda: subscription(src).acknowledged == "1.0", 60, "1.0 acknowledged")
    assert versions(dst) == ["1.0"]
