"""Push (phase 3): the source's export consumer streams an online destination's bundle to the
destination's POST /api/v1/imports/push, served by a real uvicorn on a free loopback port; the
destination's answer is recorded on the source by its status consumer (no bundle file written)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from consumers.demo import CUSTOM_PRODUCT, ORG, make_server, prepare_destination, prepare_source, source_feeds_lab
from iss_plugin.adapters.bundles import push, request_signing
from iss_plugin.adapters.bundles.signing import Signer
from iss_plugin.adapters.db import models as m
from iss_plugin.domain.errors import TransientError, UsageError
from iss_plugin.services import propagation, subscriptions
from tests.conftest import closed_port
from tests.integration.propagation.conftest import (
    ACTOR,
    CV,
    memory_bus,
    outbox,
    publish,
    subscription,
    versions,
    wait_until,
)
from tests.web.test_bus_over_http import Served


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


@pytest.fixture
def online(tmp_path):
    """A source with the destination added --online at the destination's `iss serve` (running)."""
    port = closed_port()
    bus = memory_bus()
    src = make_server(tmp_path, "source", bus=bus)
    dst = make_server(tmp_path, "destination", bus=memory_bus())
    prepare_source(src, tmp_path / "rpms", 3, ACTOR)
    prepare_destination(dst, src, tmp_path, ACTOR)
    url = f"http://127.0.0.1:{port}"
    subscriptions.add_destination(src.uow(), "dst", dst.server_id, dst.signer.public_pem, ACTOR, url=url)
    subscriptions.subscribe(src.uow(), "dst", ORG, CV, None, ACTOR)
    runtimes = []
    try:
        with Served(dst, port):
            yield src, dst, url, runtimes
    finally:
        for r in runtimes:
            r.shutdown()
        src.close()
        dst.close()


def start_source(src, runtimes) -> None:
    from consumers.run import Runtime

    runtimes.append(Runtime(src, ("relay", "export", "status"), relay_poll=0.05).start())


def test_a_publish_is_pushed_to_the_online_destination_and_acknowledged_without_a_bundle_file(online):
    src, dst, _url, runtimes = online
    start_source(src, runtimes)
    publish(src)
    wait_until(lambda: subscription(src).acknowledged == "1.0", 60, "1.0 acknowledged on the source")
    assert versions(dst) == ["1.0"]
    assert files_under(src.settings.exports_path) == []  # streamed, never written
    assert outbox(src, "iss.bundle.ready.v1") == []
    answer = outbox(src, "iss.bundle.imported.v1")[0].body
    assert answer["source"] == dst.server_id and answer["data"]["version"] == "1.0"
    sub = subscription(src)
    assert sub.in_flight is None and sub.rejections == 0
    with dst.session_factory() as s:
        assert s.scalars(select(m.ImportRecord.state)).all() == ["imported"]


def test_a_destination_that_refuses_has_its_reason_recorded_on_the_source(online):
    src, dst, _url, runtimes = online
    with source_feeds_lab(dst, src, ACTOR):  # ACME -> ACME-Lab: Red Hat content into a custom product
        start_source(src, runtimes)
        publish(src)
        wait_until(lambda: (subscription(src).rejections or 0) >= 1, 60, "the rejection recorded on the source")
    sub = subscription(src)
    assert sub.acknowledged is None and sub.last_rejection.startswith("rule_violation: ")
    assert "breaks the import rules" in sub.last_rejection
    assert versions(dst) == [] and versions(dst, CV) == []
    rejected = outbox(src, "iss.bundle.rejected.v1")[0].body["data"]
    assert rejected["reason"] == "rule_violation" and rejected["has"] is None
    assert any("custom" in p for p in rejected["problems"]), rejected["problems"]
    assert files_under(src.settings.exports_path) == []


def test_a_destination_whose_backend_fails_answers_destination_error_not_a_rule_violation(online):
    """Debris where the destination's local backend publishes a repository: the import fails with
    BackendError before its commit; the push's answer says destination_error with the message, the
    schema takes it, the source records it; nothing is imported."""
    from iss_plugin.adapters.bus.codec import envelope_problems

    src, dst, _url, runtimes = online
    debris = dst.settings.published_path / ORG / CUSTOM_PRODUCT / "utils"
    debris.mkdir(parents=True)
    start_source(src, runtimes)
    publish(src)
    wait_until(lambda: (subscription(src).rejections or 0) >= 1, 60, "the failure recorded on the source")
    sub = subscription(src)
    assert sub.acknowledged is None and sub.last_rejection.startswith("destination_error: cannot publish ")
    assert "not a publication made by iss" in sub.last_rejection
    assert versions(dst) == [] and versions(dst, CV) == []
    [answer] = outbox(src, "iss.bundle.rejected.v1")
    assert envelope_problems(answer.body) == []
    assert answer.body["data"]["reason"] == "destination_error" and answer.body["data"]["has"] is None
    with dst.session_factory() as s:
        assert s.scalars(select(m.ImportRecord.state)).all() == ["failed"]


def test_a_push_with_a_wrong_signature_is_401_and_imports_nothing(online):
    src, dst, url, _ = online
    target = push.push_target(ORG)
    stranger = Signer.generate()
    for auth in (
        None,  # unsigned
        request_signing.authorization(stranger, stranger.fingerprint, "POST", target),  # an unknown key
        request_signing.authorization(
            stranger, src.signer.fingerprint, "POST", target
        ),  # the source's name, not its key
        request_signing.authorization(src.signer, src.signer.fingerprint, "POST", push.push_target("other")),
    ):
        r = httpx.post(url + target, content=b"x" * 1024, headers={"Authorization": auth} if auth else {})
        assert r.status_code == 401, (auth, r.text)
    assert versions(dst) == []
    with dst.session_factory() as s:
        assert s.scalars(select(m.ImportRecord)).all() == []


def test_a_destination_that_is_down_is_a_transient_error_for_the_bus_to_retry(tmp_path):
    src = make_server(tmp_path, "source", bus=memory_bus())
    try:
        prepare_source(src, tmp_path / "rpms", 2, ACTOR)
        down = f"http://127.0.0.1:{closed_port()}"
        subscriptions.add_destination(src.uow(), "dst", "dst-1", Signer.generate().public_pem, ACTOR, url=down)
        subscriptions.subscribe(src.uow(), "dst", ORG, CV, None, ACTOR)
        envelope = outbox(src, "iss.content_view.published.v1")  # nothing yet: publish makes it
        assert envelope == []
        publish(src)
        envelope = outbox(src, "iss.content_view.published.v1")[0].body
        with pytest.raises(TransientError, match="cannot push"):
            propagation.on_content_view_published(src.uow(), envelope, src.source_context())
        sub = subscription(src)  # rolled back: nothing in flight, the event not processed
        assert sub.in_flight is None and outbox(src, "iss.bundle.imported.v1") == []
        assert files_under(src.settings.exports_path) == []
    finally:
        src.close()


def test_an_online_destination_needs_an_http_url(tmp_path):
    src = make_server(tmp_path, "source")
    try:
        with pytest.raises(UsageError, match="--url"):
            subscriptions.add_destination(src.uow(), "d", "d-1", Signer.generate().public_pem, ACTOR, url="ftp://x")
        with src.session_factory() as s:
            assert s.scalars(select(m.Destination)).all() == []
        subscriptions.add_destination(src.uow(), "d", "d-1", Signer.generate().public_pem, ACTOR, url="http://h:1")
        with src.session_factory() as s:
            d = s.scalars(select(m.Destination)).one()
            assert d.online and d.url == "http://h:1"
    finally:
        src.close()
