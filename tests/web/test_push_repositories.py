"""Push of a REPOSITORY subscription (a product/repository rather than a content view) to an online
destination: the repository's latest version, incremental from the acknowledged digest, streamed to
the destination's POST /api/v1/imports/push on a real uvicorn (loopback), no bundle file written on
the source; the destination's answer is recorded by the source's status consumer."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from consumers.demo import (
    CUSTOM_PRODUCT,
    ORG,
    RH_PRODUCT,
    make_server,
    prepare_destination,
    prepare_source,
    source_feeds_lab,
)
from iss_plugin.adapters.db import models as m
from iss_plugin.adapters.fixtures import build_rpms
from iss_plugin.bootstrap import App
from iss_plugin.services import catalog, propagation, subscriptions
from tests.conftest import closed_port
from tests.integration.propagation.conftest import (
    ACTOR,
    imports,
    memory_bus,
    outbox,
    subscription,
    wait_own_changes_handled,
    wait_until,
)
from tests.web.test_bus_over_http import Served

UTILS = f"{CUSTOM_PRODUCT}/utils"
BASEOS = f"{RH_PRODUCT}/baseos"
T = 60


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


def digest(app: App, repository: str, organization: str = ORG) -> str | None:
    try:
        return catalog.repository_info(app.uow(), organization, repository)["package_set_digest"]
    except Exception:  # not there (yet)
        return None


def packages(app: App, repository: str, organization: str = ORG) -> set[str]:
    try:
        return {str(p) for p in catalog.repository_info(app.uow(), organization, repository)["packages"]}
    except Exception:
        return set()


@pytest.fixture
def online_pair(tmp_path):
    """A source and a destination serving `iss serve` on loopback, added --online on the source;
    subscribe with `subscribe(repository)`; the source's relay, export and status roles run."""
    from consumers.run import Runtime

    port = closed_port()
    src = make_server(tmp_path, "source", bus=memory_bus())
    dst = make_server(tmp_path, "destination", bus=memory_bus())
    prepare_source(src, tmp_path / "rpms", 3, ACTOR)
    prepare_destination(dst, src, tmp_path, ACTOR)
    url = f"http://127.0.0.1:{port}"
    subscriptions.add_destination(src.uow(), "dst", dst.server_id, dst.signer.public_pem, ACTOR, url=url)

    def subscribe(repository: str) -> None:
        subscriptions.subscribe(src.uow(), "dst", ORG, None, repository, ACTOR)

    runtimes = []
    try:
        with Served(dst, port):
            runtimes.append(Runtime(src, ("relay", "export", "status"), relay_poll=0.05).start())
            wait_own_changes_handled(src)
            yield src, dst, subscribe
    finally:
        for r in runtimes:
            r.shutdown()
        src.close()
        dst.close()


def test_a_repository_is_pushed_then_only_its_new_packages_and_each_push_acknowledged(online_pair, tmp_path):
    src, dst, subscribe = online_pair
    subscribe(UTILS)
    [first] = propagation.reconcile(src.uow(), src.source_context())  # nothing acknowledged: the whole repository
    assert first["kind"] == "full" and first["path"].endswith("/api/v1/imports/push")
    wait_until(lambda: subscription(src).acknowledged == digest(src, UTILS), T, "utils acknowledged on the source")
    assert digest(dst, UTILS) == digest(src, UTILS)
    sub = subscription(src)
    assert sub.in_flight is None and sub.in_flight_since is None and sub.rejections == 0
    answer = outbox(src, "iss.bundle.imported.v1")[0].body
    assert answer["source"] == dst.server_id
    assert (answer["data"]["product"], answer["data"]["repository"]) == (CUSTOM_PRODUCT, "utils")
    assert "content_view" not in answer["data"] and "version" not in answer["data"]

    before = packages(dst, UTILS)
    new = build_rpms(tmp_path / "rpms" / "utils-new", 2, prefix="utils-new-pkg")
    catalog.upload_packages(src.uow(), ORG, UTILS, new, ACTOR, src.server_id)  # repository.changed: the export worker
    wait_until(lambda: subscription(src).acknowledged == digest(src, UTILS), T, "the change acknowledged")
    assert digest(dst, UTILS) == digest(src, UTILS)
    assert len(packages(dst, UTILS) - before) == 2 and before <= packages(dst, UTILS)
    assert [(r.kind, r.state) for r in imports(dst)] == [("full", "imported"), ("incremental", "imported")]
    assert len(outbox(src, "iss.bundle.imported.v1")) == 2
    assert subscription(src).in_flight is None

    assert propagation.reconcile(src.uow(), src.source_context()) == []  # up to date: nothing more to push
    assert files_under(src.settings.exports_path) == []  # streamed, never written
    assert outbox(src, "iss.bundle.ready.v1") == []


def test_red_hat_content_into_a_custom_product_is_refused_with_its_reason_and_nothing_imported(online_pair):
    src, dst, subscribe = online_pair
    subscribe(BASEOS)
    with source_feeds_lab(dst, src, ACTOR):  # ACME -> ACME-Lab, whose custom product has the Red Hat label
        propagation.reconcile(src.uow(), src.source_context())
        wait_until(lambda: (subscription(src).rejections or 0) >= 1, T, "the rejection recorded on the source")
    sub = subscription(src)
    assert sub.acknowledged is None and sub.last_rejection.startswith("rule_violation: ")
    rejected = outbox(src, "iss.bundle.rejected.v1")[0].body["data"]
    assert (rejected["product"], rejected["repository"]) == (RH_PRODUCT, "baseos")
    assert rejected["reason"] == "rule_violation" and rejected["has"] is None
    assert any("custom" in p for p in rejected["problems"]), rejected["problems"]
    assert packages(dst, BASEOS, "ACME-Lab") == set() and packages(dst, BASEOS) == set()
    assert [r.state for r in imports(dst)] == ["rejected"]
    assert files_under(src.settings.exports_path) == []


def test_an_organization_the_destination_does_not_map_is_refused_and_nothing_imported(online_pair, tmp_path):
    src, dst, _ = online_pair
    catalog.create_organization(src.uow(), "Other Corp", "OTHER", ACTOR)  # the destination's trust maps no OTHER
    catalog.create_product(src.uow(), "OTHER", "Other Tools", "other-tools", False, None, ACTOR)
    catalog.create_repository(src.uow(), "OTHER", "other-tools", "utils", "utils", None, "yum", ACTOR)
    files = build_rpms(tmp_path / "rpms" / "other", 2, prefix="other-pkg")
    catalog.upload_packages(src.uow(), "OTHER", "other-tools/utils", files, ACTOR, src.server_id)
    subscriptions.subscribe(src.uow(), "dst", "OTHER", None, "other-tools/utils", ACTOR)
    [pushed] = propagation.reconcile(src.uow(), src.source_context())
    assert pushed["organization"] == "OTHER"
    wait_until(lambda: (subscription(src).rejections or 0) >= 1, T, "the rejection recorded on the source")
    sub = subscription(src)
    assert sub.acknowledged is None and sub.last_rejection.startswith("untrusted: ")
    assert "'OTHER'" in sub.last_rejection
    rejected = outbox(src, "iss.bundle.rejected.v1")[0].body["data"]
    assert (rejected["organization"], rejected["product"], rejected["repository"]) == ("OTHER", "other-tools", "utils")
    assert rejected["reason"] == "untrusted"
    with dst.session_factory() as s:
        assert s.scalars(select(m.ImportRecord.state)).all() == ["rejected"]
        assert s.scalars(select(m.Product.label).where(m.Product.label == "other-tools")).all() == []


def test_a_destination_that_lost_the_base_answers_base_mismatch_and_gets_the_whole_repository(online_pair, tmp_path):
    src, dst, subscribe = online_pair
    subscribe(UTILS)
    propagation.reconcile(src.uow(), src.source_context())
    wait_until(lambda: subscription(src).acknowledged == digest(src, UTILS), T, "utils acknowledged on the source")
    info = catalog.repository_info(dst.uow(), ORG, UTILS)
    catalog.remove_packages(dst.uow(), ORG, UTILS, info["packages"][:1], ACTOR, dst.server_id)  # not the base now
    new = build_rpms(tmp_path / "rpms" / "utils-new", 2, prefix="utils-new-pkg")
    catalog.upload_packages(src.uow(), ORG, UTILS, new, ACTOR, src.server_id)  # incremental from the lost base
    wait_until(lambda: subscription(src).acknowledged == digest(src, UTILS), T, "the repository acknowledged again")
    assert digest(dst, UTILS) == digest(src, UTILS)
    rejected = outbox(src, "iss.bundle.rejected.v1")[0].body["data"]
    assert rejected["reason"] == "base_mismatch" and rejected["repository"] == "utils"
    assert rejected["has"]["repositories"][0]["package_count"] == 2
    assert [(r.kind, r.state) for r in imports(dst)] == [("full", "imported"), (None, "rejected"), ("full", "imported")]
    assert subscription(src).rejections == 0 and files_under(src.settings.exports_path) == []


def test_the_version_pushed_is_the_one_in_flight_even_if_it_changed_since_it_was_looked_up(online_pair):
    """propagate reads the latest version, then plans the stream: a version added in between is the
    one sent, so it is what must be in flight (else its acknowledgement would not clear it)."""
    from iss_plugin.services.exporting import ExportRequest

    src, _dst, subscribe = online_pair
    subscribe(UTILS)
    stale = "sha256:" + "0" * 64
    with src.uow() as uow:
        sub = uow.session.scalars(select(m.Subscription)).one()
        request = ExportRequest(ORG, "repository", incremental=False, product=CUSTOM_PRODUCT, repository="utils")
        propagation._push(uow, sub, src.source_context(), request, stale, "test")
        uow.commit()
    # the push commits its answer itself: the status worker may have cleared the marker already
    # (it can, as it names the version sent; the stale digest would stay)
    assert subscription(src).in_flight in (digest(src, UTILS), None)
    wait_until(lambda: subscription(src).acknowledged == digest(src, UTILS), T, "utils acknowledged on the source")
    assert subscription(src).in_flight is None
