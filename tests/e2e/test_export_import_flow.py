"""The whole manual flow through the CLI: complete, incremental, formats, history, re-delivery."""

from __future__ import annotations

from datetime import UTC

import pytest

from .conftest import CUSTOM, RH, make_destination


def export(source, kind: str, version: str, *extra: str) -> dict:
    return source.json(
        "content-export",
        kind,
        "version",
        "--organization",
        "ACME",
        "--content-view",
        "base",
        "--version",
        version,
        *extra,
    )


def import_(dest, path: str, *extra: str, expect: int = 0) -> dict:
    return dest.json("content-import", "version", "--organization", "ACME", "--path", path, *extra, expect=expect)


def pins(server, version: str) -> dict:
    versions = server.json("content-view", "version", "list", "--organization", "ACME", "--content-view", "base")
    v = next(v for v in versions if v["version"] == version)
    return {(r["product"], r["repository"]): (r["package_count"], r["package_set_digest"]) for r in v["repositories"]}


@pytest.mark.parametrize("fmt", ["dir", "tgz", "iso"])
def test_complete_then_incremental_lands_the_exact_versions(tmp_path, published_source, rpms, database_url, fmt):
    source = published_source
    dest = make_destination(tmp_path, source, database_url)
    full = export(source, "complete", "1.0", "--format", fmt)
    assert full["kind"] == "full"
    result = import_(dest, full["path"])
    assert result["state"] == "imported"
    assert set(result["create_repositories"]) == {f"{RH}/baseos", f"{CUSTOM}/utils"}
    assert pins(dest, "1.0") == pins(source, "1.0")

    new = rpms("utils-2", 3, "utils-new", version="2.0")
    source.run("repository", "upload", "--organization", "ACME", "--repository", f"{CUSTOM}/utils", *map(str, new))
    gone = source.json("repository", "info", "--organization", "ACME", "--repository", f"{RH}/baseos")["packages"][:2]
    source.run("repository", "remove-package", "--organization", "ACME", "--repository", f"{RH}/baseos", *gone)
    source.run("content-view", "publish", "--organization", "ACME", "--content-view", "base")

    incr = export(source, "incremental", "2.0", "--format", fmt)  # base: the last export (1.0)
    assert incr["kind"] == "incremental" and incr["base"] == "1.0"
    assert incr["repositories"][f"{CUSTOM}/utils"]["new_packages"] == 3
    assert incr["repositories"][f"{RH}/baseos"]["new_packages"] == 0
    assert incr["repositories"][f"{RH}/baseos"]["removed"] == 2
    result = import_(dest, incr["path"])
    assert result["state"] == "imported"
    assert pins(dest, "2.0") == pins(source, "2.0")

    again = import_(dest, incr["path"])  # re-delivery is a no-op
    assert again["state"] == "already_imported"
    info = dest.json("repository", "info", "--organization", "ACME", "--repository", f"{RH}/baseos")
    assert not set(gone) & set(info["packages"])


def test_chunked_export_imports_from_its_first_chunk(tmp_path, published_source, destination):
    out = export(
        published_source,
        "complete",
        "1.0",
        "--format",
        "tgz",
        "--chunk-size-mb",
        "0.05",
        "--path",
        str(tmp_path / "media"),
    )
    assert out["path"].endswith(".000")
    assert import_(destination, out["path"])["state"] == "imported"


def test_incremental_from_version_and_since(tmp_path, published_source, rpms):
    from datetime import datetime

    source = published_source
    between = datetime.now(UTC).isoformat()
    source.run(
        "repository",
        "upload",
        "--organization",
        "ACME",
        "--repository",
        f"{CUSTOM}/utils",
        *map(str, rpms("more", 2, "more")),
    )
    source.run("content-view", "publish", "--organization", "ACME", "--content-view", "base")
    by_version = export(source, "incremental", "2.0", "--from-version", "1.0")
    assert by_version["base"] == "1.0"
    by_date = export(source, "incremental", "2.0", "--since", between)
    assert by_date["base"] == "1.0"


def test_repository_export_and_import(tmp_path, published_source, destination, rpms):
    source = published_source
    full = source.json(
        "content-export",
        "complete",
        "repository",
        "--organization",
        "ACME",
        "--product",
        CUSTOM,
        "--repository",
        "utils",
        "--format",
        "tgz",
    )
    r = destination.json("content-import", "repository", "--organization", "ACME", "--path", full["path"])
    assert r["state"] == "imported"
    source.run(
        "repository",
        "upload",
        "--organization",
        "ACME",
        "--repository",
        f"{CUSTOM}/utils",
        *map(str, rpms("u3", 2, "u3")),
    )
    incr = source.json(
        "content-export",
        "incremental",
        "repository",
        "--organization",
        "ACME",
        "--product",
        CUSTOM,
        "--repository",
        "utils",
    )
    assert incr["kind"] == "incremental"
    r = destination.json("content-import", "repository", "--organization", "ACME", "--path", incr["path"])
    assert r["state"] == "imported"
    a = source.json("repository", "info", "--organization", "ACME", "--repository", f"{CUSTOM}/utils")
    b = destination.json("repository", "info", "--organization", "ACME", "--repository", f"{CUSTOM}/utils")
    assert a["package_set_digest"] == b["package_set_digest"] and b["package_count"] == 10


def test_dry_run_reports_and_changes_nothing(published_source, destination):
    full = export(published_source, "complete", "1.0")
    before = destination.state()
    r = import_(destination, full["path"], "--dry-run")
    assert r["state"] == "dry_run" and r["create_content_view"] is True
    assert destination.state() == before


def test_export_errors_are_clear(published_source):
    r = published_source.run(
        "content-export",
        "complete",
        "version",
        "--organization",
        "ACME",
        "--content-view",
        "base",
        "--version",
        "9.0",
        expect=2,
    )
    assert "has no version 9.0" in r.output
    r = published_source.run(
        "content-export", "incremental", "version", "--organization", "ACME", "--content-view", "base", expect=2
    )
    assert "no earlier export" in r.output
    r = published_source.run(
        "content-export", "complete", "version", "--organization", "NOPE", "--content-view", "base", expect=2
    )
    assert "organization 'NOPE' does not exist" in r.output
