"""Fan-out built once (embedded: memory://, SQLite): one version to ten destinations that share a
base is one bundle file and one export record; every bundle.ready points at it and each destination
imports it (verifying the source's signature). `iss bundle gc` keeps it while any destination has it
in flight, and removes it once every one acknowledged."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from consumers.demo import make_server, prepare_destination
from iss_plugin.adapters.db import models as m
from iss_plugin.cli.main import build_cli
from iss_plugin.domain import events as ev
from iss_plugin.services import fanout

from .conftest import ACTOR, add_subscriber, exports, imports, outbox, pins, publish, versions, wait_until
from .test_embedded import change_source

DESTINATIONS = 10
T = 60


def test_one_version_to_ten_destinations_is_one_bundle_collected_after_every_acknowledgement(embedded, tmp_path):
    src = embedded.src
    dsts = [embedded.dst]
    for i in range(1, DESTINATIONS):
        dst = make_server(tmp_path, f"destination-{i}", bus=embedded.bus)
        embedded.runtimes.append(_Closer(dst))
        prepare_destination(dst, src, tmp_path, ACTOR)
        add_subscriber(src, dst, tmp_path)
        dsts.append(dst)
    embedded.run(src, "relay", "export", "status")
    for dst in dsts:  # no destination relay yet: the answers wait in their outboxes, the bundle in flight
        embedded.run(dst, "import")

    publish(src)
    wait_until(lambda: all(versions(d) == ["1.0"] for d in dsts), T, "1.0 on every destination")
    records = exports(src)
    assert [(e.version, e.kind, e.destination) for e in records] == [("1.0", "full", None)]
    shared = fanout.key_dir(src.settings.exports_path, src.signer.fingerprint)
    assert [p.name for p in shared.iterdir()] == [Path(records[0].path).name]
    assert [p.name for p in fanout.shared_dir(src.settings.exports_path).iterdir()] == [shared.name]
    ready = outbox(src, ev.BUNDLE_READY)
    assert sorted(e.body["data"]["destination"] for e in ready) == sorted(d.server_id for d in dsts)
    assert {e.body["data"]["bundle_id"] for e in ready} == {records[0].bundle_id}
    for dst in dsts:
        assert [(i.bundle_id, i.state) for i in imports(dst)] == [(records[0].bundle_id, "imported")]
        assert pins(dst, "1.0") == pins(src, "1.0")

    assert _gc(src) == []  # every destination still has it in flight (no answer came back yet)
    assert Path(records[0].path).is_file()

    for dst in dsts:
        embedded.run(dst, "relay")
    wait_until(lambda: _all_acknowledged(src, "1.0"), T, "every acknowledgement")
    assert [b["bundle_id"] for b in _gc(src)] == [records[0].bundle_id]
    assert not Path(records[0].path).exists()
    assert [e.state for e in _records(src)] == ["collected"]
    assert _gc(src) == []

    change_source(embedded, "second")  # the next version: one incremental bundle for all ten
    publish(src)
    wait_until(lambda: all(versions(d) == ["1.0", "2.0"] for d in dsts), T, "2.0 on every destination")
    assert [(e.version, e.kind, e.base) for e in exports(src)] == [("2.0", "incremental", "1.0")]
    wait_until(lambda: _all_acknowledged(src, "2.0"), T, "every acknowledgement of 2.0")


def test_bundle_gc_command_reports_what_it_removed(embedded):
    src = embedded.src
    config = src.settings.data_dir / "settings.toml"
    config.write_text(f'data_dir = "{src.settings.data_dir}"\nserver_id = "{src.server_id}"\n')
    result = CliRunner().invoke(build_cli(), ["--config", str(config), "--output", "json", "bundle", "gc"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "[]"


def _gc(app) -> list[fanout.CollectedBundle]:
    return fanout.collect_bundles(app.uow(), app.settings.exports_path, ACTOR)


def _records(app) -> list[m.ExportRecord]:
    from sqlalchemy import select

    with app.session_factory() as s:
        return list(s.scalars(select(m.ExportRecord).order_by(m.ExportRecord.id)))


def _all_acknowledged(app, version: str) -> bool:
    from sqlalchemy import select

    with app.session_factory() as s:
        subs = list(s.scalars(select(m.Subscription)))
    return len(subs) == DESTINATIONS and all(x.acknowledged == version and x.in_flight is None for x in subs)


class _Closer:
    def __init__(self, app) -> None:
        self.app = app

    def shutdown(self) -> None:
        self.app.close()
