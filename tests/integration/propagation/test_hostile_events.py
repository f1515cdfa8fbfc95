"""bundle.ready events are not signed: the import worker trusts only the signed manifest, fetches
only from where it is allowed, and answers every refusal so the source knows (nothing imported)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from consumers.demo import ORG, make_server, prepare_destination, prepare_source
from iss_plugin.adapters.db import models as m
from iss_plugin.domain import events as ev
from iss_plugin.services import content_views, exporting, propagation


@pytest.fixture
def servers(tmp_path):
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


def ready(bundle: dict, location: str, **changes) -> dict:
    data = {
        "bundle_id": bundle["bundle_id"],
        "source_server": "source",
        "destination": "destination",
        "organization": ORG,
        "content_view": "base",
        "version": "1.0",
        "kind": "full",
        "base": None,
        "location": location,
        "format": "tgz",
        "size": bundle["size"],
        "repositories": [
            {"product": "p", "repository": "r", "package_count": 1, "package_set_digest": "sha256:" + "0" * 64}
        ],
    }
    data |= changes
    return ev.make_envelope(ev.BUNDLE_READY, "source", data)


def imported_versions(app) -> int:
    with app.session_factory() as s:
        return s.scalar(select(func.count()).select_from(m.ContentViewVersion))


def answers(app, event_type: str) -> list[dict]:
    with app.session_factory() as s:
        return [e.body["data"] for e in s.scalars(select(m.OutboxEvent).where(m.OutboxEvent.type == event_type))]


def test_a_good_event_is_answered_from_the_manifest(servers):
    _src, dst, path, bundle = servers
    # the event lies about the repositories: the answer carries what the signed manifest says
    result = propagation.on_bundle_ready(dst.uow(), ready(bundle, path.as_uri()), dst.destination_context())
    assert result["state"] == "imported"
    [answer] = answers(dst, ev.BUNDLE_IMPORTED)
    assert answer["version"] == "1.0" and len(answer["repositories"]) == 4
    assert {r["package_set_digest"] for r in answer["repositories"]} != {"sha256:" + "0" * 64}


@pytest.mark.parametrize(
    "changes, needle",
    [
        ({"version": "7.0"}, "version: the event says '7.0'"),
        ({"source_server": "someone-else"}, "source_server: the event says 'someone-else'"),
        ({"bundle_id": "not-this-bundle"}, "bundle_id: the event says 'not-this-bundle'"),
    ],
)
def test_an_event_that_misdescribes_its_bundle_is_refused(servers, changes, needle):
    _src, dst, path, bundle = servers
    before = imported_versions(dst)
    result = propagation.on_bundle_ready(dst.uow(), ready(bundle, path.as_uri(), **changes), dst.destination_context())
    assert result == {"state": "rejected", "reason": "rule_violation"}
    [answer] = answers(dst, ev.BUNDLE_REJECTED)
    assert any(needle in p for p in answer["problems"])
    assert imported_versions(dst) == before and answers(dst, ev.BUNDLE_IMPORTED) == []


def test_a_location_outside_the_fetch_roots_is_refused_before_anything_is_read(servers, tmp_path):
    _src, dst, path, bundle = servers
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.link(path, elsewhere / path.name)
    result = propagation.on_bundle_ready(
        dst.uow(), ready(bundle, (elsewhere / path.name).as_uri()), dst.destination_context()
    )
    assert result["reason"] == "untrusted"
    [answer] = answers(dst, ev.BUNDLE_REJECTED)
    assert "outside the directories this server fetches from" in answer["message"]
    incoming = dst.settings.imports_path / "incoming"
    assert not incoming.exists() or not any(incoming.iterdir())


def test_links_inside_a_directory_bundle_stay_links_and_are_refused(servers, tmp_path):
    _src, dst, _path, bundle = servers
    d = tmp_path / "source" / "evil"
    (d / "repos").mkdir(parents=True)
    (d / "manifest.json").write_text("{}")
    (d / "repos" / "x").symlink_to("/etc/hostname")
    result = propagation.on_bundle_ready(dst.uow(), ready(bundle, d.as_uri()), dst.destination_context())
    assert result["state"] == "rejected"
    assert imported_versions(dst) == 0


def test_an_unknown_organization_is_answered_not_left_in_flight(servers):
    _src, dst, path, bundle = servers
    result = propagation.on_bundle_ready(
        dst.uow(), ready(bundle, path.as_uri(), organization="NOPE"), dst.destination_context()
    )
    assert result["state"] == "rejected"
    [answer] = answers(dst, ev.BUNDLE_REJECTED)
    assert "bundle of organization 'NOPE' is refused" in answer["message"] and "--map NOPE=" in answer["message"]


def test_an_archive_that_is_not_the_announced_one_is_refused(servers):
    _src, dst, path, bundle = servers
    result = propagation.on_bundle_ready(
        dst.uow(), ready(bundle, path.as_uri(), sha256="0" * 64), dst.destination_context()
    )
    assert result["reason"] == "integrity"
    assert imported_versions(dst) == 0
