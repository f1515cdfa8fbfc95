"""The local store's side of by-reference exports: the tree it describes, and its checks.

export_version_by_reference must describe exactly the files export_version places (same paths,
checksums and sizes; only the repodata is written, and inside the store), and copies out of the store refuse a store
file of the wrong size as links do."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from iss_plugin.adapters.backends.local import LocalBackend
from iss_plugin.adapters.db.engine import make_engine, make_session_factory
from iss_plugin.adapters.db.migrate import upgrade
from iss_plugin.adapters.fixtures import build_rpms
from iss_plugin.domain.errors import BackendError

REPO = "ACME/tools/utils"


@pytest.fixture
def backend(tmp_path) -> LocalBackend:
    url = f"sqlite:///{tmp_path / 'iss.db'}"
    upgrade(url)
    engine = make_engine(url)
    session = make_session_factory(engine)()
    b = LocalBackend(session, tmp_path / "store", tmp_path / "published")
    b.ensure_repository(REPO)
    b.add_packages(REPO, build_rpms(tmp_path / "rpms", 4, prefix="utils"))
    b.add_packages(REPO, build_rpms(tmp_path / "rpms2", 2, prefix="more"))
    yield b
    session.close()
    engine.dispose()


@pytest.mark.parametrize("base", [None, 1])
def test_by_reference_describes_what_export_version_places(backend, tmp_path, base):
    placed = backend.export_version(REPO, 2, base, tmp_path / "placed")
    staging = tmp_path / "staging"
    ref = backend.export_version_by_reference(
        REPO,
        2,
        base,
        staging / "repos/tools/utils",
        added=backend.version_changes(REPO, base, 2).added,
        relative_to=staging,
    )
    assert ref.new_packages == placed.new_packages == (6 if base is None else 2)
    assert sorted((f"repos/tools/utils/{f.path}", f.sha256, f.size) for f in placed.files) == sorted(
        (f.path, f.sha256, f.size) for f in ref.files
    )
    # every file is the store's own (packages as blobs, the repodata it just wrote in its
    # index cache), with the bytes placed; nothing is written under the staging directory
    assert set(ref.sources) == {f.path for f in ref.files}
    store = os.fspath(backend.store_root) + "/"
    for path, source in ref.sources.items():
        assert source.startswith(store), source
        assert (tmp_path / "placed" / path.removeprefix("repos/tools/utils/")).read_bytes() == Path(source).read_bytes()
    assert [p for p in staging.rglob("*") if not p.is_dir()] == []
    assert not list((backend.store_root / "tmp").iterdir())  # the store's tmp is left clean


def test_by_reference_without_the_packages_looks_them_up(backend, tmp_path):
    with_added = backend.export_version_by_reference(
        REPO, 2, None, tmp_path / "a", added=backend.version_changes(REPO, None, 2).added
    )
    stale = backend.version_changes(REPO, None, 1).added  # not the packages of version 2: ignored
    looked_up = backend.export_version_by_reference(REPO, 2, None, tmp_path / "b", added=stale)
    plain = backend.export_version_by_reference(REPO, 2, None, tmp_path / "c")
    assert with_added.files == looked_up.files == plain.files
    assert with_added.sources == looked_up.sources == plain.sources


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_copying_export_refuses_a_damaged_store_file(backend, tmp_path, damage):
    copying = LocalBackend(backend.session, backend.store_root, backend.published_root, hardlink_exports=False)
    victim = next(iter(copying.export_version_by_reference(REPO, 2, None, tmp_path / "probe").sources.values()))
    os.chmod(victim, 0o644)
    if damage == "missing":
        os.unlink(victim)
    else:
        with open(victim, "r+b") as fh:
            fh.truncate(10)
    with pytest.raises(BackendError) as e:
        copying.export_version(REPO, 2, None, tmp_path / "out")
    assert "missing or damaged" in str(e.value)
    assert not (tmp_path / "out").exists()
