"""`iss bus unroutable list|replay` through the CLI (click's runner, in-process): output, exit codes,
and the bad inputs (both ids and --all, neither, an unknown id, memory://, a broker that is down)
with their clear errors and nothing changed. Real RabbitMQ on the session's throwaway vhost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from consumers.demo import make_server
from iss_plugin.adapters.bus import topology as T
from iss_plugin.adapters.bus.codec import encode
from iss_plugin.adapters.bus.unroutable import UnroutableQueue
from iss_plugin.adapters.db import models as m
from iss_plugin.cli.main import build_cli

from .conftest import declare_all, drain
from .test_consumer_policy import published, raw
from .test_unroutable import NOWHERE, publish

pytestmark = pytest.mark.rabbitmq


def server_config(root: Path, bus, *, url: str | None = None) -> Path:
    """An initialized server (its admin's credentials in its data dir) whose settings name `bus`."""
    app = make_server(root, "dst")
    app.close()
    config = root / "settings.toml"
    config.write_text(
        f'data_dir = "{root / "dst"}"\nserver_id = "dst"\n\n[bus]\n'
        f'url = "{url or bus.url}"\nexchange = "{bus.exchange}"\nprefix = "{bus.prefix}"\n'
    )
    return config


def iss(config: Path, *args: str):
    return CliRunner().invoke(build_cli(), ["--config", str(config), *args], catch_exceptions=False)


def waiting(bus) -> list[str]:
    return [x.event_id for x in UnroutableQueue(bus, T.build(bus)).listing(1000).messages]


def audited(root: Path) -> list[str]:
    from sqlalchemy import create_engine, select

    engine = create_engine(f"sqlite:///{root / 'dst' / 'iss.db'}")
    try:
        with engine.connect() as c:
            return list(c.scalars(select(m.AuditLog.target).where(m.AuditLog.action == "unroutable.replay")))
    finally:
        engine.dispose()


@pytest.fixture
def waiting_three(amqp_bus):
    declare_all(amqp_bus)
    a, b, c = published("1.0"), published("2.0"), published("3.0")
    publish(amqp_bus, [a])
    publish(amqp_bus, [b], routing_key=NOWHERE)
    publish(amqp_bus, [c])
    return a, b, c


def test_list_json_and_table(tmp_path, amqp_bus, waiting_three):
    config = server_config(tmp_path, amqp_bus)
    result = iss(config, "--output", "json", "bus", "unroutable", "list", "--limit", "2")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert listed["queue"] == f"{amqp_bus.prefix}.unroutable" and (listed["total"], listed["shown"]) == (3, 2)
    assert [r["event_id"] for r in listed["messages"]] == [e["id"] for e in waiting_three[:2]]
    assert listed["messages"][1] | {"time": None} == {
        "position": 2,
        "event_id": waiting_three[1]["id"],
        "type": "iss.content_view.published.v1",
        "routing_key": NOWHERE,
        "source": "urn:iss:server:test",
        "time": None,
    }
    table = iss(config, "bus", "unroutable", "list")
    assert table.exit_code == 0 and "3 of 3 shown" in table.stdout  # rich narrows the columns to the terminal
    assert waiting(amqp_bus) == [e["id"] for e in waiting_three]


def test_replay_prints_what_went_where_and_what_stayed(tmp_path, amqp_bus, waiting_three):
    a, b, c = waiting_three
    config = server_config(tmp_path, amqp_bus)
    declare_all(amqp_bus, export=True)
    result = iss(config, "--output", "json", "bus", "unroutable", "replay", "--all")
    assert result.exit_code == 1, result.output  # one stayed
    report = json.loads(result.stdout)
    assert (report["replayed"], report["stayed"], report["not found"]) == (2, 1, 0)
    assert [(r["event_id"], r["outcome"]) for r in report["messages"]] == [
        (a["id"], "replayed"),
        (b["id"], "stayed"),
        (c["id"], "replayed"),
    ]
    assert waiting(amqp_bus) == [b["id"]]
    got = drain(amqp_bus, T.export_queue_name(amqp_bus.prefix), expect=2)
    assert [raw(x) for x in got] == [encode(a), encode(c)]
    assert audited(tmp_path) == [a["id"], c["id"]]

    declare_all(amqp_bus, import_for=["nowhere"])
    table = iss(config, "bus", "unroutable", "replay", "--event-id", b["id"])
    assert table.exit_code == 0, table.output
    assert "replayed" in table.stdout and "1 replayed, 0 stayed, 0 not found (exchange" in table.stdout
    assert waiting(amqp_bus) == []
    assert [raw(x) for x in drain(amqp_bus, T.import_queue_name(amqp_bus.prefix, "nowhere"), expect=1)] == [encode(b)]


def test_unknown_id_exits_2_and_changes_nothing(tmp_path, amqp_bus, waiting_three):
    config = server_config(tmp_path, amqp_bus)
    declare_all(amqp_bus, export=True)
    result = iss(config, "bus", "unroutable", "replay", "--event-id", "nope")
    assert result.exit_code == 2, result.output
    assert "not found: nope: no message with this id in" in result.stdout
    assert "nothing changed for it" in result.stdout
    assert waiting(amqp_bus) == [e["id"] for e in waiting_three]
    assert drain(amqp_bus, T.export_queue_name(amqp_bus.prefix)) == [] and audited(tmp_path) == []


@pytest.mark.parametrize(
    "args, says",
    [
        (["--all", "--event-id", "x"], "give either --event-id ID (repeatable) or --all, not both"),
        ([], "say what to replay: --event-id ID (repeatable) or --all"),
    ],
)
def test_all_with_ids_or_neither_is_a_usage_error(tmp_path, amqp_bus, waiting_three, args, says):
    config = server_config(tmp_path, amqp_bus)
    declare_all(amqp_bus, export=True)
    result = iss(config, "--output", "json", "bus", "unroutable", "replay", *args)
    assert result.exit_code == 2
    assert says in json.loads(result.stdout)["message"]
    assert waiting(amqp_bus) == [e["id"] for e in waiting_three]
    assert drain(amqp_bus, T.export_queue_name(amqp_bus.prefix)) == []


def test_memory_bus_is_a_usage_error(tmp_path, amqp_bus):
    config = server_config(tmp_path, amqp_bus, url="memory://")
    for args in (["list"], ["replay", "--all"]):
        result = iss(config, "bus", "unroutable", *args)
        assert result.exit_code == 2, result.output
        assert "memory:// (settings bus.url) has no unroutable queue" in result.stderr


def test_broker_down_exits_1_and_changes_nothing(tmp_path, amqp_bus, waiting_three):
    config = server_config(tmp_path, amqp_bus, url="amqp://guest:guest@127.0.0.1:1/%2F")
    result = iss(config, "bus", "unroutable", "replay", "--all")
    assert result.exit_code == 1
    assert "cannot reach the broker at amqp://guest:***@127.0.0.1:1" in result.stderr
    assert "nothing was read or changed" in result.stderr
    assert waiting(amqp_bus) == [e["id"] for e in waiting_three]
