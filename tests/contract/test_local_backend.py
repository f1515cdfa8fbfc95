"""What only the local backend promises: its file layout, links, clean-up, query counts and caches."""

from __future__ import annotations

import gzip
import os
import re
import stat
from pathlib import Path

import pytest
from sqlalchemy import event

from iss_plugin.adapters.backends.base import ImportExpectation
from iss_plugin.adapters.backends.local import LocalBackend
from iss_plugin.adapters.backends.local.index import SetCache
from iss_plugin.adapters.content_types import get_content_type
from iss_plugin.adapters.content_types.yum import read_tree_packages
from iss_plugin.adapters.fixtures import build_rpm, file_sha256
from iss_plugin.domain.errors import BackendError, BundleIntegrityError, NotFound, UsageError

from .conftest import local_server

REPO = "ACME/tools/utils"


@pytest.fixture
def local(tmp_path):
    with local_server(tmp_path, "local") as s:
        s.backend.ensure_repository(REPO)
        yield s


@pytest.fixture
def other(tmp_path):
    with local_server(tmp_path, "other") as s:
        s.backend.ensure_repository(REPO)
        yield s


class StatementCounter:
    def __init__(self, engine):
        self.engine, self.count = engine, 0

    def _on(self, *args, **kwargs):
        self.count += 1

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._on)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._on)


def expectation(b, version, base=None, removed=()):
    info = b.version_info(REPO, version)
    return ImportExpectation(base, tuple(removed), info.digest, info.package_count)


def test_files_are_content_addressed_read_only_and_uploads_are_copies(local, rpms):
    b: LocalBackend = local.backend
    [f] = rpms(1, "blob")
    b.add_packages(REPO, [f])
    sha = file_sha256(f)
    blob = local.workdir / "store" / "sha256" / sha[:2] / sha[2:]
    assert blob.is_file() and file_sha256(blob) == sha
    assert stat.S_IMODE(blob.stat().st_mode) == 0o444
    assert blob.stat().st_ino != f.stat().st_ino  # the user's file is copied, never linked
    assert list((local.workdir / "store" / "tmp").iterdir()) == []


def test_exports_hardlink_store_files_unless_told_not_to(local, rpms, tmp_path):
    b: LocalBackend = local.backend
    [f] = rpms(1, "link")
    b.add_packages(REPO, [f])
    sha = file_sha256(f)
    tree = b.export_version(REPO, 1, None, tmp_path / "linked")
    [pkg] = [e for e in tree.files if e.path.startswith("Packages/")]
    assert (tmp_path / "linked" / pkg.path).stat().st_ino == b.blobs.path(sha).stat().st_ino
    copying = LocalBackend(b.session, b.store_root, b.published_root, hardlink_exports=False)
    copying.export_version(REPO, 1, None, tmp_path / "copied")
    assert (tmp_path / "copied" / pkg.path).stat().st_ino != b.blobs.path(sha).stat().st_ino


def test_import_with_take_files_moves_the_staging_files(local, other, rpms, tmp_path):
    local.backend.add_packages(REPO, rpms(3, "mv"))
    staging = tmp_path / "staging"
    local.backend.export_version(REPO, 1, None, staging)
    before = {p.name: (p, p.stat().st_ino) for p in staging.rglob("*.rpm")}
    other.backend.import_tree(REPO, staging, expectation(local.backend, 1), take_files=True)
    for pkg in other.backend.list_packages(REPO, 1):
        path, ino = before[pkg.filename]
        assert not path.exists()  # moved, not copied
        assert other.backend.blobs.path(pkg.sha256).stat().st_ino == ino


def test_rolled_back_import_leaves_no_store_files_behind(local, other, rpms, tmp_path):
    local.backend.add_packages(REPO, rpms(3, "rb"))
    local.commit()
    other.commit()
    tree = tmp_path / "tree"
    local.backend.export_version(REPO, 1, None, tree)
    bad = ImportExpectation(None, (), "sha256:" + "1" * 64, 3)
    with pytest.raises(BundleIntegrityError):
        other.backend.import_tree(REPO, tree, bad)
    written = set(other.backend.new_blobs)
    assert len(written) == 3 and all(other.backend.blobs.has(s) for s in written)
    other.extra["session"].rollback()  # the backend removes the files no committed row references
    assert not any(other.backend.blobs.has(s) for s in written)
    assert other.backend.new_blobs == set() and other.backend.discard_new_blobs() == 0


def test_committed_files_stay_when_a_later_transaction_rolls_back(local, rpms):
    b: LocalBackend = local.backend
    kept = rpms(2, "cm")
    b.add_packages(REPO, kept)
    local.commit()
    b.add_packages(REPO, kept + rpms(1, "gone"))
    local.extra["session"].rollback()
    assert all(b.blobs.has(file_sha256(f)) for f in kept)
    assert len(list(b.blobs.iter_blobs())) == 2


def test_version_changes_gives_what_an_incremental_plan_needs(local, rpms):
    b: LocalBackend = local.backend
    first = rpms(5, "vc")
    b.add_packages(REPO, first)
    later = rpms(2, "vc", start=5)
    b.add_packages(REPO, later)
    b.remove_packages(REPO, [file_sha256(first[1])])
    changes = b.version_changes(REPO, 1, 3)
    assert [p.sha256 for p in changes.added] == sorted(
        (file_sha256(f) for f in later), key=lambda s: next(p.location for p in changes.added if p.sha256 == s)
    )
    assert {p.name for p in changes.added} == {"vc0005", "vc0006"}
    assert changes.removed == [file_sha256(first[1])]
    full = b.version_changes(REPO, None, 3)
    assert len(full.added) == 6 and full.removed == []
    assert full.added == sorted(b.list_packages(REPO, 3), key=lambda p: (p.location, p.sha256))


def test_listed_packages_share_their_repeated_strings(local, rpms):
    """The database hands out a new string per row: the rows' arch, epoch, version and release are
    kept once per listing (at 20,000 packages the copies were MiBs of a streaming source's peak)."""
    b: LocalBackend = local.backend
    b.add_packages(REPO, rpms(3, "share"))
    b.add_packages(REPO, rpms(1, "share", start=3))
    for packages in (
        b.list_packages(REPO, 2),
        b.version_changes(REPO, None, 2).added,
        b.version_changes(REPO, 1, 2).added,
    ):
        assert packages and all(p.arch == "noarch" for p in packages)
        for field in ("arch", "epoch", "version", "release"):
            assert len({id(getattr(p, field)) for p in packages}) == len({getattr(p, field) for p in packages}), field


def test_garbage_collection_removes_only_unreferenced_files(local, rpms):
    b: LocalBackend = local.backend
    keep = rpms(2, "keep")
    b.add_packages(REPO, keep)
    local.commit()
    stray = "ab" * 32
    b.blobs.path(stray).parent.mkdir(parents=True, exist_ok=True)
    b.blobs.path(stray).write_bytes(b"orphan")
    assert b.remove_orphan_blobs(min_age_seconds=3600) == 0  # too young: may belong to a transaction in flight
    assert b.remove_orphan_blobs(min_age_seconds=0) == 1
    assert not b.blobs.has(stray)
    assert all(b.blobs.has(file_sha256(f)) for f in keep)


def test_statements_do_not_grow_with_the_number_of_packages(local, other, rpms, tmp_path):
    """No query per package: adding, exporting and importing 10x more packages costs about the
    same number of SQL statements (only batches of 500 add one)."""
    counts = {}
    for n in (30, 300):
        repo = f"ACME/tools/q{n}"
        local.backend.ensure_repository(repo)
        other.backend.ensure_repository(repo)
        files = rpms(n, f"q{n}-")
        with StatementCounter(local.extra["engine"]) as add:
            local.backend.add_packages(repo, files)
        with StatementCounter(local.extra["engine"]) as exp:
            local.backend.export_version(repo, 1, None, tmp_path / f"e{n}")
        info = local.backend.version_info(repo, 1)
        with StatementCounter(other.extra["engine"]) as imp:
            other.backend.import_tree(repo, tmp_path / f"e{n}", ImportExpectation(None, (), info.digest, n))
        counts[n] = (add.count, exp.count, imp.count)
    small, large = counts[30], counts[300]
    for at_30, at_300 in zip(small, large, strict=True):
        assert at_300 <= at_30 + 4, counts


def test_metadata_of_a_new_version_reuses_cached_blocks(local, rpms, tmp_path):
    b: LocalBackend = local.backend
    b.add_packages(REPO, rpms(600, "blk"))
    b.export_version(REPO, 1, None, tmp_path / "v1")
    cache = b.store_root / "index-cache"
    before = {p for p in cache.rglob("*") if p.is_file()}
    assert len(before) >= 3
    b.add_packages(REPO, rpms(5, "blk", start=600))
    b.export_version(REPO, 2, 1, tmp_path / "v2")
    added = {p for p in cache.rglob("*") if p.is_file()} - before
    assert 1 <= len(added) <= 2  # only the tail block(s) were compressed again
    assert len(read_tree_packages(tmp_path / "v2")) == 605


def test_repodata_is_one_gzip_stream_with_the_right_count(local, rpms, tmp_path):
    b: LocalBackend = local.backend
    b.add_packages(REPO, rpms(300, "gz"))
    b.export_version(REPO, 1, None, tmp_path / "t")
    for md, tag in (("primary", "metadata"), ("filelists", "filelists"), ("other", "otherdata")):
        [path] = (tmp_path / "t" / "repodata").glob(f"*-{md}.xml.gz")
        text = gzip.decompress(path.read_bytes()).decode()
        assert re.search(rf'<{tag} [^>]*packages="300"', text)
        assert text.count("<package ") == 300 and text.rstrip().endswith(f"</{tag}>")


def test_two_different_packages_with_one_file_name_cannot_share_a_version(local, tmp_path):
    b: LocalBackend = local.backend
    a = build_rpm(tmp_path / "a", "twin", payload_size=1000, seed=1)
    c = build_rpm(tmp_path / "c", "twin", payload_size=1000, seed=2)
    assert file_sha256(a) != file_sha256(c)
    b.add_packages(REPO, [a])
    with pytest.raises(BackendError) as e:
        b.add_packages(REPO, [c])
    assert "twin-1.0-1.noarch.rpm" in str(e.value)


def test_publish_switches_atomically_and_keeps_one_previous_tree(local, rpms, tmp_path):
    b: LocalBackend = local.backend
    for i in range(3):
        b.add_packages(REPO, rpms(1, f"pv{i}-"))
    link = Path(b.publish(REPO, 1))
    assert link.is_symlink()
    first_target = link.resolve()
    assert b.publish(REPO, 1) == str(link) and link.resolve() == first_target  # already there: no-op
    b.publish(REPO, 2)
    b.publish(REPO, 3)
    versions = sorted(p.name.split(".")[0] for p in link.resolve().parent.iterdir() if p.is_dir())
    assert versions == ["v2", "v3"]
    assert len(read_tree_packages(link)) == 3

    taken = b.published_root / "ACME" / "tools" / "handmade"
    taken.mkdir(parents=True)
    b.ensure_repository("ACME/tools/handmade")
    with pytest.raises(BackendError) as e:
        b.publish("ACME/tools/handmade", 0)
    assert "not a publication made by iss" in str(e.value)


def test_publish_links_only_the_change_into_the_pool(local, rpms, tmp_path):
    """The live and the previous tree share one package pool; a publish adds what the live version
    lacks and drops what only the tree before the live one used."""
    b: LocalBackend = local.backend
    first = rpms(20, "pool-")
    b.add_packages(REPO, first)  # version 1
    link = Path(b.publish(REPO, 1))
    pool = (link / "Packages").resolve()
    gone = file_sha256(first[0])
    b.remove_packages(REPO, [gone])  # version 2
    b.add_packages(REPO, rpms(2, "pool2-"))  # version 3
    linked = []
    real_link = os.link
    os.link = lambda src, dst, *a, **k: (linked.append(dst), real_link(src, dst, *a, **k))[1]
    try:
        b.publish(REPO, 3)
    finally:
        os.link = real_link
    assert len(linked) == 2  # the change, not the 21 packages of version 3
    assert (link / "Packages").resolve() == pool
    assert {u.sha256 for u in read_tree_packages(link)} == {p.sha256 for p in b.list_packages(REPO, 3)}
    assert (pool / "p" / first[0].name).exists()  # the previous tree (version 1) still reads it
    b.add_packages(REPO, rpms(1, "pool3-"))  # version 4
    b.publish(REPO, 4)
    assert not (pool / "p" / first[0].name).exists()  # only version 1's tree used it, and that tree is gone
    assert all(file_sha256(link / u.href) == u.sha256 for u in read_tree_packages(link))


def test_publish_makes_a_fresh_pool_when_a_file_name_gets_other_bytes(local, tmp_path):
    b: LocalBackend = local.backend
    a = build_rpm(tmp_path / "a", "twin", payload_size=1000, seed=1)
    c = build_rpm(tmp_path / "c", "twin", payload_size=1000, seed=2)
    b.add_packages(REPO, [a])
    link = Path(b.publish(REPO, 1))
    old_pool = (link / "Packages").resolve()
    b.remove_packages(REPO, [file_sha256(a)])
    b.add_packages(REPO, [c])
    b.publish(REPO, 3)
    assert (link / "Packages").resolve() != old_pool
    assert file_sha256(old_pool / "t" / "twin-1.0-1.noarch.rpm") == file_sha256(a)  # the previous tree is intact
    [u] = read_tree_packages(link)
    assert file_sha256(link / u.href) == file_sha256(c)


def test_bad_names_and_types_are_refused(local):
    b: LocalBackend = local.backend
    with pytest.raises(UsageError):
        b.ensure_repository("ACME/../etc")
    with pytest.raises(UsageError) as e:
        b.ensure_repository("ACME/tools/x", content_type="docker")
    assert "yum" in str(e.value)
    with pytest.raises(NotFound):
        b.latest_version("ACME/tools/missing")
    with pytest.raises(NotFound):
        b.list_packages(REPO, 9)
    assert get_content_type("yum").name == "yum"


def test_import_refuses_links_in_the_tree(local, other, rpms, tmp_path):
    local.backend.add_packages(REPO, rpms(1, "ln"))
    tree = tmp_path / "tree"
    local.backend.export_version(REPO, 1, None, tree)
    os.symlink("/etc/passwd", tree / "Packages" / "evil.rpm")
    with pytest.raises(BundleIntegrityError) as e:
        other.backend.import_tree(REPO, tree, expectation(local.backend, 1))
    assert "evil.rpm" in str(e.value)


def test_export_with_a_missing_store_file_fails_and_removes_its_output(local, rpms, tmp_path):
    b: LocalBackend = local.backend
    [f] = rpms(1, "lost")
    b.add_packages(REPO, [f])
    b.blobs.remove(file_sha256(f))
    with pytest.raises(BackendError) as e:
        b.export_version(REPO, 1, None, tmp_path / "out")
    assert "missing or damaged" in str(e.value)
    assert not (tmp_path / "out").exists()


def test_fast_set_digest_equals_the_domain_digest():
    from iss_plugin.adapters.backends.local.index import set_digest
    from iss_plugin.domain.packages import package_set_digest

    shas = [os.urandom(32).hex() for _ in range(300)]
    assert set_digest(shas + shas[:10]) == package_set_digest(shas)
    assert set_digest([]) == package_set_digest([])


def test_import_onto_a_base_that_is_not_the_latest_version(local, other, rpms, tmp_path):
    """The destination changed its copy after the base (here: an extra upload); the import still
    produces exactly the source's target."""
    s, d = local.backend, other.backend
    first = rpms(4, "nl")
    s.add_packages(REPO, first)
    s.export_version(REPO, 1, None, tmp_path / "full")
    d.import_tree(REPO, tmp_path / "full", expectation(s, 1))
    d.add_packages(REPO, rpms(2, "local-only"))  # destination version 2: the base plus strays
    s.add_packages(REPO, rpms(2, "nl", start=4))
    s.remove_packages(REPO, [file_sha256(first[0])])
    s.export_version(REPO, 3, 1, tmp_path / "inc")
    v = d.import_tree(REPO, tmp_path / "inc", expectation(s, 3, base=1, removed=[file_sha256(first[0])]))
    assert v == 3
    assert {p.sha256 for p in d.list_packages(REPO, 3)} == {p.sha256 for p in s.list_packages(REPO, 3)}


def test_damaged_caches_cost_time_never_correctness(local, rpms, tmp_path):
    b: LocalBackend = local.backend
    files = rpms(40, "cc")
    b.add_packages(REPO, files[:30])
    b.add_packages(REPO, files[30:])
    cache = b.store_root / "index-cache"
    b.export_version(REPO, 2, None, tmp_path / "before")
    for f in cache.rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")
    SetCache.forget_memory()  # what a new process would see: only the damaged files
    b.remove_packages(REPO, [file_sha256(files[0])])
    tree = b.export_version(REPO, 3, 1, tmp_path / "after")
    assert tree.new_packages == 10
    assert {u.sha256 for u in read_tree_packages(tmp_path / "after")} == {file_sha256(f) for f in files[1:]}
    assert b.version_info(REPO, 3).package_count == 39


def test_a_rolled_back_savepoint_does_not_delete_files_the_transaction_still_uses(local, rpms):
    b: LocalBackend = local.backend
    session = local.extra["session"]
    files = rpms(2, "sp")
    b.add_packages(REPO, files)
    try:
        with session.begin_nested():
            b.ensure_repository("ACME/tools/other")
            raise RuntimeError("undo the savepoint")
    except RuntimeError:
        pass
    assert all(b.blobs.has(file_sha256(f)) for f in files)
    local.commit()
    assert b.version_info(REPO, 1).package_count == 2 and all(b.blobs.has(file_sha256(f)) for f in files)


def _backend_on(url: str, root: Path):
    from iss_plugin.adapters.db.engine import make_engine, make_session_factory

    engine = make_engine(url)
    return engine, make_session_factory(engine), root / "store", root / "published"


def test_local_backend_on_sqlite_and_postgresql(database_url, rpms, tmp_path):
    """The same flow on both databases: upload, export, import, rollback clean-up, and two
    transactions storing the same new package at once (the second waits, then reuses the row)."""
    import threading

    from iss_plugin.adapters.db.migrate import upgrade

    upgrade(database_url)
    engine, factory, store, published = _backend_on(database_url, tmp_path)
    try:
        with factory() as s:
            b = LocalBackend(s, store, published)
            b.ensure_repository("ACME/db/src")
            b.ensure_repository("ACME/db/dst")
            b.add_packages("ACME/db/src", rpms(5, "db"))
            s.commit()
            b.export_version("ACME/db/src", 1, None, tmp_path / "tree")
            info = b.version_info("ACME/db/src", 1)
            assert b.import_tree("ACME/db/dst", tmp_path / "tree", ImportExpectation(None, (), info.digest, 5)) == 1
            s.commit()
            [stray] = rpms(1, "stray")
            b.add_packages("ACME/db/dst", [stray])
            s.rollback()
            if database_url.startswith("sqlite"):  # one writer at a time: removed at once
                assert not b.blobs.has(file_sha256(stray))
            else:  # concurrent writers: left to the garbage collection, whose age grace covers them
                assert b.blobs.has(file_sha256(stray))
                assert b.remove_orphan_blobs(0) >= 1
                assert not b.blobs.has(file_sha256(stray))
            assert b.latest_version("ACME/db/dst") == 1

        [shared] = rpms(1, "shared")
        first, second = factory(), factory()
        try:
            a = LocalBackend(first, store, published)
            assert a.add_packages("ACME/db/src", [shared]) == 2  # row inserted, not committed
            done = {}

            def other():
                done["version"] = LocalBackend(second, store, published).add_packages("ACME/db/dst", [shared])
                second.commit()

            t = threading.Thread(target=other)
            t.start()
            t.join(0.5)
            first.commit()
            t.join(30)
            assert done == {"version": 2}
        finally:
            first.close()
            second.close()
        with factory() as s:
            b = LocalBackend(s, store, published)
            assert b.version_info("ACME/db/src", 2).digest == b.version_info("ACME/db/dst", 2).digest
    finally:
        engine.dispose()


def test_parallel_http_sync_of_many_packages_leaves_no_temporary_files(local, rpms, tmp_path, serve_tree):
    from iss_plugin.adapters.fixtures import write_yum_repo

    b: LocalBackend = local.backend
    files = rpms(300, "par", payload_size=2000)
    http = serve_tree(write_yum_repo(tmp_path / "remote", files))
    assert b.sync(REPO, http.url) == 1
    assert len(http.rpm_requests()) == 300 and b.last_sync.fetched == 300
    assert {p.sha256 for p in b.list_packages(REPO, 1)} == {file_sha256(f) for f in files}
    assert list(b.blobs.tmp.iterdir()) == []


def test_pruned_index_cache_is_rebuilt_on_use(local, rpms, tmp_path):
    b: LocalBackend = local.backend
    files = rpms(20, "pr")
    b.add_packages(REPO, files)
    b.export_version(REPO, 1, None, tmp_path / "a")
    assert b.prune_index_cache(older_than_seconds=3600) == 0
    assert b.prune_index_cache(older_than_seconds=-1) >= 2
    SetCache.forget_memory()
    b.add_packages(REPO, rpms(1, "pr", start=20))
    tree = b.export_version(REPO, 2, 1, tmp_path / "b")
    assert tree.new_packages == 1 and len(read_tree_packages(tmp_path / "b")) == 21
