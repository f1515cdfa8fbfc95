"""Bulk export and import tasks, task status, bundle list and ranged downloads, uploads."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import func, select

from consumers.demo import ORG
from iss_plugin.adapters.db import models as m
from iss_plugin.adapters.db.task_models import Task
from iss_plugin.services import tasks


def export_tgz(api, **extra) -> dict:
    body = {"organization": ORG, "content_views": ["base"], "format": "tgz", **extra}
    r = api.client.post("/api/v1/exports", json=body, headers=api.auth("exporter"))
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/api/v1/tasks/{r.json()['task_id']}"
    return api.task(r.headers["location"], "exporter")


def count(app, model) -> int:
    with app.session_factory() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_bulk_export_of_a_view_and_a_repository_writes_both_bundles(api):
    body = {"organization": ORG, "content_views": ["base"], "repositories": ["acme-tools/utils"], "format": "tgz"}
    r = api.client.post("/api/v1/exports", json=body, headers=api.auth("exporter"))
    assert r.status_code == 202 and r.json()["state"] == "queued"
    task = api.task(r.headers["location"], "exporter")
    assert task["state"] == "done", task
    bundles = task["result"]["bundles"]
    assert [b["what"] for b in bundles] == ["content view base", "repository acme-tools/utils"]
    for b in bundles:
        assert Path(b["path"]).is_file() and Path(b["path"]).stat().st_size == b["size"] > 0
    assert task["result"]["failed"] == []


def test_export_refusals(api):
    c, body = api.client, {"organization": ORG, "content_views": ["base"]}
    assert c.post("/api/v1/exports", json=body).status_code == 401
    assert c.post("/api/v1/exports", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert c.post("/api/v1/exports", json=body, headers=api.auth("viewer")).status_code == 403
    assert c.post("/api/v1/exports", json=body, headers=api.auth("other")).status_code == 403  # wrong organization
    missing = {"organization": ORG, "content_views": ["nope"]}
    assert c.post("/api/v1/exports", json=missing, headers=api.auth("exporter")).status_code == 404
    bad = {"organization": ORG, "content_views": ["base"], "format": "zip"}
    assert c.post("/api/v1/exports", json=bad, headers=api.auth("exporter")).status_code == 422
    empty = {"organization": ORG}
    assert c.post("/api/v1/exports", json=empty, headers=api.auth("exporter")).status_code == 400
    assert count(api.app, Task) == 0  # nothing was queued
    with api.app.session_factory() as s:
        denied = s.scalars(select(m.AuditLog).where(m.AuditLog.action == "permission.denied")).all()
    assert [(d.actor, d.action, d.organization) for d in denied] == [
        ("viewer", "permission.denied", ORG),
        ("other", "permission.denied", ORG),
    ]


def test_a_failed_export_is_a_failed_task_with_its_reason(api):
    task = export_tgz(api, incremental=True)  # no earlier export to start from
    assert task["state"] == "failed" and task["reason"] == "not_found"
    assert "no earlier export" in task["error"]


def test_incremental_since_a_date(api):
    from datetime import UTC, datetime

    from iss_plugin.services import content_views

    between = datetime.now(UTC).isoformat()
    content_views.publish(api.app.uow(), ORG, "base", None, "test", api.app.server_id)
    task = export_tgz(api, incremental=True, since=between)
    assert task["state"] == "done", task
    assert task["result"]["bundles"][0]["kind"] == "incremental"
    with api.app.session_factory() as s:
        record = s.scalars(select(m.ExportRecord).where(m.ExportRecord.state == "done")).one()
        assert (record.version, record.base) == ("2.0", "1.0")


def test_task_status_refusals(api):
    task = export_tgz(api)
    where = f"/api/v1/tasks/{task['id']}"
    assert api.client.get(where).status_code == 401
    assert api.client.get(where, headers=api.auth("other")).status_code == 403
    assert api.client.get(where, headers=api.auth("admin")).status_code == 200
    assert api.client.get("/api/v1/tasks/nope", headers=api.auth("admin")).status_code == 404


def test_interrupted_tasks_fail_on_start_up(api):
    made = tasks.create(api.app.uow(), "export", ORG, "exporter", {})
    api.client.app.state.task_runner.start()
    got = api.task(f"/api/v1/tasks/{made['id']}", "exporter")
    assert got["state"] == "failed" and got["reason"] == "interrupted"


def test_bundle_list_and_range_requests_resume_a_download(api):
    bundle = export_tgz(api)["result"]["bundles"][0]
    archive = Path(bundle["path"]).read_bytes()
    listed = api.client.get("/api/v1/bundles", headers=api.auth("exporter")).json()
    assert [b["bundle_id"] for b in listed] == [bundle["bundle_id"]]
    assert api.client.get("/api/v1/bundles", headers=api.auth("other")).json() == []
    assert api.client.get("/api/v1/bundles", headers=api.auth("viewer")).status_code == 403
    url = f"/api/v1/bundles/{bundle['bundle_id']}/download"
    whole = api.client.get(url, headers=api.auth("exporter"))
    assert whole.status_code == 200 and whole.content == archive
    assert whole.headers["etag"] == f'"{hashlib.sha256(archive).hexdigest()}"'
    assert whole.headers["accept-ranges"] == "bytes"
    cut = len(archive) // 3
    first = api.client.get(url, headers={**api.auth("exporter"), "Range": f"bytes=0-{cut - 1}"})
    assert first.status_code == 206 and first.headers["content-range"] == f"bytes 0-{cut - 1}/{len(archive)}"
    rest = api.client.get(
        url, headers={**api.auth("exporter"), "Range": f"bytes={cut}-", "If-Range": whole.headers["etag"]}
    )
    assert rest.status_code == 206
    assert first.content + rest.content == archive
    tail = api.client.get(url, headers={**api.auth("exporter"), "Range": "bytes=-10"})
    assert tail.content == archive[-10:]
    beyond = api.client.get(url, headers={**api.auth("exporter"), "Range": f"bytes={len(archive)}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(archive)}"
    assert api.client.get(url).status_code == 401
    assert api.client.get(url, headers=api.auth("other")).status_code == 403
    assert api.client.get("/api/v1/bundles/nope/download", headers=api.auth("exporter")).status_code == 404


def test_a_directory_bundle_downloads_as_a_tar_gz(api, tmp_path):
    import tarfile

    bundle = export_tgz(api, format="dir")["result"]["bundles"][0]
    r = api.client.get(f"/api/v1/bundles/{bundle['bundle_id']}/download", headers=api.auth("exporter"))
    assert r.status_code == 200 and r.headers["accept-ranges"] == "none"
    out = tmp_path / "dir.tar.gz"
    out.write_bytes(r.content)
    with tarfile.open(out) as tar:
        names = tar.getnames()
    assert "manifest.json" in names and any(n.endswith(".rpm") for n in names)


def test_a_chunked_bundle_downloads_joined(api):
    bundle = export_tgz(api, chunk_size_mb=0.01)["result"]["bundles"][0]
    parts = sorted(
        p
        for p in Path(bundle["path"]).parent.iterdir()
        if p.name.startswith(Path(bundle["path"]).name[:-4]) and p.suffix != ".json"
    )
    joined = b"".join(p.read_bytes() for p in parts)
    r = api.client.get(f"/api/v1/bundles/{bundle['bundle_id']}/download", headers=api.auth("exporter"))
    assert r.status_code == 200 and r.content == joined and len(parts) > 1
    mid = api.client.get(
        f"/api/v1/bundles/{bundle['bundle_id']}/download", headers={**api.auth("exporter"), "Range": "bytes=5000-15000"}
    )
    assert mid.content == joined[5000:15001]


def upload(api, name: str, data: bytes, sha: str | None = None, user: str = "importer"):
    headers = {**api.auth(user), "X-Content-SHA256": sha or hashlib.sha256(data).hexdigest()}
    return api.client.put(f"/api/v1/uploads/{name}?organization={ORG}", content=data, headers=headers)


def test_upload_then_import_into_another_server(api, tmp_path):
    """An export downloaded from one server, uploaded into another and imported there."""
    from fastapi.testclient import TestClient

    from consumers.demo import make_server, prepare_destination
    from iss_plugin.web.app import create_app

    from .conftest import tokens_for

    bundle = export_tgz(api)["result"]["bundles"][0]
    data = api.client.get(f"/api/v1/bundles/{bundle['bundle_id']}/download", headers=api.auth("exporter")).content
    dst = make_server(tmp_path / "d", "destination")
    try:
        prepare_destination(dst, api.app, tmp_path / "d", "test")
        from iss_plugin.services import catalog

        catalog.create_organization(dst.uow(), "Other Corp", "OTHER", "test")
        with TestClient(create_app(dst)) as client:
            other = type(api)(dst, client, tokens_for(dst))
            r = upload(other, "base.tar.gz", data)
            assert r.status_code == 201, r.text
            assert r.json() == {"name": "base.tar.gz", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            assert upload(other, "base.tar.gz", data).status_code == 400  # exists
            r = client.post(
                "/api/v1/imports", json={"organization": ORG, "upload": "base.tar.gz"}, headers=other.auth("importer")
            )
            assert r.status_code == 202, r.text
            task = other.task(r.headers["location"], "importer")
            assert task["state"] == "done", task
            assert task["result"]["state"] == "imported" and task["result"]["version"] == "1.0"
            with dst.session_factory() as s:
                assert s.scalar(select(func.count()).select_from(m.ImportRecord)) == 1
    finally:
        dst.close()


def test_upload_with_a_wrong_checksum_is_refused_and_leaves_nothing(api):
    folder = api.app.settings.imports_path / "uploads"
    r = upload(api, "x.tar.gz", b"some bytes", sha="0" * 64)
    assert r.status_code == 422 and r.json()["reason"] == "integrity"
    assert list(folder.iterdir()) == []
    assert upload(api, "x.tar.gz", b"abc", sha="nothex").status_code == 400
    assert upload(api, "x.tar.gz", b"abc", user="viewer").status_code == 403
    r = api.client.put("/api/v1/uploads/x.tar.gz", content=b"abc", headers={"X-Content-SHA256": "0" * 64})
    assert r.status_code == 401
    assert upload(api, "..evil", b"abc").status_code == 422
    assert list(folder.iterdir()) == []


def test_upload_larger_than_the_limit_is_refused(tmp_path):
    from fastapi.testclient import TestClient

    from iss_plugin.web.app import create_app

    from .conftest import make_source, tokens_for

    app = make_source(tmp_path, web_max_upload_mb=1)
    try:
        with TestClient(create_app(app)) as client:
            small = type("A", (), {})()
            small.client, small.tokens = client, tokens_for(app)
            small.auth = lambda u: {"Authorization": f"Bearer {small.tokens[u]}"}
            data = b"x" * (1024 * 1024 + 1)
            assert upload(small, "big.tar.gz", data).status_code == 413  # by its Content-Length
            headers = {**small.auth("importer"), "X-Content-SHA256": hashlib.sha256(data).hexdigest()}
            chunked = client.put(  # no Content-Length: counted while it streams
                f"/api/v1/uploads/big.tar.gz?organization={ORG}",
                content=iter([data[:600_000], data[600_000:]]),
                headers=headers,
            )
            assert chunked.status_code == 413
            folder = app.settings.imports_path / "uploads"
            assert not folder.exists() or list(folder.iterdir()) == []
    finally:
        app.close()


def test_import_refusals(api):
    c = api.client
    body = {"organization": ORG, "path": "../../etc"}
    assert c.post("/api/v1/imports", json=body).status_code == 401
    assert c.post("/api/v1/imports", json=body, headers=api.auth("exporter")).status_code == 403
    assert c.post("/api/v1/imports", json=body, headers=api.auth("importer")).status_code == 400
    absolute = {"organization": ORG, "path": "/etc/passwd"}
    assert c.post("/api/v1/imports", json=absolute, headers=api.auth("importer")).status_code == 400
    missing = {"organization": ORG, "upload": "nothing.tar.gz"}
    assert c.post("/api/v1/imports", json=missing, headers=api.auth("importer")).status_code == 404
    both = {"organization": ORG, "upload": "a", "path": "b"}
    assert c.post("/api/v1/imports", json=both, headers=api.auth("importer")).status_code == 400
    assert count(api.app, Task) == 0


def test_an_import_of_garbage_is_a_failed_task(api):
    data = b"not a bundle at all"
    assert upload(api, "junk.tar.gz", data).status_code == 201
    r = api.client.post(
        "/api/v1/imports", json={"organization": ORG, "upload": "junk.tar.gz"}, headers=api.auth("importer")
    )
    task = api.task(r.headers["location"], "importer")
    assert task["state"] == "failed" and task["reason"] in ("integrity", "rejected", "usage"), task


def test_a_task_queued_before_its_user_lost_the_permission_does_not_run(api):
    """Accepted (checked) while the exporter held export_content, started after a disable or a
    removed permission: the task fails as forbidden, writes nothing, and the denial is audited."""
    from iss_plugin.services import bulk_transfer, exporting, identity

    app = api.app
    identity.create_role(app.uow(), "Exports", ("export_content",), "test")
    identity.create_user(app.uow(), "eve", None, "test")
    identity.grant_role(app.uow(), "eve", "Exports", ORG, "test")
    env = bulk_transfer.ExportEnv(out_dir=app.settings.exports_path, signer=app.signer, server_id=app.server_id)
    requests = [
        exporting.ExportRequest(organization=ORG, scope="content_view_version", incremental=False, content_view="base")
    ]
    exports_before = count(app, m.ExportRecord)
    for lose, regain in (
        (
            lambda: identity.set_user_disabled(app.uow(), "eve", True, "admin"),
            lambda: identity.set_user_disabled(app.uow(), "eve", False, "admin"),
        ),
        (
            lambda: identity.update_role(app.uow(), "Exports", (), ("export_content",), "admin"),
            lambda: identity.update_role(app.uow(), "Exports", ("export_content",), (), "admin"),
        ),
    ):
        task = tasks.create(app.uow(), "export", ORG, "eve", {"content_views": ["base"]})
        lose()
        bulk_transfer.run_export_task(app.uow, task["id"], requests, env, "eve")
        done = tasks.get(app.uow(), task["id"])
        assert done["state"] == "failed" and done["reason"] == "forbidden", done
        assert "refused when it started" in done["error"] and "export_content" in done["error"]
        assert count(app, m.ExportRecord) == exports_before
        regain()
    with app.session_factory() as s:
        denied = s.scalars(select(m.AuditLog).where(m.AuditLog.actor == "eve")).all()
    assert [(d.action, d.outcome) for d in denied if d.action == "permission.denied"] == [
        ("permission.denied", "denied")
    ] * 2


def test_an_import_task_of_a_disabled_user_does_not_run(api, tmp_path):
    from iss_plugin.services import bulk_transfer, identity, importing

    app = api.app
    task = tasks.create(app.uow(), "import", ORG, "importer", {"path": "b.tgz"})
    identity.set_user_disabled(app.uow(), "importer", True, "admin")
    job = importing.ImportRequest(organization=ORG, path=tmp_path / "b.tgz", scope="content_view_version")
    bulk_transfer.run_import_task(app.uow, task["id"], job, app.settings.imports_path, "importer")
    done = tasks.get(app.uow(), task["id"])
    assert done["state"] == "failed" and done["reason"] == "forbidden" and "import_content" in done["error"], done
    assert count(app, m.ImportRecord) == 0
