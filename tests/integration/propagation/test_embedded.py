"""Automatic propagation on the embedded default: one process, kombu memory://, SQLite, two servers
(each an `App` with its own data directory and database) like `iss demo`.

The source runs relay, export, status and reconcile; the destination relay and import. Nobody
types a command between the publish on the source and the version being live on the destination."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from consumers.demo import CUSTOM_PRODUCT, ORG, RH_PRODUCT
from iss_plugin.adapters.db import models as m
from iss_plugin.adapters.fixtures import build_rpms
from iss_plugin.domain import events as ev
from iss_plugin.services import catalog, content_views, propagation, subscriptions

from .conftest import (
    ACTOR,
    add_subscriber,
    count,
    exports,
    imports,
    make_pair,
    memory_bus,
    outbox,
    pins,
    publish,
    send_raw,
    subscription,
    versions,
    wait_until,
)

SOURCE_ROLES = ("relay", "export", "status", "reconcile")
DESTINATION_ROLES = ("relay", "import")
T = 30  # seconds: generous, the flows take well under one


def change_source(pair, tag: str, add: int = 3, remove: int = 2) -> None:
    files = build_rpms(pair.root / "rpms" / tag, add, prefix=f"{tag}-pkg", version="2.0")
    catalog.upload_packages(pair.src.uow(), ORG, f"{CUSTOM_PRODUCT}/utils", files, ACTOR, pair.src.server_id)
    if remove:
        info = catalog.repository_info(pair.src.uow(), ORG, f"{RH_PRODUCT}/baseos")
        catalog.remove_packages(
            pair.src.uow(), ORG, f"{RH_PRODUCT}/baseos", info["packages"][:remove], ACTOR, pair.src.server_id
        )


def processed(app, event_id: str, consumer: str) -> bool:
    return (
        count(app, m.ProcessedEvent, m.ProcessedEvent.event_id == event_id, m.ProcessedEvent.consumer == consumer) == 1
    )


def test_blessed_view_arrives_full_then_incremental_with_exact_digests(embedded):
    src, dst = embedded.src, embedded.dst
    embedded.run(src, *SOURCE_ROLES)
    embedded.run(dst, *DESTINATION_ROLES)

    publish(src)
    wait_until(lambda: "1.0" in versions(dst), T, "1.0 on the destination")
    assert [(e.version, e.kind) for e in exports(src)] == [("1.0", "full")]
    assert pins(dst, "1.0") == pins(src, "1.0")

    change_source(embedded, "second")
    publish(src)
    wait_until(lambda: "2.0" in versions(dst), T, "2.0 on the destination")
    assert [(e.version, e.kind, e.base) for e in exports(src)] == [("1.0", "full", None), ("2.0", "incremental", "1.0")]
    assert pins(dst, "2.0") == pins(src, "2.0")
    assert pins(dst, "2.0") != pins(dst, "1.0")
    wait_until(lambda: subscription(src).acknowledged == "2.0", T, "the source to record the acknowledgement")
    assert subscription(src).in_flight is None

    # a burst of publishes: each version arrives, each exported once (one in flight at a time)
    for i in range(3):
        change_source(embedded, f"burst{i}", add=1, remove=0)
        publish(src)
    wait_until(lambda: versions(dst) == ["1.0", "2.0", "3.0", "4.0", "5.0"], T, "3.0, 4.0 and 5.0 on the destination")
    assert [(e.version, e.kind, e.base) for e in exports(src)][2:] == [
        ("3.0", "incremental", "2.0"),
        ("4.0", "incremental", "3.0"),
        ("5.0", "incremental", "4.0"),
    ]
    assert [(i.version, i.state) for i in imports(dst)] == [(f"{n}.0", "imported") for n in range(1, 6)]
    for v in ("3.0", "4.0", "5.0"):
        assert pins(dst, v) == pins(src, v)


def test_unblessed_view_does_not_propagate(embedded):
    src, dst = embedded.src, embedded.dst
    content_views.create_content_view(src.uow(), ORG, "Extras", "extras", False, [f"{CUSTOM_PRODUCT}/utils"], ACTOR)
    subscriptions.subscribe(src.uow(), dst.server_id, ORG, "extras", None, ACTOR)
    embedded.run(src, *SOURCE_ROLES)
    embedded.run(dst, *DESTINATION_ROLES)

    event_id = publish(src, "extras")["event_id"]
    wait_until(lambda: processed(src, event_id, "export"), T, "the export worker to handle the publish")
    reconcile_made = propagation.reconcile(src.uow(), src.source_context())
    assert reconcile_made == []  # reconcile does not send it either
    assert exports(src, content_view="extras") == []
    assert versions(dst, "extras") == []

    content_views.set_blessed(src.uow(), ORG, "extras", True, ACTOR)  # blessed now: the next publish goes
    publish(src, "extras")
    wait_until(lambda: versions(dst, "extras") == ["2.0"], T, "extras 2.0 on the destination")
    assert [(e.version, e.kind) for e in exports(src, content_view="extras")] == [("2.0", "full")]


def test_repository_subscription_propagates_on_upload(tmp_path):
    pair = make_pair(tmp_path, memory_bus(), subscribe=False)
    try:
        src, dst = pair.src, pair.dst
        key = tmp_path / "dst.pub"
        key.write_text(dst.signer.public_pem)
        subscriptions.add_destination(src.uow(), "east", dst.server_id, key.read_text(), ACTOR)
        subscriptions.subscribe(src.uow(), "east", ORG, None, f"{CUSTOM_PRODUCT}/utils", ACTOR)
        pair.run(src, *SOURCE_ROLES)
        pair.run(dst, *DESTINATION_ROLES)

        def digest(app):
            try:
                return catalog.repository_info(app.uow(), ORG, f"{CUSTOM_PRODUCT}/utils")["package_set_digest"]
            except Exception:
                return None

        # reconcile sends what the repository holds now; only then upload, so the order is fixed
        wait_until(lambda: digest(dst) == digest(src), T, "utils on the destination")
        assert [e.kind for e in exports(src, repository="utils")] == ["full"]
        wait_until(lambda: subscription(src).in_flight is None, T, "the acknowledgement")

        for n, tag in enumerate(("up1", "up2"), start=1):
            before = digest(src)
            files = build_rpms(tmp_path / "rpms" / tag, n + 1, prefix=f"{tag}-pkg")
            catalog.upload_packages(src.uow(), ORG, f"{CUSTOM_PRODUCT}/utils", files, ACTOR, src.server_id)
            assert digest(src) != before
            wait_until(lambda: digest(dst) == digest(src), T, f"upload {tag} on the destination")
            assert [e.kind for e in exports(src, repository="utils")] == ["full"] + ["incremental"] * n
        info = catalog.repository_info(dst.uow(), ORG, f"{CUSTOM_PRODUCT}/utils")
        assert (
            info["package_count"] == catalog.repository_info(src.uow(), ORG, f"{CUSTOM_PRODUCT}/utils")["package_count"]
        )
        assert versions(dst) == []  # only the repository was subscribed
    finally:
        pair.close()


def test_the_same_event_three_times_gives_one_export_and_one_import(embedded):
    src, dst = embedded.src, embedded.dst
    published = publish(src)
    with src.session_factory() as s:  # the relay must not send it: we deliver it ourselves, three times
        row = s.scalar(select(m.OutboxEvent).where(m.OutboxEvent.event_id == published["event_id"]))
        envelope, key = row.body, row.routing_key
        s.execute(update(m.OutboxEvent).where(m.OutboxEvent.id == row.id).values(sent_at=m.utcnow()))
        s.commit()
    importer = embedded.run(dst, *DESTINATION_ROLES).workers[0]
    exporter = embedded.run(src, *SOURCE_ROLES).workers[0]  # its export queue is declared now
    for _ in range(3):
        send_raw(embedded.bus, envelope, key)
    wait_until(lambda: "1.0" in versions(dst), T, "1.0 on the destination")
    wait_until(lambda: subscription(src).acknowledged == "1.0", T, "the acknowledgement")
    announced = len(outbox(src, ev.REPOSITORY_CHANGED))  # the uploads' events go to the export worker too
    wait_until(lambda: exporter.stats["acked"] == announced + 3, T, "all three deliveries handled")

    ready = outbox(src, ev.BUNDLE_READY)
    assert len(ready) == 1
    for _ in range(2):  # and the bundle.ready twice more, straight onto the bus
        send_raw(embedded.bus, ready[0].body, ready[0].routing_key)
    wait_until(lambda: importer.stats["acked"] == 3, T, "all three bundle.ready handled")
    assert exporter.stats["parked"] == importer.stats["parked"] == 0
    embedded.close()  # stop the workers: every delivery has been handled or is dropped with the process
    embedded.runtimes.clear()

    assert count(src, m.ProcessedEvent, m.ProcessedEvent.event_id == envelope["id"]) == 1
    assert len(exports(src)) == 1 and count(src, m.ExportRecord) == 1
    assert [(i.version, i.state) for i in imports(dst)] == [("1.0", "imported")]  # no "already_imported" either
    assert versions(dst) == ["1.0"]
    assert len(outbox(dst, ev.BUNDLE_IMPORTED)) == 1
    assert pins(dst, "1.0") == pins(src, "1.0")


def test_base_mismatch_replans_without_a_human(tmp_path):
    """The source believes the destination holds 1.0; it holds nothing. The incremental 1.0 -> 2.0 is
    rejected with base_mismatch (and what the destination has); the source sends a full bundle by itself."""
    pair = make_pair(tmp_path, memory_bus(), subscribe=False)
    try:
        src, dst = pair.src, pair.dst
        publish(src)
        add_subscriber(src, dst, tmp_path)
        with src.session_factory() as s:
            s.execute(update(m.Subscription).values(acknowledged="1.0"))
            s.commit()
        pair.run(src, *SOURCE_ROLES)
        pair.run(dst, *DESTINATION_ROLES)
        change_source(pair, "second")
        publish(src)
        wait_until(lambda: versions(dst) == ["2.0"], T, "2.0 on the destination")

        rejected = imports(dst, state="rejected")
        assert [r.reason for r in rejected] == ["base_mismatch"]
        answer = outbox(dst, ev.BUNDLE_REJECTED)[0].body["data"]
        assert answer["reason"] == "base_mismatch" and answer["has"] is None
        assert [(e.version, e.kind, e.base) for e in exports(src)] == [
            ("2.0", "incremental", "1.0"),
            ("2.0", "full", None),
        ]
        assert pins(dst, "2.0") == pins(src, "2.0")
        wait_until(lambda: subscription(src).acknowledged == "2.0", T, "the acknowledgement")

        publish(src)  # and it goes on from there, incrementally
        wait_until(lambda: versions(dst) == ["2.0", "3.0"], T, "3.0 on the destination")
        assert (exports(src)[-1].kind, exports(src)[-1].base) == ("incremental", "2.0")
    finally:
        pair.close()


def test_base_mismatch_replans_from_what_the_destination_has(embedded):
    """The destination holds 1.0; the source wrongly believes 2.0. Its 2.0 -> 3.0 is rejected with
    has = 1.0; the source goes on from 1.0 by itself: 2.0 (from 1.0), then 3.0 (from 2.0)."""
    src, dst = embedded.src, embedded.dst
    embedded.run(src, "relay", "status", "reconcile")
    exporter = embedded.run(src, "export")
    embedded.run(dst, *DESTINATION_ROLES)
    publish(src)
    wait_until(lambda: versions(dst) == ["1.0"] and subscription(src).acknowledged == "1.0", T, "1.0 acknowledged")

    embedded.stop(exporter)  # the publish events wait in the export queue
    change_source(embedded, "second")
    publish(src)
    with src.session_factory() as s:
        s.execute(update(m.Subscription).values(acknowledged="2.0"))
        s.commit()
    change_source(embedded, "third", remove=0)
    publish(src)
    embedded.run(src, "export")
    wait_until(lambda: versions(dst) == ["1.0", "2.0", "3.0"], T, "2.0 and 3.0 on the destination")

    rejected = outbox(dst, ev.BUNDLE_REJECTED)
    assert [(r.body["data"]["reason"], r.body["data"]["has"]["content_view_version"]) for r in rejected] == [
        ("base_mismatch", "1.0")
    ]
    assert [(e.version, e.kind, e.base) for e in exports(src)] == [
        ("1.0", "full", None),
        ("3.0", "incremental", "2.0"),  # refused for its base only: sent again later, not rebuilt
        ("2.0", "incremental", "1.0"),
    ]
    for v in ("2.0", "3.0"):
        assert pins(dst, v) == pins(src, v)
    wait_until(lambda: subscription(src).acknowledged == "3.0", T, "the acknowledgement of 3.0")


def test_reconcile_sends_what_events_did_not(embedded):
    """No export worker: the publish event goes nowhere. Reconcile notices the destination is behind
    and sends the bundle; a bundle nobody answered is sent again only after the grace time."""
    src, dst = embedded.src, embedded.dst
    ctx = src.source_context()
    embedded.run(src, "relay", "status")
    dst_runtime = embedded.run(dst, *DESTINATION_ROLES)
    publish(src)
    assert propagation.reconcile(src.uow(), ctx) != []
    wait_until(lambda: versions(dst) == ["1.0"], T, "1.0 on the destination")
    wait_until(lambda: subscription(src).acknowledged == "1.0", T, "the acknowledgement")
    assert propagation.reconcile(src.uow(), ctx) == []  # up to date: nothing to do

    embedded.stop(dst_runtime)  # the destination is down: its bundle.ready is never answered
    change_source(embedded, "second")
    publish(src)
    sent = propagation.reconcile(src.uow(), ctx)
    assert [(b["version"], b["kind"]) for b in sent] == [("2.0", "incremental")]
    assert propagation.reconcile(src.uow(), ctx) == []  # in flight, within the grace time
    later = propagation.reconcile(src.uow(), ctx, now=m.utcnow() + ctx.grace + timedelta(seconds=1))
    assert [(b["version"], b["kind"]) for b in later] == [("2.0", "incremental")]  # lost: sent again

    embedded.run(dst, *DESTINATION_ROLES)  # both bundle.ready wait in its queue: one imports, one is a no-op
    wait_until(lambda: versions(dst) == ["1.0", "2.0"], T, "2.0 on the destination")
    assert pins(dst, "2.0") == pins(src, "2.0")
    assert [i.state for i in imports(dst) if i.version == "2.0"].count("imported") == 1


def test_a_refused_bundle_is_sent_again_later_each_time_and_the_count_resets_once_imported(embedded):
    """The destination does not trust the source (yet): every bundle is refused. Reconcile sends it
    again after the grace time, then after twice that, and so on: a refusal needs someone to fix
    the destination, rebuilding the bundle every pass only loads the source. The refusals in a row
    and the last reason are on the subscription (`iss destination list`); an import resets them."""
    src, dst = embedded.src, embedded.dst
    ctx = src.source_context()
    with dst.session_factory() as s:
        trusted = [(t.name, t.public_key, t.organizations) for t in s.scalars(select(m.TrustedSource))]
        s.execute(m.TrustedSource.__table__.delete())
        s.commit()
    embedded.run(src, "relay", "status")
    embedded.run(dst, *DESTINATION_ROLES)
    publish(src)
    assert len(propagation.reconcile(src.uow(), ctx)) == 1
    wait_until(lambda: subscription(src).rejections == 1, T, "the first refusal")
    assert subscription(src).last_rejection.startswith("untrusted")
    [listed] = subscriptions.list_subscriptions(src.uow())
    assert (listed["rejections"], listed["last_rejection"]) == (1, subscription(src).last_rejection)

    def sent_after(wait: timedelta) -> int:
        return len(propagation.reconcile(src.uow(), ctx, now=m.utcnow() + wait + timedelta(seconds=1)))

    assert sent_after(ctx.grace) == 1  # one refusal: the grace time
    wait_until(lambda: subscription(src).rejections == 2, T, "the second refusal")
    assert sent_after(ctx.grace) == 0  # two in a row: twice the grace time
    assert sent_after(2 * ctx.grace) == 1
    wait_until(lambda: subscription(src).rejections == 3, T, "the third refusal")
    assert sent_after(2 * ctx.grace) == 0

    for name, key, orgs in trusted:  # the destination's admin fixes it, and says so (`iss reconcile --now`)
        catalog.add_trusted_source(dst.uow(), name, key, orgs, ACTOR)
    assert len(propagation.reconcile(src.uow(), ctx, resend_in_flight=True)) == 1
    wait_until(lambda: subscription(src).acknowledged == "1.0", T, "the acknowledgement of 1.0")
    assert (subscription(src).rejections, subscription(src).last_rejection) == (0, None)
    assert versions(dst) == ["1.0"]
