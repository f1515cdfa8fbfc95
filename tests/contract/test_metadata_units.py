"""The HoldsMetadataUnits contract (advisories, comps, modules) for every backend that has it.

A backend without the capability is skipped here; local and Pulp both have it."""

from __future__ import annotations

from pathlib import Path

import pytest

from iss_plugin.adapters.backends.base import HoldsMetadataUnits, ImportExpectation
from iss_plugin.adapters.content_types import get_content_type
from iss_plugin.adapters.fixture_metadata import (
    FixtureGroup,
    FixtureModule,
    add_repo_metadata,
    advisory,
    comps_xml,
    modules_yaml,
    updateinfo_xml,
)
from iss_plugin.adapters.fixtures import file_sha256, write_yum_repo
from iss_plugin.domain.content_units import (
    ADVISORY,
    CATEGORY,
    GROUP,
    MODULEMD,
    MODULEMD_DEFAULTS,
    units_digest,
    version_digest,
)
from iss_plugin.domain.errors import BundleIntegrityError, RejectedInput
from iss_plugin.domain.packages import package_set_digest


@pytest.fixture
def units_server(server):
    if not isinstance(server.backend, HoldsMetadataUnits):
        pytest.skip(f"backend {server.name} does not hold metadata units")
    return server


def upstream(tmp_path: Path, rpms, advisories: int = 2) -> tuple[Path, list[Path]]:
    files = rpms(3, prefix="unitpkg")
    tree = write_yum_repo(tmp_path / "upstream", files)
    add_repo_metadata(
        tree,
        updateinfo=updateinfo_xml([advisory(f"ISS-2026:{i:04d}", files[i : i + 1]) for i in range(advisories)]),
        comps=comps_xml([FixtureGroup("iss-tools", ("unitpkg0000", "unitpkg0001"))], category="iss-cat"),
        modules=modules_yaml([FixtureModule("isstool", "1.0", tuple(f.name for f in files[:2]))]),
    )
    return tree, files


def kinds(units) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for u in units:
        out.setdefault(u.kind, set()).add(u.key)
    return out


def test_sync_keeps_advisories_groups_and_modules_and_the_digest_covers_them(units_server, repo_key, rpms, tmp_path):
    b = units_server.backend
    tree, files = upstream(tmp_path, rpms)
    b.ensure_repository(repo_key)
    version = b.sync(repo_key, tree.as_uri())
    units_server.commit()
    held = kinds(b.list_units(repo_key, version))
    assert held[ADVISORY] == {"ISS-2026:0000", "ISS-2026:0001"}
    assert held[GROUP] == {"iss-tools"} and held[CATEGORY] == {"iss-cat"}
    assert held[MODULEMD] == {"isstool:1.0:20260101:c0ffee42:noarch"} and held[MODULEMD_DEFAULTS] == {"isstool"}
    info = b.version_info(repo_key, version)
    packages_only = package_set_digest(p.sha256 for p in b.list_packages(repo_key, version))
    assert info.digest != packages_only  # the identity covers the units
    # the same sync again changes nothing; an upstream with one advisory more makes a new version
    assert b.sync(repo_key, tree.as_uri()) == version
    add_repo_metadata(tree, updateinfo=updateinfo_xml([advisory(f"ISS-2026:{i:04d}", files[:1]) for i in range(3)]))
    newer = b.sync(repo_key, tree.as_uri())
    assert newer == version + 1
    assert b.list_packages(repo_key, newer) == b.list_packages(repo_key, version)
    assert b.version_info(repo_key, newer).digest != info.digest
    assert len(kinds(b.list_units(repo_key, newer))[ADVISORY]) == 3
    assert len(kinds(b.list_units(repo_key, version))[ADVISORY]) == 2  # versions are immutable


def test_export_and_import_round_trip_the_units(units_server, make_server, repo_key, rpms, tmp_path):
    b = units_server.backend
    tree, _ = upstream(tmp_path, rpms)
    b.ensure_repository(repo_key)
    version = b.sync(repo_key, tree.as_uri())
    units_server.commit()
    out = b.export_version(repo_key, version, None, tmp_path / "export")
    assert any(f.path.endswith("updateinfo.xml.gz") for f in out.files)
    assert any(f.path.endswith(("modules.yaml.gz", "modules.yaml")) for f in out.files)  # Pulp: plain
    info = b.version_info(repo_key, version)
    dest = make_server("destination")
    dest.backend.ensure_repository(repo_key)
    got = dest.backend.import_tree(
        repo_key, tmp_path / "export", ImportExpectation(None, (), info.digest, info.package_count)
    )
    dest.commit()
    assert dest.backend.version_info(repo_key, got).digest == info.digest
    assert dest.backend.list_units(repo_key, got) == b.list_units(repo_key, version)


def test_import_whose_units_differ_from_the_promise_is_refused(units_server, make_server, repo_key, rpms, tmp_path):
    b = units_server.backend
    tree, _ = upstream(tmp_path, rpms)
    b.ensure_repository(repo_key)
    version = b.sync(repo_key, tree.as_uri())
    units_server.commit()
    b.export_version(repo_key, version, None, tmp_path / "export")
    packages_only = package_set_digest(p.sha256 for p in b.list_packages(repo_key, version))
    dest = make_server("destination")
    dest.backend.ensure_repository(repo_key)
    dest.commit()
    other_units = version_digest(packages_only, units_digest(["sha256:" + "0" * 64]))  # units not in the tree
    with pytest.raises(BundleIntegrityError, match="metadata units"):
        dest.backend.import_tree(repo_key, tmp_path / "export", ImportExpectation(None, (), other_units, 3))
    dest.rollback()
    assert dest.backend.latest_version(repo_key) == 0
    assert dest.backend.list_units(repo_key, 0) == []


def test_upload_of_metadata_files_adds_units_and_refuses_a_changed_advisory(units_server, repo_key, rpms, tmp_path):
    b = units_server.backend
    files = rpms(2, prefix="up")
    b.ensure_repository(repo_key)
    v1 = b.add_packages(repo_key, files)
    ct = get_content_type("yum")
    path = tmp_path / "updateinfo.xml"
    path.write_bytes(updateinfo_xml([advisory("ISS-2026:0100", files[:1])]))
    v2 = b.add_units(repo_key, ct.read_metadata_file(path))
    units_server.commit()
    assert v2 == v1 + 1
    assert b.add_units(repo_key, ct.read_metadata_file(path)) == v2  # the same advisory again: no change
    before = b.version_info(repo_key, v2)
    path.write_bytes(updateinfo_xml([advisory("ISS-2026:0100", files, title="changed")]))
    with pytest.raises(RejectedInput, match="ids name two different units") as e:
        b.add_units(repo_key, ct.read_metadata_file(path))
    assert "advisory ISS-2026:0100: sha256:" in e.value.problems[0] and " and sha256:" in e.value.problems[0]
    units_server.rollback()
    assert b.latest_version(repo_key) == v2
    assert b.version_info(repo_key, v2) == before


def test_a_version_without_units_keeps_the_package_digest(units_server, repo_key, rpms):
    b = units_server.backend
    b.ensure_repository(repo_key)
    files = rpms(2, prefix="plain")
    v = b.add_packages(repo_key, files)
    info = b.version_info(repo_key, v)
    assert info.digest == package_set_digest(p.sha256 for p in b.list_packages(repo_key, v))
    assert version_digest(info.digest, None) == info.digest


def test_a_tree_from_a_source_that_does_not_count_units_imports_its_packages_only(
    units_server, make_server, repo_key, rpms, tmp_path
):
    """Older sources (and backends without units) promise a packages-only digest: the import
    matches it exactly and keeps no units, rather than making a version the source would not know."""
    tree, files = upstream(tmp_path, rpms)
    dest = make_server("destination")
    dest.backend.ensure_repository(repo_key)
    packages_only = package_set_digest(file_sha256(f) for f in files)
    got = dest.backend.import_tree(repo_key, tree, ImportExpectation(None, (), packages_only, len(files)))
    dest.commit()
    assert dest.backend.version_info(repo_key, got).digest == packages_only
    assert dest.backend.list_units(repo_key, got) == []


def test_sync_over_http_fetches_the_unit_files_and_an_additive_sync_replaces_by_id(
    units_server, repo_key, rpms, tmp_path, serve_tree
):
    b = units_server.backend
    tree, files = upstream(tmp_path, rpms)
    remote = serve_tree(tree)
    b.ensure_repository(repo_key)
    first = b.sync(repo_key, remote.url)
    assert any("updateinfo" in p for p in remote.requests) and any("modules" in p for p in remote.requests)
    # upstream changes ISS-2026:0000 and drops ISS-2026:0001; an additive sync takes the new text
    # of the one it lists and keeps the other
    add_repo_metadata(tree, updateinfo=updateinfo_xml([advisory("ISS-2026:0000", files, title="v2")]))
    second = b.sync(repo_key, remote.url, mirror=False)
    units_server.commit()
    advisories = {u.key: u for u in b.list_units(repo_key, second) if u.kind == ADVISORY}
    assert set(advisories) == {"ISS-2026:0000", "ISS-2026:0001"}
    assert "v2" in advisories["ISS-2026:0000"].body
    assert b.list_units(repo_key, first) != b.list_units(repo_key, second)
