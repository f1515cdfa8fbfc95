"""A push that fails part-way leaves the subscription re-sendable: an online destination answering
5xx, or one that stops reading mid-body until the source's push times out, changes nothing on the
source (nothing in flight, no answer recorded, no bundle file) and reconcile pushes it again once
the destination is back; a failed push of the NEXT bundle does not undo the acknowledgement the
status consumer is recording. The source's database stays writable while a push waits for the
destination. Real uvicorn on loopback: in this process, or `iss serve` in its own
process (frozen by a fail point, then killed)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from consumers.demo import CUSTOM_PRODUCT, ORG, change_source, make_server, prepare_destination, prepare_source
from iss_plugin.adapters.bundles import push
from iss_plugin.bootstrap import App
from iss_plugin.failpoints import ENV_FILE, ENV_NAME
from iss_plugin.services import catalog, propagation, subscriptions
from tests.conftest import closed_port
from tests.integration.propagation.conftest import (
    ACTOR,
    CV,
    imports,
    memory_bus,
    outbox,
    publish,
    subscription,
    versions,
    wait_until,
)
from tests.web.test_bus_over_http import Served

ROOT = Path(__file__).resolve().parents[2]
ISS = [sys.executable, "-c", "from iss_plugin.cli import main; main()"]
UTILS = f"{CUSTOM_PRODUCT}/utils"
T = 60


def digest(app: App) -> str | None:
    try:
        return catalog.repository_info(app.uow(), ORG, UTILS)["package_set_digest"]
    except Exception:  # not there (yet)
        return None


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


def nothing_changed_on_the_source(src: App) -> None:
    sub = subscription(src)
    assert sub.in_flight is None and sub.in_flight_since is None and sub.rejections == 0
    assert outbox(src, "iss.bundle.imported.v1") == [] and outbox(src, "iss.bundle.rejected.v1") == []
    assert files_under(src.settings.exports_path) == []


class BrokenImports:
    """The destination's imports directory replaced by a file: its push endpoint fails with a 500."""

    def __init__(self, app: App) -> None:
        self.path = app.settings.imports_path

    def __enter__(self) -> BrokenImports:
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.write_text("not a directory\n")
        return self

    def __exit__(self, *exc: object) -> None:
        self.path.unlink()
        self.path.mkdir(parents=True)


@pytest.fixture
def pair(tmp_path, database_url):
    """(source, destination); the source's database on SQLite and on PostgreSQL (the failed push
    puts its in-flight marker back under a row lock)."""
    src = make_server(tmp_path, "source", bus=memory_bus(), database_url=database_url)
    dst = make_server(tmp_path, "destination", bus=memory_bus())
    prepare_source(src, tmp_path / "rpms", 3, ACTOR)
    prepare_destination(dst, src, tmp_path, ACTOR)
    try:
        yield src, dst
    finally:
        src.close()
        dst.close()


def test_a_destination_answering_5xx_leaves_the_repository_re_sendable(pair):
    src, dst = pair
    port = closed_port()
    url = f"http://127.0.0.1:{port}"
    subscriptions.add_destination(src.uow(), "dst", dst.server_id, dst.signer.public_pem, ACTOR, url=url)
    subscriptions.subscribe(src.uow(), "dst", ORG, None, UTILS, ACTOR)
    with Served(dst, port):
        with BrokenImports(dst):
            r = httpx.post(url + push.push_target(ORG), content=b"")  # unsigned: 401, the server is up
            assert r.status_code == 401
            assert propagation.reconcile(src.uow(), src.source_context()) == []  # 500: logged, rolled back
            nothing_changed_on_the_source(src)
            assert subscription(src).acknowledged is None and imports(dst) == []
        [again] = propagation.reconcile(src.uow(), src.source_context())  # the destination is back
        assert again["kind"] == "full"
        [answer] = outbox(src, "iss.bundle.imported.v1")
        propagation.on_bundle_status(src.uow(), answer.body, src.source_context())  # the status consumer
    sub = subscription(src)
    assert sub.acknowledged == digest(src) == digest(dst) and sub.in_flight is None
    assert [r.state for r in imports(dst)] == ["imported"]


def test_a_next_push_that_fails_keeps_the_acknowledgement_and_reconcile_sends_it(pair, tmp_path):
    src, dst = pair
    port = closed_port()
    ctx = src.source_context()
    subscriptions.add_destination(
        src.uow(), "dst", dst.server_id, dst.signer.public_pem, ACTOR, url=f"http://127.0.0.1:{port}"
    )
    subscriptions.subscribe(src.uow(), "dst", ORG, CV, None, ACTOR)
    with Served(dst, port):
        publish(src)
        [first] = outbox(src, "iss.content_view.published.v1")
        assert [b["version"] for b in propagation.on_content_view_published(src.uow(), first.body, ctx)] == ["1.0"]
        change_source(src, tmp_path / "rpms")
        publish(src)
        second = outbox(src, "iss.content_view.published.v1")[1]
        assert propagation.on_content_view_published(src.uow(), second.body, ctx) == []  # 1.0 still in flight
        [answer] = outbox(src, "iss.bundle.imported.v1")
        with BrokenImports(dst):  # the status consumer records 1.0 and pushes 2.0: a 500
            assert propagation.on_bundle_status(src.uow(), answer.body, ctx) is None
        sub = subscription(src)
        assert (sub.acknowledged, sub.in_flight, sub.in_flight_since) == ("1.0", None, None)
        assert versions(dst) == ["1.0"] and len(outbox(src, "iss.bundle.imported.v1")) == 1

        [next_one] = propagation.reconcile(src.uow(), ctx)
        assert (next_one["version"], next_one["kind"], next_one["base"]) == ("2.0", "incremental", "1.0")
        propagation.on_bundle_status(src.uow(), outbox(src, "iss.bundle.imported.v1")[1].body, ctx)
    assert subscription(src).acknowledged == "2.0" and versions(dst) == ["1.0", "2.0"]
    assert files_under(src.settings.exports_path) == []


def _serve(config: Path, port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("a") as fh:
        return subprocess.Popen(
            [*ISS, "--config", str(config), "serve", "--host", "127.0.0.1", "--port", str(port)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            cwd=ROOT,
        )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(20)


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/api/v1/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_destination_that_stops_reading_mid_body_times_out_and_reconcile_sends_again(pair, tmp_path, monkeypatch):
    src, dst = pair
    port, url, config = _online_subscriber(src, dst, tmp_path)
    marker, log = tmp_path / "frozen", tmp_path / "serve.log"
    frozen = _serve(config, port, {ENV_NAME: "push.receiving", ENV_FILE: str(marker)}, log)
    try:
        wait_until(lambda: _up(url), T, f"iss serve on {url}\n{log.read_text() if log.exists() else ''}")
        monkeypatch.setattr(push, "_TIMEOUT", httpx.Timeout(3.0))  # the source's wait, shortened
        t0 = time.monotonic()
        assert propagation.reconcile(src.uow(), src.source_context()) == []  # timed out: logged, rolled back
        assert marker.exists(), "the destination read the manifest, then stopped reading"
        assert time.monotonic() - t0 < 30
        nothing_changed_on_the_source(src)
        assert subscription(src).acknowledged is None
    finally:
        _stop(frozen)
    assert imports(dst) == [] and digest(dst) is None
    monkeypatch.undo()
    served = _serve(config, port, {}, log)
    try:
        wait_until(lambda: _up(url), T, f"iss serve on {url} again\n{log.read_text()}")
        [again] = propagation.reconcile(src.uow(), src.source_context())
        assert again["kind"] == "full"
        [answer] = outbox(src, "iss.bundle.imported.v1")
        propagation.on_bundle_status(src.uow(), answer.body, src.source_context())
    finally:
        _stop(served)
    assert subscription(src).acknowledged == digest(src) == digest(dst)
    assert [r.state for r in imports(dst)] == ["imported"]


def test_the_source_database_is_not_locked_while_a_push_is_in_progress(pair, tmp_path, monkeypatch):
    src, dst = pair
    port, url, config = _online_subscriber(src, dst, tmp_path)
    marker, log = tmp_path / "frozen", tmp_path / "serve.log"
    frozen = _serve(config, port, {ENV_NAME: "push.receiving", ENV_FILE: str(marker)}, log)
    try:
        wait_until(lambda: _up(url), T, f"iss serve on {url}\n{log.read_text() if log.exists() else ''}")
        monkeypatch.setattr(push, "_TIMEOUT", httpx.Timeout(T))
        pushing = ThreadPoolExecutor(1).submit(propagation.reconcile, src.uow(), src.source_context())
        wait_until(marker.exists, T, "the destination read the manifest, then stopped reading")
        _lock_for_writing_within_a_second(src)  # another command, worker or request writing here
        assert subscription(src).in_flight == digest(src)  # what keeps reconcile from pushing it again
        assert propagation.reconcile(src.uow(), src.source_context()) == []
    finally:
        _stop(frozen)
    assert pushing.result(T) == []  # the push failed: logged, the marker put back
    nothing_changed_on_the_source(src)


def _lock_for_writing_within_a_second(app: App) -> None:
    """What another writer needs while the push is in progress: SQLite's write lock, or the
    subscription rows' locks on PostgreSQL. Raises if they are held for over a second."""
    url = app.settings.db_url
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        assert Path(path).is_file(), url
        db = sqlite3.connect(path, timeout=1, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
        finally:
            db.close()
        return
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute("SET lock_timeout = '1s'")
        conn.execute("SELECT id FROM subscriptions FOR UPDATE").fetchall()
        conn.rollback()


def _online_subscriber(src: App, dst: App, tmp_path: Path) -> tuple[int, str, Path]:
    """dst as an online destination of src (its `iss serve` to start on the port), subscribed to
    the utils repository: (port, url, dst's config file)."""
    port = closed_port()
    url = f"http://127.0.0.1:{port}"
    config = tmp_path / "destination.toml"
    config.write_text(f'data_dir = "{dst.settings.data_dir}"\nserver_id = "{dst.server_id}"\n')
    subscriptions.add_destination(src.uow(), "dst", dst.server_id, dst.signer.public_pem, ACTOR, url=url)
    subscriptions.subscribe(src.uow(), "dst", ORG, None, UTILS, ACTOR)
    return port, url, config
