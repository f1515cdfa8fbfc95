"""A fan-out's cost per destination (issue 13): one version to many subscribers reads the content
view, the export account's grants and the shared bundle once per event, not once per subscriber;
what grows with the subscribers is only their own rows (the bundle.ready events, their updates)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event, select

from consumers.demo import CUSTOM_PRODUCT, ORG, make_server
from iss_plugin.adapters.db import models as m
from iss_plugin.adapters.db.models import Subscription
from iss_plugin.adapters.fixtures import build_rpms
from iss_plugin.bootstrap import App
from iss_plugin.domain import events as ev
from iss_plugin.services import catalog, content_views, fanout, propagation, subscriptions

from .conftest import ACTOR, outbox


def _public_pem() -> str:
    key = Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _source(root: Path, destinations: int) -> tuple[App, str]:
    """A source whose view 'tools' has `destinations` subscribers; (it, the published event's id)."""
    src = make_server(root, "source")
    catalog.create_organization(src.uow(), "ACME Corp", ORG, ACTOR)
    catalog.create_product(src.uow(), ORG, "ACME Tools", CUSTOM_PRODUCT, False, None, ACTOR)
    catalog.create_repository(src.uow(), ORG, CUSTOM_PRODUCT, "tools", "tools", None, "yum", ACTOR)
    files = build_rpms(root / "rpms", 3, prefix="tools-pkg")
    catalog.upload_packages(src.uow(), ORG, f"{CUSTOM_PRODUCT}/tools", files, ACTOR, src.server_id)
    content_views.create_content_view(src.uow(), ORG, "tools", "tools", True, [f"{CUSTOM_PRODUCT}/tools"], ACTOR)
    for i in range(destinations):
        subscriptions.add_destination(src.uow(), f"d{i}", f"d{i}", _public_pem(), ACTOR)
        subscriptions.subscribe(src.uow(), f"d{i}", ORG, "tools", None, ACTOR)
    return src, content_views.publish(src.uow(), ORG, "tools", None, ACTOR, src.server_id)["event_id"]


def _fan_out(root: Path, destinations: int) -> tuple[Counter[str], list[propagation.Propagated], list[str]]:
    """(SELECTs by table, what was announced, bundle.ready destinations) of one published version."""
    src, event_id = _source(root, destinations)
    try:
        with src.session_factory() as s:
            envelope = s.scalar(select(m.OutboxEvent).where(m.OutboxEvent.event_id == event_id)).body
        selects: Counter[str] = Counter()

        def count(conn, cursor, statement: str, *args) -> None:
            if statement.lstrip().upper().startswith("SELECT"):
                found = re.search(r"\bFROM\s+(\w+)", statement)
                selects[found.group(1) if found else statement[:40]] += 1

        event.listen(src.engine, "before_cursor_execute", count)
        try:
            made = propagation.on_content_view_published(src.uow(), envelope, src.source_context())
        finally:
            event.remove(src.engine, "before_cursor_execute", count)
        ready = sorted(e.body["data"]["destination"] for e in outbox(src, ev.BUNDLE_READY))
        return selects, made, ready
    finally:
        src.close()


def test_reads_per_fan_out_do_not_grow_with_the_destinations(tmp_path):
    few, _, ready_few = _fan_out(tmp_path / "two", 2)
    many, made_many, ready_many = _fan_out(tmp_path / "eight", 8)
    assert ready_few == ["d0", "d1"]
    assert ready_many == [f"d{i}" for i in range(8)]
    assert len({b["bundle_id"] for b in made_many}) == 1  # one bundle for all eight
    assert many == few, f"reads that grow with the destinations: {many - few}"


def test_a_bundle_retired_in_a_transaction_is_not_chosen_again_in_it(tmp_path):
    src, _ = _source(tmp_path, 2)
    try:
        uow = src.uow()
        with uow:
            first, second = uow.session.scalars(select(Subscription).order_by(Subscription.id)).all()
            sent = propagation.propagate(uow, first, src.source_context(), reason="test")
            assert sent is not None
            fanout.retire(uow, sent["bundle_id"])
            again = propagation.propagate(uow, second, src.source_context(), reason="test")
            assert again is not None and again["bundle_id"] != sent["bundle_id"]
    finally:
        src.close()
