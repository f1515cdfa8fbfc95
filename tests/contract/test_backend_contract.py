"""The ContentBackend contract: every backend in conftest.BACKENDS must pass all of it."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from iss_plugin.adapters.backends.base import ContentBackend, ImportExpectation
from iss_plugin.adapters.content_types.yum import read_tree_packages
from iss_plugin.adapters.fixtures import build_rpm, file_sha256, write_yum_repo
from iss_plugin.domain.errors import BackendError, BaseMismatch, BundleIntegrityError
from iss_plugin.domain.packages import package_set_digest, standard_location
from tests.conftest import closed_port

EMPTY_DIGEST = package_set_digest(())


def shas(paths) -> set[str]:
    return {file_sha256(p) for p in paths}


def version_shas(backend: ContentBackend, repo: str, version: int) -> set[str]:
    return {p.sha256 for p in backend.list_packages(repo, version)}


def version_digest(backend: ContentBackend, repo: str, version: int) -> str:
    info = {v.number: v for v in backend.list_versions(repo)}[version]
    assert info.digest == package_set_digest(version_shas(backend, repo, version))
    return info.digest


def tree_files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): file_sha256(p) for p in root.rglob("*") if p.is_file()}


def expectation(backend, repo, version, base_version=None, removed=()) -> ImportExpectation:
    info = {v.number: v for v in backend.list_versions(repo)}[version]
    return ImportExpectation(base_version, tuple(removed), info.digest, info.package_count)


# --- repositories and versions -------------------------------------------------------------------


def test_ensure_repository_creates_empty_version_0_and_is_idempotent(server, repo_key):
    b = server.backend
    assert isinstance(b, ContentBackend)
    b.ensure_repository(repo_key)
    b.ensure_repository(repo_key)
    server.commit()
    assert b.latest_version(repo_key) == 0
    assert b.list_packages(repo_key, 0) == []
    [v0] = b.list_versions(repo_key)
    assert (v0.number, v0.package_count, v0.digest) == (0, 0, EMPTY_DIGEST)


def test_upload_makes_version_1_with_the_packages(server, repo_key, rpms):
    b = server.backend
    b.ensure_repository(repo_key)
    files = rpms(5, "up")
    assert b.add_packages(repo_key, files) == 1
    server.commit()
    pkgs = b.list_packages(repo_key, 1)
    assert {p.sha256 for p in pkgs} == shas(files)
    by_name = {p.name: p for p in pkgs}
    assert sorted(by_name) == [f"up{i:04d}" for i in range(5)]
    p = by_name["up0003"]
    assert (p.version, p.release, p.arch, p.epoch) == ("1.0", "1", "noarch", "0")
    assert p.location == standard_location("up0003-1.0-1.noarch.rpm")
    assert p.size == files[3].stat().st_size
    assert p.nevra == "up0003-1.0-1.noarch"
    assert b.latest_version(repo_key) == 1
    [_v0, v1] = b.list_versions(repo_key)
    assert v1.package_count == 5 and v1.digest == package_set_digest(shas(files))


def test_uploading_the_same_packages_again_changes_nothing(server, repo_key, rpms):
    b = server.backend
    b.ensure_repository(repo_key)
    files = rpms(4, "same")
    assert b.add_packages(repo_key, files) == 1
    assert b.add_packages(repo_key, files) == 1
    assert b.add_packages(repo_key, files[:2]) == 1
    more = rpms(2, "more")
    assert b.add_packages(repo_key, files + more) == 2
    server.commit()
    assert [v.number for v in b.list_versions(repo_key)] == [0, 1, 2]
    assert version_shas(b, repo_key, 2) == shas(files + more)


def test_remove_makes_a_new_version_and_old_versions_stay(server, repo_key, rpms):
    b = server.backend
    b.ensure_repository(repo_key)
    files = rpms(5, "rm")
    b.add_packages(repo_key, files)
    gone = [file_sha256(files[0]), file_sha256(files[3])]
    assert b.remove_packages(repo_key, gone) == 2
    server.commit()
    assert version_shas(b, repo_key, 2) == shas(files) - set(gone)
    assert version_shas(b, repo_key, 1) == shas(files)  # versions are immutable
    assert b.remove_packages(repo_key, gone) == 2  # nothing left to remove: same version
    version_digest(b, repo_key, 2)


def test_upload_of_a_file_that_is_not_an_rpm_fails_clearly_and_changes_nothing(server, repo_key, rpms, tmp_path):
    b = server.backend
    b.ensure_repository(repo_key)
    server.commit()
    bad = tmp_path / "broken.rpm"
    bad.write_bytes(b"this is not an rpm" * 100)
    with pytest.raises(BackendError) as e:
        b.add_packages(repo_key, [*rpms(2, "ok"), bad])
    assert "broken.rpm" in str(e.value)
    server.rollback()
    assert b.latest_version(repo_key) == 0


# --- sync ---------------------------------------------------------------------------------------


def test_sync_from_file_url_fetches_only_missing_packages(server, repo_key, rpms, tmp_path):
    b = server.backend
    b.ensure_repository(repo_key)
    old, new = rpms(6, "sy"), rpms(4, "sy", start=6)
    remote = tmp_path / "remote"
    write_yum_repo(remote, old)
    assert b.sync(repo_key, remote.as_uri()) == 1
    server.commit()
    assert version_shas(b, repo_key, 1) == shas(old)

    write_yum_repo(remote, old + new)
    for f in old:  # the store holds these: a sync that fetched them again would fail
        (remote / standard_location(f.name)).unlink()
    assert b.sync(repo_key, remote.as_uri()) == 2
    server.commit()
    assert version_shas(b, repo_key, 2) == shas(old + new)
    report = getattr(b, "last_sync", None)
    if report is not None:
        assert (report.fetched, report.already_held, report.listed) == (4, 6, 10)


def test_sync_over_http_downloads_each_missing_package_once(server, repo_key, rpms, tmp_path, serve_tree):
    b = server.backend
    b.ensure_repository(repo_key)
    unique = f"hs{uuid.uuid4().hex[:8]}x"  # packages no store holds yet (a shared Pulp keeps what it saw)
    old, new = rpms(6, unique), rpms(3, unique, start=6)
    remote = tmp_path / "remote"
    write_yum_repo(remote, old)
    http = serve_tree(remote)
    assert b.sync(repo_key, http.url) == 1
    server.commit()
    assert sorted(http.rpm_requests()) == sorted(f"/{standard_location(f.name)}" for f in old)

    http.reset()
    write_yum_repo(remote, old + new)
    assert b.sync(repo_key, http.url) == 2
    server.commit()
    assert sorted(http.rpm_requests()) == sorted(f"/{standard_location(f.name)}" for f in new)
    assert version_shas(b, repo_key, 2) == shas(old + new)

    http.reset()
    assert b.sync(repo_key, http.url) == 2  # nothing new upstream: same version, no package fetched
    assert http.rpm_requests() == []


def test_mirror_sync_removes_what_the_remote_dropped_and_additive_sync_keeps_it(server, repo_key, rpms, tmp_path):
    b = server.backend
    b.ensure_repository(repo_key)
    files = rpms(5, "mi")
    remote = tmp_path / "remote"
    write_yum_repo(remote, files)
    b.sync(repo_key, remote.as_uri())
    write_yum_repo(remote, files[:2], compression="xz")  # another compression, fewer packages
    assert b.sync(repo_key, remote.as_uri(), mirror=False) == 1  # additive: nothing new
    assert b.sync(repo_key, remote.as_uri(), mirror=True) == 2
    server.commit()
    assert version_shas(b, repo_key, 2) == shas(files[:2])
    extra = rpms(1, "mx")
    write_yum_repo(remote, extra, compression="zstd", flat=True)
    assert b.sync(repo_key, remote.as_uri(), mirror=False) == 3
    assert version_shas(b, repo_key, 3) == shas(files[:2] + extra)


def test_sync_errors_are_clear_and_change_nothing(server, repo_key, rpms, tmp_path, serve_tree):
    b = server.backend
    b.ensure_repository(repo_key)
    server.commit()

    with pytest.raises(BackendError) as e:
        b.sync(repo_key, f"http://127.0.0.1:{closed_port()}/repo/")
    assert e.value.transient
    server.rollback()

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BackendError) as e:
        b.sync(repo_key, empty.as_uri())
    assert "repomd.xml" in str(e.value) and not e.value.transient
    server.rollback()

    remote = tmp_path / "remote"
    files = rpms(3, "bad")
    write_yum_repo(remote, files)
    victim = remote / standard_location(files[1].name)
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")  # same size, other content
    with pytest.raises(BackendError) as e:
        b.sync(repo_key, remote.as_uri())
    assert files[1].name in str(e.value) and not e.value.transient
    server.rollback()

    http = serve_tree(remote)
    http.fail_with(503)
    with pytest.raises(BackendError) as e:
        b.sync(repo_key, http.url)
    assert e.value.transient and "503" in str(e.value)
    server.rollback()
    assert b.latest_version(repo_key) == 0


# --- export ---------------------------------------------------------------------------------------


def test_full_export_writes_every_package_and_metadata_createrepo_c_reads_back(server, repo_key, rpms, tmp_path):
    b = server.backend
    b.ensure_repository(repo_key)
    files = rpms(7, "ex")
    b.add_packages(repo_key, files)
    server.commit()
    dest = tmp_path / "export"
    tree = b.export_version(repo_key, 1, None, dest)
    assert tree.new_packages == 7
    written = tree_files(dest)
    assert {f.path: f.sha256 for f in tree.files} == written  # every file, with its checksum
    assert all(f.size == (dest / f.path).stat().st_size for f in tree.files)
    assert {sha for path, sha in written.items() if path.startswith("Packages/")} == shas(files)
    listed = read_tree_packages(dest)
    assert {u.sha256 for u in listed} == shas(files)
    assert all((dest / u.href).is_file() for u in listed)


def test_incremental_export_writes_only_new_packages_and_full_metadata(server, repo_key, rpms, tmp_path):
    b = server.backend
    b.ensure_repository(repo_key)
    old, new = rpms(6, "inc"), rpms(2, "inc", start=6)
    b.add_packages(repo_key, old)
    b.add_packages(repo_key, new)
    b.remove_packages(repo_key, [file_sha256(old[0])])
    server.commit()
    dest = tmp_path / "inc"
    tree = b.export_version(repo_key, 3, 1, dest)
    assert tree.new_packages == 2
    package_files = {p: s for p, s in tree_files(dest).items() if not p.startswith("repodata/")}
    assert set(package_files.values()) == shas(new)
    assert {u.sha256 for u in read_tree_packages(dest)} == shas(old[1:] + new)
    assert {f.path for f in tree.files} == set(tree_files(dest))


def test_export_into_a_non_empty_directory_is_refused(server, repo_key, rpms, tmp_path):
    b = server.backend
    b.ensure_repository(repo_key)
    b.add_packages(repo_key, rpms(1, "ne"))
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(Exception) as e:
        b.export_version(repo_key, 1, None, dest)
    assert "not empty" in str(e.value)
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]


# --- import ---------------------------------------------------------------------------------------


def test_full_then_incremental_import_reach_the_exact_target(make_server, repo_key, rpms, tmp_path):
    src, dst = make_server("source"), make_server("destination")
    s, d = src.backend, dst.backend
    s.ensure_repository(repo_key)
    d.ensure_repository(repo_key)
    first = rpms(8, "im")
    s.add_packages(repo_key, first)
    src.commit()

    full = tmp_path / "full"
    s.export_version(repo_key, 1, None, full)
    v = d.import_tree(repo_key, full, expectation(s, repo_key, 1))
    dst.commit()
    assert version_digest(d, repo_key, v) == version_digest(s, repo_key, 1)
    dest_base = v

    s.add_packages(repo_key, rpms(3, "im", start=8))
    removed = [file_sha256(first[2]), file_sha256(first[5])]
    s.remove_packages(repo_key, removed)
    src.commit()
    target = s.latest_version(repo_key)

    inc = tmp_path / "inc"
    tree = s.export_version(repo_key, target, 1, inc)
    assert tree.new_packages == 3
    v2 = d.import_tree(repo_key, inc, expectation(s, repo_key, target, dest_base, removed))
    dst.commit()
    assert v2 > dest_base
    assert version_digest(d, repo_key, v2) == version_digest(s, repo_key, target)
    assert version_shas(d, repo_key, v2) == version_shas(s, repo_key, target)
    assert version_shas(d, repo_key, dest_base) == shas(first)  # the base is untouched


def test_importing_the_same_tree_again_gives_the_same_digest(make_server, repo_key, rpms, tmp_path):
    src, dst = make_server("source"), make_server("destination")
    src.backend.ensure_repository(repo_key)
    dst.backend.ensure_repository(repo_key)
    src.backend.add_packages(repo_key, rpms(4, "again"))
    src.commit()
    tree = tmp_path / "tree"
    src.backend.export_version(repo_key, 1, None, tree)
    expect = expectation(src.backend, repo_key, 1)
    v1 = dst.backend.import_tree(repo_key, tree, expect)
    dst.commit()
    v2 = dst.backend.import_tree(repo_key, tree, expect)
    dst.commit()
    assert (
        version_digest(dst.backend, repo_key, v2) == version_digest(dst.backend, repo_key, v1) == expect.target_digest
    )


def test_import_with_a_wrong_digest_is_rejected_and_changes_nothing(make_server, repo_key, rpms, tmp_path):
    src, dst = make_server("source"), make_server("destination")
    src.backend.ensure_repository(repo_key)
    dst.backend.ensure_repository(repo_key)
    src.backend.add_packages(repo_key, rpms(3, "wrong"))
    src.commit()
    dst.commit()
    tree = tmp_path / "tree"
    src.backend.export_version(repo_key, 1, None, tree)
    good = expectation(src.backend, repo_key, 1)
    for bad in (
        ImportExpectation(None, (), "sha256:" + "0" * 64, good.target_count),
        ImportExpectation(None, (), good.target_digest, good.target_count + 1),
    ):
        with pytest.raises(BundleIntegrityError) as e:
            dst.backend.import_tree(repo_key, tree, bad)
        assert "promises" in str(e.value)
        dst.rollback()
        assert dst.backend.latest_version(repo_key) == 0
        assert [v.number for v in dst.backend.list_versions(repo_key)] == [0]


def test_incremental_import_without_its_base_is_refused(make_server, repo_key, rpms, tmp_path):
    src, dst = make_server("source"), make_server("destination")
    src.backend.ensure_repository(repo_key)
    dst.backend.ensure_repository(repo_key)
    src.backend.add_packages(repo_key, rpms(2, "nb"))
    src.backend.add_packages(repo_key, rpms(1, "nb", start=2))
    src.commit()
    dst.commit()
    tree = tmp_path / "tree"
    src.backend.export_version(repo_key, 2, 1, tree)
    with pytest.raises((BaseMismatch, BundleIntegrityError)):
        dst.backend.import_tree(repo_key, tree, expectation(src.backend, repo_key, 2, base_version=7))
    dst.rollback()
    assert dst.backend.latest_version(repo_key) == 0


# --- publish --------------------------------------------------------------------------------------


def test_publish_produces_a_yum_repository(server, repo_key, rpms):
    b = server.backend
    b.ensure_repository(repo_key)
    files = rpms(4, "pub")
    b.add_packages(repo_key, files)
    server.commit()
    where = b.publish(repo_key, 1)
    assert where
    if "://" not in where or where.startswith("file://"):
        root = Path(where.removeprefix("file://"))
        listed = read_tree_packages(root)
        assert {u.sha256 for u in listed} == shas(files)
        assert all(file_sha256(root / u.href) == u.sha256 for u in listed)


def test_package_with_epoch_and_dependencies_round_trips(make_server, repo_key, tmp_path):
    src, dst = make_server("source"), make_server("destination")
    src.backend.ensure_repository(repo_key)
    dst.backend.ensure_repository(repo_key)
    f = build_rpm(
        tmp_path / "ep", "epochy", "2.1", "3", epoch=4, requires=["bash"], provides=["epochy-cap"], compression="gzip"
    )
    src.backend.add_packages(repo_key, [f])
    src.commit()
    [p] = src.backend.list_packages(repo_key, 1)
    assert (p.epoch, p.nevra) == ("4", "epochy-4:2.1-3.noarch")
    tree = tmp_path / "t"
    src.backend.export_version(repo_key, 1, None, tree)
    dst.backend.import_tree(repo_key, tree, expectation(src.backend, repo_key, 1))
    dst.commit()
    assert dst.backend.list_packages(repo_key, 1) == [p]
    assert os.path.basename(p.location) == "epochy-2.1-3.noarch.rpm"
