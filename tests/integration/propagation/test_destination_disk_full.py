"""A destination whose disk is full tells the source (`destination_error`, the errno's words, the
path, what to do) instead of retrying and parking the bundle, changes nothing, and imports the same
bundle once there is room again; `iss content-import version` exits non-zero with that message.

The fault is real: the destination's content store is a small tmpfs mounted for the test and
filled to the last byte, so copying the first package into the store fails with ENOSPC. Needs
`mount` (root, as the tests run here); without it the tests skip (fail under CI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from consumers.demo import ORG
from iss_plugin.adapters.db import models as m
from iss_plugin.domain import events as ev
from iss_plugin.domain.versions import VersionNumber
from iss_plugin.services import exporting, propagation
from tests.integration.full_disk import FILLER, mount_full_tmpfs, unmount

from .conftest import imports, make_pair, outbox, publish, subscription, versions, wait_until

T = 60


def store_files(store: Path) -> list[str]:
    """Every file in the store but the filler."""
    return sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file() and p.name != FILLER)


def staging_left(app) -> list[str]:
    return [str(p) for p in app.settings.imports_path.rglob("*") if p.is_file()]


@pytest.fixture
def full_store_pair(tmp_path, rabbit_vhost):
    tag = uuid.uuid4().hex[:10]
    bus = {"url": rabbit_vhost, "exchange": f"f-{tag}", "prefix": f"f-{tag}", "retry_delays_ms": (100, 200)}
    store = tmp_path / "destination" / "store"
    try:
        mount_full_tmpfs(store)
        pair = make_pair(tmp_path, bus | {"max_attempts": 3, "heartbeat": 10, "confirm_timeout": 10.0})
        try:
            yield pair, store
        finally:
            pair.close()
    finally:
        unmount(store)


def test_a_full_destination_disk_is_answered_as_destination_error_and_imported_once_freed(full_store_pair):
    pair, store = full_store_pair
    src, dst = pair.src, pair.dst
    before = store_files(store)
    pair.run(src, "relay", "export", "status")
    importer = pair.run(dst, "relay", "import")

    publish(src)
    wait_until(lambda: (subscription(src).rejections or 0) == 1, T, "the source to record the failure")
    sub = subscription(src)
    assert sub.last_rejection.startswith("destination_error: importing into 'ACME/"), sub.last_rejection
    assert (
        f"' failed: No space left on device (ENOSPC) at {store}; nothing was changed; free space under {store}"
        in sub.last_rejection
    )
    assert "No space left on device (ENOSPC)" in sub.last_rejection
    assert f"free space under {store}" in sub.last_rejection
    assert sub.acknowledged is None and sub.in_flight == "1.0"
    # nothing changed: no version, no file in the store, no staging left
    assert versions(dst) == []
    assert store_files(store) == before
    assert staging_left(dst) == []
    assert [(i.state, i.reason) for i in imports(dst)] == [("failed", "backend")]
    [answer] = outbox(dst, ev.BUNDLE_REJECTED)
    assert answer.body["data"]["reason"] == "destination_error"
    assert "ENOSPC" in answer.body["data"]["message"]
    # answered once and acknowledged: not retried, not parked
    [worker] = importer.workers
    wait_until(lambda: worker.stats["acked"] >= 1, T, "the bundle.ready acked")
    assert (worker.stats["parked"], worker.stats["retried"]) == (0, 0)

    (store / FILLER).unlink()  # the destination's admin frees space
    ctx = src.source_context()
    again = propagation.reconcile(src.uow(), ctx, now=m.utcnow() + ctx.grace + timedelta(seconds=1))
    assert [b["version"] for b in again] == ["1.0"]
    wait_until(lambda: subscription(src).acknowledged == "1.0", T, "1.0 acknowledged")
    assert versions(dst) == ["1.0"]
    assert (subscription(src).rejections, subscription(src).last_rejection) == (0, None)


ISS = [sys.executable, "-c", "from iss_plugin.cli import main; main()"]


def iss(app, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {
        "ISS_DATA_DIR": str(app.settings.data_dir),
        "ISS_SERVER_ID": app.server_id,
        "PYTHONPATH": str(Path(__file__).resolve().parents[3]),
    }
    return subprocess.run([*ISS, *args], capture_output=True, text=True, env=env, timeout=120)


def test_content_import_on_a_full_disk_exits_non_zero_saying_so_and_imports_once_freed(tmp_path):
    from .conftest import memory_bus

    store = tmp_path / "destination" / "store"
    pair = None
    try:
        mount_full_tmpfs(store)
        pair = make_pair(tmp_path, memory_bus(), subscribe=False)
        src, dst = pair.src, pair.dst
        publish(src)
        bundle = exporting.export_bundle(
            src.uow(),
            exporting.ExportRequest(ORG, "content_view_version", False, "base", VersionNumber.parse("1.0")),
            out_dir=tmp_path / "bundles",
            signer=src.signer,
            server_id=src.server_id,
            actor="test",
        )["path"]
        before = store_files(store)
        args = ("--output", "json", "content-import", "version", "--organization", ORG, "--path", bundle)

        done = iss(dst, *args)
        assert done.returncode == 1, done.stdout + done.stderr
        answer = json.loads(done.stdout or done.stderr)
        assert answer["reason"] == "destination_error" and answer["error"] == "BackendError"
        assert "No space left on device (ENOSPC)" in answer["message"]
        assert f"free space under {store}" in answer["message"]
        assert versions(dst) == []
        assert store_files(store) == before
        assert staging_left(dst) == []
        assert [(i.state, i.reason) for i in imports(dst)] == [("failed", "backend")]

        (store / FILLER).unlink()
        done = iss(dst, *args)
        assert done.returncode == 0, done.stdout + done.stderr
        assert versions(dst) == ["1.0"]
    finally:
        if pair is not None:
            pair.close()
        unmount(store)
