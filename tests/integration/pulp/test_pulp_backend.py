"""The Pulp backend against the two real Pulps of deploy/pulp/pulpctl (instance 1: source,
instance 2: destination). The protocol itself is covered by tests/contract (which runs on Pulp
too); these tests cover what is Pulp's own: versions made by others, the watcher query,
propagation between two servers, the shared directories, error translation and settings."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from iss_plugin.adapters.backends.base import ContentBackend, ImportExpectation
from iss_plugin.adapters.backends.pulp import PulpBackend, session_for
from iss_plugin.adapters.backends.pulp.client import PulpConnection
from iss_plugin.adapters.content_types.yum import read_tree_packages
from iss_plugin.adapters.fixtures import build_rpms, file_sha256, write_yum_repo
from iss_plugin.domain.errors import BackendError, BaseMismatch, BundleIntegrityError, ConfigError
from iss_plugin.domain.packages import package_set_digest, standard_location
from tests.conftest import IN_CI, closed_port
from tests.integration.pulp.support import require_instance

pytestmark = pytest.mark.pulp
REPO = "ACME/tools/utils"


def shas(paths) -> set[str]:
    return {file_sha256(p) for p in paths}


def expectation(backend: ContentBackend, repo: str, version: int, base=None, removed=()) -> ImportExpectation:
    info = {v.number: v for v in backend.list_versions(repo)}[version]
    return ImportExpectation(base, tuple(removed), info.digest, info.package_count)


def test_the_backend_is_the_protocol_and_from_settings_reads_the_pulpctl_env(pulp1):
    assert isinstance(pulp1, ContentBackend) and pulp1.name == "pulp"
    inst = require_instance(1)
    settings = inst.settings()
    assert settings.backend == "pulp"
    b = PulpBackend.from_settings(settings)
    assert b.shared_export_dir == inst.export_dir and b.shared_import_dir == inst.import_dir
    password = inst.password_file.read_text().strip()
    assert password not in repr(b.pulp.conn)
    with pytest.raises(ConfigError):
        PulpBackend.from_settings(
            inst.settings().model_copy(update={"pulp": settings.pulp.model_copy(update={"password_file": None})})
        )


@pytest.mark.parametrize("apply", ["modify", "modify-incoming", "mirror-sync"])
def test_propagation_between_two_pulps_full_then_incremental_with_removals(pulp1, pulp2, tmp_path, apply):
    src, dst = pulp1, pulp2
    # small changes are applied by uploads (or, for many files, one sync into the incoming
    # repository) + one modify; large ones (or trees with errata, comps, modules) by a mirror sync
    # of the staged tree: all must reach the same exact target
    dst.modify_import_limit = -1 if apply == "mirror-sync" else 10_000
    dst.bulk_upload = 3 if apply == "modify-incoming" else 10_000
    for b in (src, dst):
        b.ensure_repository(REPO)
    unique = f"prop{uuid.uuid4().hex[:8]}"  # packages no earlier run left in Pulp (content outlives repositories)
    first = build_rpms(tmp_path / "a", 40, prefix=unique)
    assert src.add_packages(REPO, first) == 1

    full = tmp_path / "full"
    tree = src.export_version(REPO, 1, None, full)
    assert tree.new_packages == 40
    v = dst.import_tree(REPO, full, expectation(src, REPO, 1))
    assert dst.list_versions(REPO)[-1].digest == src.list_versions(REPO)[1].digest

    added = build_rpms(tmp_path / "b", 4, prefix=unique, start=40)
    src.add_packages(REPO, added)
    removed = [file_sha256(first[3]), file_sha256(first[17])]
    target = src.remove_packages(REPO, removed)
    inc = tmp_path / "inc"
    tree = src.export_version(REPO, target, 1, inc)
    # only the new package files, and full metadata for the target
    package_files = {f.path for f in tree.files if not f.path.startswith("repodata/")}
    assert package_files == {standard_location(p.name) for p in added}
    assert tree.new_packages == 4
    assert {u.sha256 for u in read_tree_packages(inc)} == shas(first + added) - set(removed)
    for f in tree.files:
        assert file_sha256(inc / f.path) == f.sha256 and (inc / f.path).stat().st_size == f.size

    expect = expectation(src, REPO, target, base=v, removed=removed)
    v2 = dst.import_tree(REPO, inc, expect)
    assert v2 == v + 1
    got = {p.sha256 for p in dst.list_packages(REPO, v2)}
    assert got == shas(first + added) - set(removed)
    assert package_set_digest(got) == expect.target_digest
    # the destination's packages read the same as the source's
    assert dst.list_packages(REPO, v2) == src.list_packages(REPO, target)

    # re-applying the same tree is a no-op: same version, no new one
    assert dst.import_tree(REPO, inc, expect) == v2
    assert dst.latest_version(REPO) == v2
    # the incoming repository is iss's own plumbing, not a repository the watcher reports
    assert dst.list_repositories() == [REPO]
    assert (dst._find_repo(dst.incoming_name(REPO)) is not None) == (apply == "modify-incoming")


def test_a_broken_file_sent_through_the_incoming_repository_is_named_and_nothing_changes(pulp1, pulp2, tmp_path):
    src, dst = pulp1, pulp2
    dst.bulk_upload = 2
    for b in (src, dst):
        b.ensure_repository(REPO)
    unique = f"inc{uuid.uuid4().hex[:8]}"
    first = src.add_packages(REPO, build_rpms(tmp_path / "a", 3, prefix=unique))
    src.export_version(REPO, first, None, tmp_path / "full")
    dst.import_tree(REPO, tmp_path / "full", expectation(src, REPO, first))
    target = src.add_packages(REPO, build_rpms(tmp_path / "b", 3, prefix=unique, start=3))
    inc = tmp_path / "inc"
    tree = src.export_version(REPO, target, first, inc)
    victim = next(inc / f.path for f in tree.files if f.path.endswith(".rpm"))
    victim.write_bytes(b"not an rpm any more" * 100)  # same name, other bytes: the tree's own check
    before = dst.list_versions(REPO)
    with pytest.raises(BundleIntegrityError) as e:
        dst.import_tree(REPO, inc, expectation(src, REPO, target, base=1))
    assert victim.name in str(e.value) + " ".join(e.value.problems)
    assert dst.list_versions(REPO) == before


def test_bulk_upload_is_one_version_and_refuses_a_broken_file_naming_it(pulp1, tmp_path):
    pulp1.ensure_repository(REPO)
    pulp1.bulk_upload = 5
    files = build_rpms(tmp_path / "a", 12, prefix="bulk")
    bad = tmp_path / "bad" / "broken-1.0-1.noarch.rpm"
    bad.parent.mkdir()
    bad.write_bytes(b"not an rpm" * 50)
    with pytest.raises(BackendError) as e:
        pulp1.add_packages(REPO, [*files, bad])
    assert "broken-1.0-1.noarch.rpm" in str(e.value) and not e.value.transient
    assert pulp1.latest_version(REPO) == 0
    assert pulp1.add_packages(REPO, files) == 1
    assert {p.sha256 for p in pulp1.list_packages(REPO, 1)} == shas(files)
    assert next(p.location for p in pulp1.list_packages(REPO, 1)) == standard_location(files[0].name)
    assert pulp1.add_packages(REPO, files) == 1
    more = build_rpms(tmp_path / "b", 6, prefix="bulk", start=12)
    assert pulp1.add_packages(REPO, files[:3] + more) == 2
    assert {p.sha256 for p in pulp1.list_packages(REPO, 2)} == shas(files + more)


def test_incremental_tree_applies_on_the_matching_base_only(pulp1, pulp2, tmp_path):
    src, dst = pulp1, pulp2
    src.ensure_repository(REPO)
    dst.ensure_repository(REPO)
    src.add_packages(REPO, build_rpms(tmp_path / "a", 5, prefix="base"))
    target = src.add_packages(REPO, build_rpms(tmp_path / "b", 2, prefix="base", start=5))
    inc = tmp_path / "inc"
    src.export_version(REPO, target, 1, inc)
    # the destination never got version 1's packages: Pulp could not build the target
    with pytest.raises(BaseMismatch) as e:
        dst.import_tree(REPO, inc, expectation(src, REPO, target, base=0))
    assert e.value.details["has"]["version"] == 0
    assert [v.number for v in dst.list_versions(REPO)] == [0]


def test_a_hostile_tree_is_refused_before_pulp_sees_it(pulp1, pulp2, tmp_path):
    src, dst = pulp1, pulp2
    src.ensure_repository(REPO)
    dst.ensure_repository(REPO)
    src.add_packages(REPO, build_rpms(tmp_path / "a", 3, prefix="hostile"))
    tree = tmp_path / "tree"
    src.export_version(REPO, 1, None, tree)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for Pulp")
    (tree / "Packages" / "h" / "link.rpm").symlink_to(secret)
    with pytest.raises(BundleIntegrityError) as e:
        dst.import_tree(REPO, tree, expectation(src, REPO, 1))
    assert "symbolic link" in str(e.value)
    assert [v.number for v in dst.list_versions(REPO)] == [0]
    # no remote was even created on the destination for this repository
    assert dst.pulp.first("remotes_rpm_rpm_list", "test", {"name": dst.pulp_name(REPO)}) is None


@pytest.mark.parametrize("href", ["../outside/evil-1.0-1.noarch.rpm", "/etc/evil-1.0-1.noarch.rpm"])
def test_metadata_pointing_outside_the_tree_is_refused_before_pulp_sees_it(pulp1, tmp_path, href):
    import createrepo_c as cr

    pulp1.ensure_repository(REPO)
    [f] = build_rpms(tmp_path / "a", 1, prefix="evil")
    tree = write_yum_repo(tmp_path / "tree", [f])
    # rewrite primary.xml with a location outside the tree
    pkg = cr.package_from_rpm(str(f), cr.SHA256, href, None, 10)
    repodata = tree / "repodata"
    for old in repodata.iterdir():
        old.unlink()
    paths = {n: repodata / f"{n}.xml.gz" for n in ("primary", "filelists", "other")}
    writers = (
        cr.PrimaryXmlFile(str(paths["primary"])),
        cr.FilelistsXmlFile(str(paths["filelists"])),
        cr.OtherXmlFile(str(paths["other"])),
    )
    for w in writers:
        w.set_num_of_pkgs(1)
        w.add_pkg(pkg)
        w.close()
    repomd = cr.Repomd()
    for n, path in paths.items():
        rec = cr.RepomdRecord(n, str(path))
        rec.fill(cr.SHA256)
        repomd.set_record(rec)
    (repodata / "repomd.xml").write_text(repomd.xml_dump())
    with pytest.raises(BundleIntegrityError) as e:
        pulp1.import_tree(REPO, tree, ImportExpectation(None, (), package_set_digest(shas([f])), 1))
    assert "not a relative path inside the tree" in str(e.value)
    assert pulp1.latest_version(REPO) == 0
    assert pulp1.pulp.first("remotes_rpm_rpm_list", "test", {"name": pulp1.pulp_name(REPO)}) is None


def test_tree_listing_more_than_the_bundle_promises_is_refused_before_pulp_sees_it(pulp1, tmp_path):
    pulp1.ensure_repository(REPO)
    files = build_rpms(tmp_path / "a", 3, prefix="promise")
    tree = write_yum_repo(tmp_path / "tree", files)
    promise = ImportExpectation(None, (), package_set_digest(shas(files[:2])), 2)
    with pytest.raises(BundleIntegrityError) as e:
        pulp1.import_tree(REPO, tree, promise)
    assert "promises" in str(e.value)
    assert pulp1.pulp.first("remotes_rpm_rpm_list", "test", {"name": pulp1.pulp_name(REPO)}) is None


# --- the repository watcher: versions made by anyone ---------------------------------------------


def _glue_context(inst):
    """A plain pulp-glue context, as pulp-cli would make one (basic auth): someone who is not iss."""
    from pulp_glue.common.context import PulpContext

    class Ctx(PulpContext):
        def echo(self, *a, **k):
            pass

    return Ctx.from_config(
        {"base_url": inst.url, "username": "admin", "password": inst.password_file.read_text().strip()}
    )


def test_the_watcher_sees_a_sync_run_directly_through_pulp_glue(pulp1, tmp_path):
    from pulp_glue.rpm.context import PulpRpmRemoteContext, PulpRpmRepositoryContext

    inst = require_instance(1)
    since = datetime.now(UTC) - timedelta(seconds=1)
    key = "ACME/vendor/mirror"
    files = build_rpms(tmp_path / "a", 6, prefix="outside")
    tree = write_yum_repo(inst.import_dir / f"iss-test-{pulp1.repo_prefix.strip('/')}", files)
    try:
        ctx = _glue_context(inst)
        remote = PulpRpmRemoteContext(ctx)
        remote.create({"name": pulp1.pulp_name(key) + "-cli", "url": tree.as_uri() + "/", "policy": "immediate"})
        repo = PulpRpmRepositoryContext(ctx)
        repo.create({"name": pulp1.pulp_name(key)})
        repo.sync(body={"remote": remote})
    finally:
        import shutil

        shutil.rmtree(tree, ignore_errors=True)
    try:
        changes = pulp1.changed_since(since)
        assert [(c.repo, c.version) for c in changes if c.repo == key] == [(key, 0), (key, 1)]
        assert all(c.created >= since for c in changes)
        assert key in pulp1.list_repositories()
        [_v0, v1] = pulp1.list_versions(key)
        assert (v1.number, v1.package_count, v1.digest) == (1, 6, package_set_digest(shas(files)))
        # nothing new after the last change
        assert [c for c in pulp1.changed_since(changes[-1].created + timedelta(microseconds=1)) if c.repo == key] == []
        # a change made by iss shows up the same way
        pulp1.add_packages(key, build_rpms(tmp_path / "b", 1, prefix="outside", start=6))
        assert (key, 2) in [(c.repo, c.version) for c in pulp1.changed_since(since)]
    finally:
        remote.delete()


def test_list_versions_follows_changes_without_listing_every_version_in_full(pulp1, tmp_path):
    pulp1.ensure_repository(REPO)
    batches = [build_rpms(tmp_path / f"b{i}", 3, prefix=f"walk{i}") for i in range(4)]
    for b in batches:
        pulp1.add_packages(REPO, b)
    pulp1.remove_packages(REPO, [file_sha256(batches[0][0])])
    versions = pulp1.list_versions(REPO)
    assert [(v.number, v.package_count) for v in versions] == [(0, 0), (1, 3), (2, 6), (3, 9), (4, 12), (5, 11)]
    for v in versions:
        assert v.digest == package_set_digest(p.sha256 for p in pulp1.list_packages(REPO, v.number))
        assert pulp1.version_info(REPO, v.number) == v
    changes = pulp1.version_changes(REPO, 1, 5)
    assert {p.sha256 for p in changes.added} == shas(batches[1] + batches[2] + batches[3])
    assert changes.removed == [file_sha256(batches[0][0])]
    assert changes.added == sorted(changes.added, key=lambda p: (p.location, p.sha256))
    assert pulp1.version_changes(REPO, None, 1).added == pulp1.list_packages(REPO, 1)


# --- publication -----------------------------------------------------------------------------------


def test_publish_serves_the_version_from_the_content_app(pulp1, tmp_path):
    pulp1.ensure_repository(REPO)
    files = build_rpms(tmp_path / "a", 3, prefix="pub")
    pulp1.add_packages(REPO, files)
    pulp1.add_packages(REPO, build_rpms(tmp_path / "b", 1, prefix="pub", start=3))
    url = pulp1.publish(REPO, 1)
    assert url.startswith(require_instance(1).env["ISS_PULP__CONTENT_ORIGIN"])
    assert pulp1.publish(REPO, 1) == url  # idempotent
    r = requests.get(url + "repodata/repomd.xml", timeout=10)
    assert r.status_code == 200 and b"primary" in r.content
    pkg = requests.get(url + standard_location(files[0].name), timeout=10)
    assert pkg.status_code == 200 and pkg.content == files[0].read_bytes()
    assert pulp1.publish(REPO, 2) == url  # the same distribution now serves version 2
    new = requests.get(url + standard_location("pub0003-1.0-1.noarch.rpm"), timeout=10)
    assert new.status_code == 200


# --- errors ----------------------------------------------------------------------------------------


def test_a_pulp_that_is_not_there_is_a_transient_error(tmp_path):
    b = PulpBackend(
        session_for(PulpConnection(f"http://127.0.0.1:{closed_port()}", "admin", "x")),
        shared_export_dir=tmp_path,
        shared_import_dir=tmp_path,
    )
    with pytest.raises(BackendError) as e:
        b.latest_version(REPO)
    assert e.value.transient


def test_wrong_credentials_are_a_permanent_error_that_does_not_show_the_password(tmp_path):
    inst = require_instance(1)
    b = PulpBackend(
        session_for(PulpConnection(inst.url, "admin", "wrong-secret-pw")),
        shared_export_dir=tmp_path,
        shared_import_dir=tmp_path,
    )
    with pytest.raises(BackendError) as e:
        b.latest_version(REPO)
    assert not e.value.transient and "credentials" in str(e.value)
    assert "wrong-secret-pw" not in str(e.value) and "wrong-secret-pw" not in repr(e.value.as_dict())


def test_a_failed_task_carries_pulps_error_text(pulp1, tmp_path):
    pulp1.ensure_repository(REPO)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BackendError) as e:
        pulp1.sync(REPO, empty.as_uri())
    assert "repomd.xml" in str(e.value) and not e.value.transient
    assert "task" in e.value.details
    assert pulp1.latest_version(REPO) == 0


def test_export_without_a_shared_export_dir_is_a_config_error(pulp1, tmp_path):
    pulp1.ensure_repository(REPO)
    b = PulpBackend(pulp1.pulp, shared_export_dir=None, shared_import_dir=None, repo_prefix=pulp1.repo_prefix)
    with pytest.raises(ConfigError):
        b.export_version(REPO, 0, None, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(
    os.geteuid() != 0 and not IN_CI,  # CI runs as root: there it must run, never skip
    reason="checks hardlinks into Pulp's media root, which root can read",
)
def test_export_hardlinks_package_files_from_pulps_storage(pulp1, tmp_path):
    pulp1.ensure_repository(REPO)
    pulp1.add_packages(REPO, build_rpms(tmp_path / "a", 2, prefix="hl"))
    out = (
        Path(require_instance(1).export_dir).parent
        / "exports"
        / f"iss-test-{os.getpid()}-{pulp1.repo_prefix.strip('/')}"
    )
    try:
        pulp1.export_version(REPO, 1, None, out)
        pkg = next(out.rglob("*.rpm"))
        assert pkg.stat().st_nlink >= 2  # the same inode as Pulp's artifact: no copy was written
    finally:
        import shutil

        shutil.rmtree(out, ignore_errors=True)


def test_store_gc_removes_what_no_repository_holds_once_it_is_old_enough(pulp1, tmp_path):
    other = "ACME/tools/scratch"
    unique = f"gc{uuid.uuid4().hex[:8]}"
    kept, dropped = build_rpms(tmp_path / "k", 2, prefix=unique), build_rpms(tmp_path / "d", 2, prefix=unique, start=2)
    for repo, files in ((REPO, kept), (other, dropped)):
        pulp1.ensure_repository(repo)
        pulp1.add_packages(repo, files)
    pulp1.delete_repository(other)  # its packages are orphans now
    pulp1.remove_orphan_blobs(3600)  # too young: an import in flight may be about to use them
    assert set(pulp1._content_by_sha(sorted(shas(dropped)))) == shas(dropped)
    assert pulp1.remove_orphan_blobs(0) >= 2
    assert pulp1._content_by_sha(sorted(shas(dropped))) == {}
    assert set(pulp1._content_by_sha(sorted(shas(kept)))) == shas(kept)
    assert {p.sha256 for p in pulp1.list_packages(REPO, 1)} == shas(kept)


def test_threads_share_one_parse_of_pulps_api_description(pulp1):
    """A context per thread (a streamed import runs two), one parse of the API description (~17 MiB
    each with pulp_rpm): the second thread's context holds the first one's parse and works."""
    import threading

    pulp1.pulp.call("status_read", "reading Pulp's status")  # this thread's context
    first = pulp1.pulp.ctx.api
    seen = {}

    def other_thread() -> None:
        seen["status"] = pulp1.pulp.call("status_read", "reading Pulp's status from another thread")
        seen["api"] = pulp1.pulp.ctx.api

    t = threading.Thread(target=other_thread)
    t.start()
    t.join()
    assert seen["api"] is not first  # its own context and requests session
    assert seen["api"].api_spec is first.api_spec and seen["api"].operations is first.operations
    assert seen["status"]["versions"]


def test_an_operation_outside_the_kept_part_of_the_api_description_is_a_clear_error(pulp1):
    """The description keeps the operation families iss calls (pulp/client.py USED_OPERATIONS); one
    it dropped (or Pulp lacks) is named, not a KeyError from deep inside pulp-glue."""
    assert "users_list" not in pulp1.pulp.ctx.api.operations
    assert "repositories_rpm_rpm_list" in pulp1.pulp.ctx.api.operations
    with pytest.raises(BackendError) as e:
        pulp1.pulp.call("users_list", "listing Pulp's users")
    assert "users_list" in str(e.value) and "USED_OPERATIONS" in str(e.value) and not e.value.transient
