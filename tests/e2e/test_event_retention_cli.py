"""`iss store gc` prunes old events and reports the counts; a negative event_retention_days stops
`iss store gc` and `iss run` at start with the settings' usage error (exit 2), nothing deleted."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from iss_plugin.adapters.db.models import OutboxEvent, ProcessedEvent
from iss_plugin.bootstrap import App
from iss_plugin.settings import load_settings

from .servers import Server

OLD = datetime.now(UTC) - timedelta(days=40)


def add_old_events(server: Server) -> None:
    app = App(load_settings(server.config))
    try:
        with app.session_factory() as s:
            for i in range(3):
                body = {"id": f"old-{i}", "type": "iss.content_view.published.v1", "data": {}}
                s.add(OutboxEvent(event_id=f"old-{i}", type=body["type"], routing_key="r", body=body, sent_at=OLD))
            s.add(OutboxEvent(event_id="unsent", type="iss.bundle.ready.v1", routing_key="r", body={}, created=OLD))
            s.add_all(ProcessedEvent(event_id=f"in-{i}", consumer="import", at=OLD) for i in range(2))
            s.commit()
    finally:
        app.close()


def event_rows(server: Server) -> tuple[int, int]:
    app = App(load_settings(server.config))
    try:
        with app.session_factory() as s:
            outbox = s.scalar(select(func.count()).select_from(OutboxEvent))
            markers = s.scalar(select(func.count()).select_from(ProcessedEvent))
            return outbox, markers
    finally:
        app.close()


def test_store_gc_prunes_old_events_and_says_how_many(source):
    add_old_events(source)
    kept = source.json("store", "gc", "--event-retention-days", "0")
    assert (kept["outbox_events_pruned"], kept["processed_events_pruned"]) == (0, 0)
    out = source.json("store", "gc")
    assert out["event_retention_days"] == 30
    assert (out["outbox_events_pruned"], out["processed_events_pruned"]) == (3, 2)
    assert out["transactions"] == 2 and out["longest_transaction_seconds"] >= 0
    assert event_rows(source) == (1, 0)  # the unsent row stays
    table = source.run("store", "gc").output
    assert "outbox_events_pruned" in table


def _iss(cfg, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    code = "import sys; from iss_plugin.cli.main import main; sys.argv[0] = 'iss'; main()"
    try:
        return subprocess.run(
            [sys.executable, "-c", code, "--config", str(cfg), *args],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"iss {' '.join(args)} started instead of refusing the setting")


@pytest.mark.parametrize("args", [("store", "gc"), ("run", "--no-serve")])
def test_a_negative_retention_is_a_config_error_at_start(source, args):
    add_old_events(source)
    r = _iss(source.config, *args, env={"ISS_EVENT_RETENTION_DAYS": "-1"})
    assert r.returncode == 2, r.stdout + r.stderr
    said = r.stdout + r.stderr
    assert "invalid settings" in said and "event_retention_days" in said and "give 0" in said, said
    assert "Traceback" not in said
    assert event_rows(source) == (4, 2)  # nothing deleted


def test_a_negative_retention_in_the_file_names_the_file(tmp_path):
    s = Server("x", tmp_path / "x")
    s.write_config()
    s.config.write_text(s.config.read_text() + "event_retention_days = -3\n")
    r = s.run("store", "gc", expect=2)
    assert str(s.config) in r.output and "event_retention_days" in r.output and "-3 days" in r.output, r.output
