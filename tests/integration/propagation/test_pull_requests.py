"""Pull on request (issue 12): the destination asks (`iss content-import request`, its own
iss.export.requested.v1), the source answers with a stream's location (no bundle file), the
destination's import worker pulls only what it lacks and answers like for a bundle.

Real RabbitMQ (a throwaway vhost), SQLite, the source's `iss serve` app on a real uvicorn on a
loopback port, every role of both servers running (consumers.run.Runtime)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from consumers.demo import CUSTOM_PRODUCT, ORG, make_server, prepare_destination, prepare_source
from iss_plugin.adapters.db import models as m
from iss_plugin.adapters.fixtures import build_rpms
from iss_plugin.bootstrap import App
from iss_plugin.cli.main import build_cli
from iss_plugin.domain import events as ev
from iss_plugin.domain.errors import IssError
from iss_plugin.services import catalog, identity, streaming, subscriptions
from tests.conftest import closed_port
from tests.web.test_bus_over_http import Served

from .conftest import (
    ACTOR,
    CV,
    add_subscriber,
    count,
    imports,
    outbox,
    subscription,
    versions,
    wait_own_changes_handled,
    wait_until,
)
from .test_two_sites import two_vhosts  # noqa: F401 - the fixture

T = 60  # seconds: the flows take a few


@contextmanager
def pulling_servers(root: Path, src_bus: dict, dst_bus: dict) -> Iterator[tuple[App, App, Path]]:
    """The source served on a loopback port, both running every role; the view is not blessed, so
    only what the destination asks for travels. Yields (source, destination, the destination's config)."""
    from consumers.run import Runtime

    port = closed_port()
    src = make_server(root, "source", bus=src_bus, web_base_url=f"http://127.0.0.1:{port}")
    nowhere = root / "no-shared-files"
    nowhere.mkdir()
    dst = make_server(root, "destination", bus=dst_bus, fetch_roots=[str(nowhere)])
    prepare_source(src, root / "rpms", 3, ACTOR)
    prepare_destination(dst, src, root, ACTOR)
    add_subscriber(src, dst, root)
    with src.session_factory() as s:
        s.execute(update(m.ContentView).where(m.ContentView.label == CV).values(blessed=False))
        s.commit()
    config = root / "destination.toml"
    config.write_text(f'data_dir = "{dst.settings.data_dir}"\nserver_id = "{dst.server_id}"\n')
    runtimes = []
    try:
        with Served(src, port):
            runtimes.append(Runtime(src, ("relay", "export", "status"), relay_poll=0.05).start())
            runtimes.append(Runtime(dst, ("relay", "import"), relay_poll=0.05).start())
            yield src, dst, config
    finally:
        for r in runtimes:
            r.shutdown()
        src.close()
        dst.close()


def unique_bus(url: str) -> dict:
    tag = uuid.uuid4().hex[:10]
    return {"url": url, "exchange": f"pull-{tag}", "prefix": f"pull-{tag}", "retry_delays_ms": (200, 400)}


@pytest.fixture
def pulling_pair(tmp_path, rabbit_vhost):
    bus = unique_bus(rabbit_vhost)
    with pulling_servers(tmp_path, bus, bus) as servers:
        yield servers


def publish(app: App) -> str:
    from iss_plugin.services import content_views

    return content_views.publish(app.uow(), ORG, CV, None, ACTOR, app.server_id)["version"]


def request(config: Path, *extra: str, env: dict | None = None, user: str | None = None):
    args = ["--config", str(config), *(["--user", user] if user else []), "--output", "json"]
    args += ["content-import", "request", *extra]
    return CliRunner().invoke(build_cli(), args, env=env, catch_exceptions=False)


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


def store_files(app: App) -> set[str]:
    """Every file of the server's data directory but its database and credentials."""
    root = Path(app.settings.data_dir)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".db" not in p.name}


def handled_by_source(src: App, event_id: str) -> bool:
    return count(src, m.ProcessedEvent, m.ProcessedEvent.event_id == event_id, m.ProcessedEvent.consumer == "export")


def test_the_destination_asks_pulls_only_what_it_lacks_and_the_source_writes_no_bundle(pulling_pair, tmp_path):
    src, dst, config = pulling_pair
    assert publish(src) == "1.0"

    first = request(config, "--organization", ORG, "--content-view", CV, "--full")  # not here yet: all of it
    assert first.exit_code == 0, first.output
    asked = json.loads(first.stdout)
    assert asked["state"] == "requested" and asked["base"] is None
    wait_until(lambda: versions(dst) == ["1.0"], T, "1.0 pulled by the destination")
    wait_until(lambda: subscription(src).acknowledged == "1.0", T, "the source to record the acknowledgement")
    assert subscription(src).in_flight is None

    ready = [e.body["data"] for e in outbox(src, ev.BUNDLE_READY)]
    assert len(ready) == 1 and ready[0]["stream"] is True and ready[0]["format"] == "tar"
    assert ready[0]["location"].startswith(f"{src.settings.web_base_url}/api/v1/bundles/stream?")
    assert ready[0]["kind"] == "full" and ready[0]["base"] is None
    request_event = outbox(dst, ev.EXPORT_REQUESTED)[0].body
    assert request_event["data"]["reason"] == "requested" and request_event["data"]["destination"] == dst.server_id
    assert request_event["data"]["requested_by"] == "admin"

    # a later version: asked from what it holds, only the new package travels
    extra = build_rpms(tmp_path / "extra", 1, prefix="late-pkg")
    catalog.upload_packages(src.uow(), ORG, f"{CUSTOM_PRODUCT}/utils", extra, ACTOR, src.server_id)
    assert publish(src) == "2.0"
    second = request(config, "--organization", ORG, "--content-view", CV)
    assert second.exit_code == 0 and json.loads(second.stdout)["base"] == "1.0"
    wait_until(lambda: versions(dst) == ["1.0", "2.0"], T, "2.0 pulled by the destination")
    wait_until(lambda: subscription(src).acknowledged == "2.0", T, "the source to record 2.0")
    ready = [e.body["data"] for e in outbox(src, ev.BUNDLE_READY)]
    assert ready[1]["kind"] == "incremental" and ready[1]["base"]["content_view_version"] == "1.0"
    assert "base=1.0" in ready[1]["location"]
    with dst.session_factory() as s:
        assert s.scalars(select(m.ImportRecord.kind).order_by(m.ImportRecord.id)).all() == ["full", "incremental"]
    planned = streaming.plan_stream(
        src.uow(),
        streaming.StreamRequest(ORG, content_view=CV, base="1.0"),
        signer=src.signer,
        server_id=src.server_id,
        staging_root=tmp_path / "plan",
    )
    assert planned is not None
    try:
        carried = [Path(p).name for p in planned.sources if p.endswith(".rpm")]  # besides the repodata
        assert carried == [extra[0].name]  # what the incremental stream carried
    finally:
        planned.close()

    # nothing under the source's exports directory, no export record
    assert files_under(src.settings.exports_path) == []
    assert count(src, m.ExportRecord) == 0

    # the same request again: the source has nothing to send, nothing changes here
    before = (store_files(dst), len(imports(dst)), len(outbox(src, ev.BUNDLE_READY)))
    again = request(config, "--organization", ORG, "--content-view", CV)
    assert again.exit_code == 0
    event_id = json.loads(again.stdout)["event_id"]
    wait_until(lambda: handled_by_source(src, event_id), T, "the source to handle the repeated request")
    assert (store_files(dst), len(imports(dst)), len(outbox(src, ev.BUNDLE_READY))) == before
    assert versions(dst) == ["1.0", "2.0"] and subscription(src).in_flight is None

    # a version held here is not asked for at all
    held = request(config, "--organization", ORG, "--content-view", CV, "--version", "1.0")
    assert held.exit_code == 0 and json.loads(held.stdout)["state"] == "held"
    assert len(outbox(dst, ev.EXPORT_REQUESTED)) == 3


def repository_digest(app: App, path: str) -> str | None:
    try:
        return catalog.repository_info(app.uow(), ORG, path)["package_set_digest"]
    except IssError:
        return None


def repository_subscription(app: App) -> m.Subscription:
    with app.session_factory() as s:
        return s.scalars(select(m.Subscription).where(m.Subscription.repository != "")).one()


def test_a_repository_asked_for_is_streamed_pulled_and_imported_and_the_source_writes_no_bundle(pulling_pair, tmp_path):
    src, dst, config = pulling_pair
    path = f"{CUSTOM_PRODUCT}/utils"
    wait_own_changes_handled(src)  # the uploads that made the source
    subscriptions.subscribe(src.uow(), dst.server_id, ORG, None, path, ACTOR)  # so only the request sends it
    first_digest = repository_digest(src, path)

    first = request(config, "--organization", ORG, "--repository", path, "--full")
    assert first.exit_code == 0, first.output
    asked = json.loads(first.stdout)
    assert (asked["state"], asked["product"], asked["repository"], asked["base"]) == (
        "requested",
        CUSTOM_PRODUCT,
        "utils",
        None,
    )
    assert asked["source"] == "source" and asked["source_server"] == src.server_id
    wait_until(lambda: repository_digest(dst, path) == first_digest, T, "the repository pulled by the destination")
    wait_until(lambda: repository_subscription(src).acknowledged == first_digest, T, "the acknowledgement")
    assert repository_subscription(src).in_flight is None
    ready = [e.body["data"] for e in outbox(src, ev.BUNDLE_READY)]
    assert len(ready) == 1 and ready[0]["stream"] is True and ready[0]["format"] == "tar"
    assert (ready[0]["product"], ready[0]["repository"], ready[0]["kind"]) == (CUSTOM_PRODUCT, "utils", "full")
    assert ready[0]["location"].startswith(f"{src.settings.web_base_url}/api/v1/bundles/stream?")
    assert "base=" not in ready[0]["location"]

    # a later version, whose bundle file the source sent is lost on the way (in flight, so the
    # source's own export skips it): the destination asks from what it holds, only the new package travels
    with src.session_factory() as s:
        s.execute(
            update(m.Subscription)
            .where(m.Subscription.repository != "")
            .values(in_flight="sha256:" + "1" * 64, in_flight_since=datetime.now(UTC))
        )
        s.commit()
    extra = build_rpms(tmp_path / "extra", 1, prefix="late-pkg")
    catalog.upload_packages(src.uow(), ORG, path, extra, ACTOR, src.server_id)
    second_digest = repository_digest(src, path)
    changed = outbox(src, ev.REPOSITORY_CHANGED)[-1].event_id
    wait_until(lambda: handled_by_source(src, changed), T, "the source's export to pass the change by")
    assert len(outbox(src, ev.BUNDLE_READY)) == 1
    second = request(config, "--organization", ORG, "--repository", path)
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["base"] == first_digest
    wait_until(lambda: repository_digest(dst, path) == second_digest, T, "the new version pulled")
    wait_until(lambda: repository_subscription(src).acknowledged == second_digest, T, "the new acknowledgement")
    ready = [e.body["data"] for e in outbox(src, ev.BUNDLE_READY)]
    assert ready[1]["kind"] == "incremental" and "base=" in ready[1]["location"]
    assert ready[1]["base"]["repositories"][0]["package_set_digest"] == first_digest
    assert [(i.content_view, i.kind, i.state) for i in imports(dst)] == [
        (None, "full", "imported"),
        (None, "incremental", "imported"),
    ]
    assert "late-pkg" in " ".join(catalog.repository_info(dst.uow(), ORG, path)["packages"])

    # nothing under the source's exports directory, no export record
    assert files_under(src.settings.exports_path) == []
    assert count(src, m.ExportRecord) == 0

    # held already: the source has nothing to send, nothing changes here
    before = (store_files(dst), len(imports(dst)), len(outbox(src, ev.BUNDLE_READY)))
    again = request(config, "--organization", ORG, "--repository", path)
    assert again.exit_code == 0
    event_id = json.loads(again.stdout)["event_id"]
    wait_until(lambda: handled_by_source(src, event_id), T, "the source to handle the repeated request")
    assert (store_files(dst), len(imports(dst)), len(outbox(src, ev.BUNDLE_READY))) == before


def test_a_repository_not_here_is_asked_for_only_in_full(pulling_pair):
    _src, dst, config = pulling_pair
    missing = request(config, "--organization", ORG, "--repository", f"{CUSTOM_PRODUCT}/utils")
    assert missing.exit_code == 2
    assert f"repository '{CUSTOM_PRODUCT}/utils' of organization 'ACME' is not on this server" in missing.output
    assert "--full" in missing.output
    versioned = request(config, "--organization", ORG, "--repository", f"{CUSTOM_PRODUCT}/utils", "--version", "1.0")
    assert versioned.exit_code == 2 and "--version is a content view's" in versioned.output
    assert outbox(dst, ev.EXPORT_REQUESTED) == []


def test_a_tampered_stream_is_rejected_with_its_reason_and_nothing_enters_the_destination(pulling_pair, tmp_path):
    src, dst, config = pulling_pair
    publish(src)
    planned = streaming.plan_stream(
        src.uow(),
        streaming.StreamRequest(ORG, content_view=CV),
        signer=src.signer,
        server_id=src.server_id,
        staging_root=tmp_path / "plan",
    )
    assert planned is not None
    stored = Path(sorted(planned.sources.values())[0])
    planned.close()
    data = bytearray(stored.read_bytes())  # the source's store rots: same size, one bit flipped
    data[len(data) // 2] ^= 0x01
    stored.chmod(0o644)
    stored.write_bytes(bytes(data))
    before = store_files(dst)

    asked = request(config, "--organization", ORG, "--content-view", CV, "--full")
    assert asked.exit_code == 0, asked.output
    wait_until(lambda: subscription(src).rejections == 1, T, "the source to record the rejection")
    sub = subscription(src)
    assert sub.last_rejection.startswith("integrity: ") and "altered in transit" in sub.last_rejection
    rejected = outbox(dst, ev.BUNDLE_REJECTED)[0].body["data"]
    assert rejected["reason"] == "integrity" and rejected["has"] is None
    assert versions(dst) == [] and store_files(dst) == before
    with dst.session_factory() as s:
        assert s.scalars(select(m.ImportRecord.state)).all() == ["rejected"]
    assert files_under(src.settings.exports_path) == []


def test_bad_requests_are_refused_with_a_clear_error_and_publish_nothing(pulling_pair):
    _src, dst, config = pulling_pair
    unknown_org = request(config, "--organization", "NOPE", "--content-view", CV)
    assert unknown_org.exit_code != 0 and "organization 'NOPE' is not mapped" in unknown_org.output
    unknown_view = request(config, "--organization", ORG, "--content-view", "nope")
    assert unknown_view.exit_code != 0
    assert "content view 'nope' of organization 'ACME' is not on this server" in unknown_view.output
    assert "--full" in unknown_view.output
    bad_version = request(config, "--organization", ORG, "--content-view", CV, "--version", "one")
    assert bad_version.exit_code != 0

    identity.create_user(dst.uow(), "viewer", "secret-password-1", ACTOR)
    identity.create_role(dst.uow(), "viewer-role", ("view_products",), ACTOR)
    identity.grant_role(dst.uow(), "viewer", "viewer-role", ORG, ACTOR)
    denied = request(
        config,
        "--organization",
        ORG,
        "--content-view",
        CV,
        "--full",
        user="viewer",
        env={"ISS_PASSWORD": "secret-password-1"},
    )
    assert denied.exit_code != 0 and "import_content" in denied.output
    assert outbox(dst, ev.EXPORT_REQUESTED) == []


def crosses_the_link(tmp_path, two_vhosts):  # noqa: F811  (run from test_two_sites.py, see there)
    """Two sites, two brokers (vhosts) joined only by the link's shovels: the destination's request
    reaches the source's export queue, the stream's announcement and the answer come back."""
    from iss_plugin.adapters.bus.links import Side, link_definitions
    from iss_plugin.adapters.bus.topology import export_queue_name, import_queue_name

    from .test_two_sites import _apply, _consumers, _uri

    tag = uuid.uuid4().hex[:10]
    src_bus, dst_bus = ({**unique_bus(_uri(v)), "exchange": f"pull-{tag}", "prefix": f"pull-{tag}"} for v in two_vhosts)
    with pulling_servers(tmp_path, src_bus, dst_bus) as (src, dst, config):
        prefix = src_bus["prefix"]
        wait_until(lambda: _consumers(src_bus["url"], export_queue_name(prefix)) >= 1, T, "the source's workers")
        wait_until(lambda: _consumers(dst_bus["url"], import_queue_name(prefix, dst.server_id)) >= 1, T, "its import")
        src_side, dst_side = link_definitions(
            src.server_id,
            dst.server_id,
            Side(src_bus["url"], two_vhosts[0]),
            Side(dst_bus["url"], two_vhosts[1]),
            exchange=src_bus["exchange"],
            prefix=prefix,
        )
        _apply(src_side)
        _apply(dst_side)
        publish(src)
        asked = request(config, "--organization", ORG, "--content-view", CV, "--full")
        assert asked.exit_code == 0, asked.output
        wait_until(lambda: versions(dst) == ["1.0"], T, "1.0 pulled across the link")
        wait_until(lambda: subscription(src).acknowledged == "1.0", T, "the answer back across the link")
        assert files_under(src.settings.exports_path) == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"location": "http://127.0.0.1:9/api/v1/bundles/x/download"}, "is not a source's /api/v1/bundles/stream"),
        ({"source_server": "impostor"}, "does not match its signed manifest"),
        ({"content_view": None, "version": None}, "names neither"),
        ({"content_view": None, "version": None, "product": "p", "repository": "r"}, "is not subscribed to p/r"),
    ],
)
def test_a_stream_announcement_that_lies_is_rejected_and_nothing_is_imported(pulling_pair, changes, message):
    """bundle.ready is not signed: what the import worker pulls is checked against the signed manifest."""
    from iss_plugin.services import propagation

    src, dst, _config = pulling_pair
    publish(src)
    data = {
        "bundle_id": "b-1",
        "source_server": src.server_id,
        "destination": dst.server_id,
        "organization": ORG,
        "content_view": CV,
        "version": "1.0",
        "kind": "full",
        "base": None,
        "location": f"{src.settings.web_base_url}/api/v1/bundles/stream?organization={ORG}&content_view={CV}",
        "format": "tar",
        "stream": True,
        "repositories": [
            {"product": "p", "repository": "r", "package_count": 1, "package_set_digest": "sha256:" + "0" * 64}
        ],
    }
    data = {k: v for k, v in (data | changes).items() if v is not None}
    before = store_files(dst)
    answer = propagation.on_bundle_ready(
        dst.uow(), ev.make_envelope(ev.BUNDLE_READY, src.server_id, data), dst.destination_context()
    )
    assert answer is not None and answer["state"] == "rejected"
    rejected = outbox(dst, ev.BUNDLE_REJECTED)[-1].body["data"]
    assert message in rejected["message"]
    assert versions(dst) == [] and store_files(dst) == before


def test_a_stream_announced_again_for_a_version_held_is_answered_without_a_byte_read(pulling_pair):
    from iss_plugin.services import propagation

    src, dst, config = pulling_pair
    publish(src)
    assert request(config, "--organization", ORG, "--content-view", CV, "--full").exit_code == 0
    wait_until(lambda: subscription(src).acknowledged == "1.0", T, "1.0 pulled and acknowledged")
    data = outbox(src, ev.BUNDLE_READY)[0].body["data"]
    before = (store_files(dst), len(imports(dst)))
    nowhere = f"http://127.0.0.1:{closed_port()}"  # were the source asked, the pull would fail: cannot reach
    data |= {"location": data["location"].replace(src.settings.web_base_url, nowhere)}
    again = ev.make_envelope(ev.BUNDLE_READY, src.server_id, data)  # another delivery, another event id
    assert propagation.on_bundle_ready(dst.uow(), again, dst.destination_context()) is None
    answer = outbox(dst, ev.BUNDLE_IMPORTED)[-1].body["data"]
    assert (
        answer["already_imported"] is True and answer["version"] == "1.0" and answer["bundle_id"] == data["bundle_id"]
    )
    assert answer["repositories"] == outbox(dst, ev.BUNDLE_IMPORTED)[0].body["data"]["repositories"]
    assert (store_files(dst), len(imports(dst))) == before
