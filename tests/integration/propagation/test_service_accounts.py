"""Workers act as service accounts (settings export_account / import_account): an account that
lacks export_content / import_content in the organization is refused with reason `forbidden`,
nothing is exported or imported, and the denial is in the audit log. The import worker puts a
bundle where the trust's organization mapping says."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from consumers.demo import ORG, RH_CONTENT_ID, RH_PRODUCT, make_server, prepare_destination, prepare_source
from iss_plugin.adapters.bus import policy as bus_policy
from iss_plugin.adapters.db import models as m
from iss_plugin.domain import events as ev
from iss_plugin.domain.errors import Forbidden
from iss_plugin.services import catalog, content_views, exporting, propagation, subscriptions
from iss_plugin.services.identity import grant_role, revoke_role

from .test_hostile_events import answers, imported_versions, ready


@pytest.fixture
def servers(tmp_path):
    """A source with ACME/base 1.0 published and exported (tgz), a destination that trusts it."""
    src = make_server(tmp_path, "source")
    dst = make_server(tmp_path, "destination", fetch_roots=[str(tmp_path / "source")])
    prepare_source(src, tmp_path / "rpms", 3, "t")
    prepare_destination(dst, src, tmp_path, "t")
    content_views.publish(src.uow(), ORG, "base", None, "t", src.server_id)
    req = exporting.ExportRequest(
        organization=ORG, scope="content_view_version", incremental=False, content_view="base", fmt="tgz"
    )
    bundle = exporting.export_bundle(
        src.uow(), req, out_dir=src.settings.exports_path, signer=src.signer, server_id=src.server_id, actor="t"
    )
    yield src, dst, Path(bundle["path"]), bundle
    src.close()
    dst.close()


IMPORTER, EXPORTER = "Content Importer", "Content Exporter"


def audit_rows(app, action: str) -> list[m.AuditLog]:
    with app.session_factory() as s:
        return list(s.scalars(select(m.AuditLog).where(m.AuditLog.action == action).order_by(m.AuditLog.id)))


def import_records(app) -> list[tuple[str, str, str | None]]:
    with app.session_factory() as s:
        return [
            (r.organization, r.state, r.reason) for r in s.scalars(select(m.ImportRecord).order_by(m.ImportRecord.id))
        ]


def test_an_import_account_without_import_content_rejects_with_forbidden(servers):
    _src, dst, path, bundle = servers
    ctx = dst.destination_context()
    assert ctx.actor == "iss-import"
    revoke_role(dst.uow(), "iss-import", IMPORTER, None, "t")
    grant_role(dst.uow(), "iss-import", IMPORTER, "ACME-Lab", "t")  # granted, but in another organization

    result = propagation.on_bundle_ready(dst.uow(), ready(bundle, path.as_uri()), ctx)

    assert result == {"state": "rejected", "reason": "forbidden"}
    assert imported_versions(dst) == 0
    [answer] = answers(dst, ev.BUNDLE_REJECTED)
    assert answer["reason"] == "forbidden" and answer["organization"] == ORG
    assert "'iss-import'" in answer["message"] and "'import_content'" in answer["message"]
    assert f"organization '{ORG}'" in answer["message"]
    assert import_records(dst) == [(ORG, "rejected", "forbidden")]
    [denied] = audit_rows(dst, "permission.denied")
    assert (denied.actor, denied.organization, denied.outcome) == ("iss-import", ORG, "denied")
    [refused] = audit_rows(dst, "content.import")
    assert (refused.actor, refused.organization, refused.outcome) == ("iss-import", ORG, "denied")

    # granted where the bundle goes: the next delivery imports it
    grant_role(dst.uow(), "iss-import", IMPORTER, ORG, "t")
    result = propagation.on_bundle_ready(dst.uow(), ready(bundle, path.as_uri()), ctx)
    assert result["state"] == "imported" and imported_versions(dst) == 1
    imported = [r for r in audit_rows(dst, "content.import") if r.outcome == "success"]
    assert [(r.actor, r.organization) for r in imported] == [("iss-import", ORG)]


def test_the_import_worker_follows_the_trust_mapping(servers, tmp_path):
    src, dst, path, bundle = servers
    catalog.create_organization(dst.uow(), "ACME disaster recovery", "ACME-DR", "t")
    manifest = tmp_path / "dr.json"
    manifest.write_text(
        '{"manifest_id": "dr-1", "organization": "ACME-DR", "products": '
        f'[{{"label": "{RH_PRODUCT}", "name": "RHEL 9", "content_id": "{RH_CONTENT_ID}"}}]}}'
    )
    catalog.import_entitlement_manifest(dst.uow(), manifest, "t")
    catalog.add_trusted_source(dst.uow(), "source", src.signer.public_pem, {ORG: "ACME-DR"}, "t")

    result = propagation.on_bundle_ready(dst.uow(), ready(bundle, path.as_uri()), dst.destination_context())

    assert result["state"] == "imported" and result["organization"] == "ACME-DR"
    assert [v["version"] for v in content_views.list_versions(dst.uow(), "ACME-DR", "base")] == ["1.0"]
    assert content_views.list_content_views(dst.uow(), ORG) == []
    [answer] = answers(dst, ev.BUNDLE_IMPORTED)
    assert answer["organization"] == ORG  # the source's label: what it subscribed


def test_a_bundle_of_an_unmapped_organization_is_rejected_by_the_worker(servers):
    _src, dst, path, bundle = servers
    with dst.session_factory() as s:
        ts = s.scalars(select(m.TrustedSource)).one()
        ts.organizations = {"OTHER": ORG}  # the source's ACME maps nowhere here
        s.commit()

    result = propagation.on_bundle_ready(dst.uow(), ready(bundle, path.as_uri()), dst.destination_context())

    assert result == {"state": "rejected", "reason": "untrusted"}
    assert imported_versions(dst) == 0
    [answer] = answers(dst, ev.BUNDLE_REJECTED)
    assert f"bundle of organization '{ORG}' is refused" in answer["message"] and f"--map {ORG}=" in answer["message"]
    assert import_records(dst) == [(ORG, "rejected", "untrusted")]


def test_an_export_account_without_export_content_is_parked_as_forbidden(servers, tmp_path):
    src, dst, _path, _bundle = servers
    key = tmp_path / "dst.pub"
    key.write_text(dst.signer.public_pem)
    subscriptions.add_destination(src.uow(), "dc-east", dst.server_id, key.read_text(), "t")
    subscriptions.subscribe(src.uow(), "dc-east", ORG, "base", None, "t")
    ctx = src.source_context()
    assert ctx.actor == "iss-export"
    revoke_role(src.uow(), "iss-export", EXPORTER, None, "t")
    exports_before = _count(src, m.ExportRecord)
    published = content_views.publish(src.uow(), ORG, "base", "again", "t", src.server_id)
    with src.session_factory() as s:
        envelope = [
            e.body for e in s.scalars(select(m.OutboxEvent).where(m.OutboxEvent.type == ev.CONTENT_VIEW_PUBLISHED))
        ][-1]
    assert envelope["data"]["version"] == published["version"]

    with pytest.raises(Forbidden) as e:
        propagation.on_content_view_published(src.uow(), envelope, ctx)

    assert "'iss-export'" in e.value.message and "'export_content'" in e.value.message
    decision = bus_policy.on_error(e.value, 1, retry_delays_ms=(1,), max_attempts=3)
    assert decision.action is bus_policy.Action.PARK and decision.reason == "forbidden"
    assert _count(src, m.ExportRecord) == exports_before
    assert _count(src, m.OutboxEvent, m.OutboxEvent.type == ev.BUNDLE_READY) == 0
    [denied] = audit_rows(src, "permission.denied")
    assert (denied.actor, denied.organization, denied.outcome) == ("iss-export", ORG, "denied")

    grant_role(src.uow(), "iss-export", EXPORTER, ORG, "t")
    made = propagation.on_content_view_published(src.uow(), envelope, ctx)
    assert len(made) == 1 and _count(src, m.OutboxEvent, m.OutboxEvent.type == ev.BUNDLE_READY) == 1
    exported = audit_rows(src, "content.export")
    assert exported[-1].actor == "iss-export" and exported[-1].organization == ORG


def _count(app, model, *where) -> int:
    with app.session_factory() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_a_forbidden_next_export_does_not_undo_the_acknowledgement(servers, tmp_path):
    src, dst, _path, _bundle = servers
    key = tmp_path / "dst.pub"
    key.write_text(dst.signer.public_pem)
    subscriptions.add_destination(src.uow(), "dc-east", dst.server_id, key.read_text(), "t")
    subscriptions.subscribe(src.uow(), "dc-east", ORG, "base", None, "t")
    sctx, dctx = src.source_context(), dst.destination_context()
    [first] = propagation.reconcile(src.uow(), sctx)  # 1.0 goes out
    ready_1 = _outbox(src, ev.BUNDLE_READY)[-1]
    content_views.publish(src.uow(), ORG, "base", "2.0", "t", src.server_id)  # waits: 1.0 is in flight
    assert propagation.on_bundle_ready(dst.uow(), ready_1, dctx)["state"] == "imported"
    answer = _outbox(dst, ev.BUNDLE_IMPORTED)[-1]
    revoke_role(src.uow(), "iss-export", EXPORTER, None, "t")

    assert propagation.on_bundle_status(src.uow(), answer, sctx) is None  # no next bundle: forbidden

    with src.session_factory() as s:
        sub = s.scalars(select(m.Subscription)).one()
        assert (sub.acknowledged, sub.in_flight) == (first["version"], None)  # the answer still counted
    assert len(_outbox(src, ev.BUNDLE_READY)) == 1
    [denied] = audit_rows(src, "permission.denied")
    assert (denied.actor, denied.organization) == ("iss-export", ORG)


def _outbox(app, event_type: str) -> list[dict]:
    with app.session_factory() as s:
        q = select(m.OutboxEvent).where(m.OutboxEvent.type == event_type).order_by(m.OutboxEvent.id)
        return [e.body for e in s.scalars(q)]


def test_an_up_to_date_subscription_asks_for_no_permission(servers, tmp_path):
    src, dst, _path, _bundle = servers
    key = tmp_path / "dst.pub"
    key.write_text(dst.signer.public_pem)
    subscriptions.add_destination(src.uow(), "dc-east", dst.server_id, key.read_text(), "t")
    subscriptions.subscribe(src.uow(), "dc-east", ORG, "base", None, "t")
    sctx = src.source_context()
    propagation.reconcile(src.uow(), sctx)
    propagation.on_bundle_ready(dst.uow(), _outbox(src, ev.BUNDLE_READY)[-1], dst.destination_context())
    propagation.on_bundle_status(src.uow(), _outbox(dst, ev.BUNDLE_IMPORTED)[-1], sctx)
    revoke_role(src.uow(), "iss-export", EXPORTER, None, "t")

    assert propagation.reconcile(src.uow(), sctx, resend_in_flight=True) == []  # nothing to send: no check
    assert audit_rows(src, "permission.denied") == []
    content_views.publish(src.uow(), ORG, "base", "2.0", "t", src.server_id)
    assert propagation.reconcile(src.uow(), sctx) == []  # something to send: denied, logged, audited
    assert [r.actor for r in audit_rows(src, "permission.denied")] == ["iss-export"]
