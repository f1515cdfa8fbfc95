"""Placing files given by reference into a directory bundle: links, or copies on several threads.

Every file ends up with its source's bytes; a bad source fails with its name, the other threads stop,
and nothing of the store is changed."""

from __future__ import annotations

import os
import threading

import pytest

from iss_plugin.adapters.bundles.materialize import MIN_PER_THREAD, Materializer
from iss_plugin.domain.errors import IssError

COUNT = MIN_PER_THREAD * 3  # enough for three copy threads


def make_store(root, count=COUNT):
    store = root / "store"
    store.mkdir()
    sources, sizes = {}, {}
    for i in range(count):
        src = store / f"{i:05d}"
        src.write_bytes(os.urandom(100 + i % 37))
        path = f"repos/p/r/Packages/{'abc'[i % 3]}/pkg-{i:05d}.rpm"
        sources[path], sizes[path] = str(src), src.stat().st_size
    return sources, sizes


def copy_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("iss-copy")}


@pytest.mark.parametrize("link", [True, False], ids=["links", "copies"])
def test_every_file_has_its_source_bytes(tmp_path, link):
    sources, sizes = make_store(tmp_path)
    staging = tmp_path / "staging"
    staging.mkdir()
    with Materializer(staging, sources, sizes, link=link, threads=3) as placing:
        placing.wait()
    for path, src in sources.items():
        target = staging / path
        assert target.read_bytes() == open(src, "rb").read()
        assert os.path.samefile(target, src) is link
    assert copy_threads() == set()


def test_copies_are_spread_over_threads(tmp_path, monkeypatch):
    from iss_plugin.adapters.bundles import materialize

    seen: set[str] = set()
    real = materialize.copy_exact
    monkeypatch.setattr(
        materialize, "copy_exact", lambda *a, **k: (seen.add(threading.current_thread().name), real(*a, **k))
    )
    sources, sizes = make_store(tmp_path)
    (tmp_path / "staging").mkdir()
    with Materializer(tmp_path / "staging", sources, sizes, link=False, threads=3) as placing:
        placing.wait()
    assert len(seen) == 3


def test_a_source_of_another_size_fails_naming_it_and_stops_the_rest(tmp_path):
    sources, sizes = make_store(tmp_path)
    bad = sorted(sources)[COUNT // 2]
    sizes[bad] += 1
    before = {src: open(src, "rb").read() for src in sources.values()}
    (tmp_path / "staging").mkdir()
    with pytest.raises(IssError, match=f"{bad}: .* has {sizes[bad] - 1} bytes, {sizes[bad]} listed"):
        with Materializer(tmp_path / "staging", sources, sizes, link=False, threads=3) as placing:
            placing.wait()
    assert not (tmp_path / "staging" / bad).exists()  # checked before the copy is made
    assert copy_threads() == set()
    assert {src: open(src, "rb").read() for src in sources.values()} == before


def test_a_missing_source_fails_naming_it(tmp_path):
    sources, sizes = make_store(tmp_path, count=10)
    gone = sorted(sources)[3]
    os.unlink(sources[gone])
    (tmp_path / "staging").mkdir()
    with pytest.raises(IssError, match=f"{gone}: cannot read {sources[gone]}"):
        with Materializer(tmp_path / "staging", sources, sizes, link=False) as placing:
            placing.wait()


def test_leaving_the_block_early_waits_for_the_threads(tmp_path):
    sources, sizes = make_store(tmp_path)
    (tmp_path / "staging").mkdir()
    with pytest.raises(RuntimeError, match="sealing failed"):
        with Materializer(tmp_path / "staging", sources, sizes, link=False, threads=3):
            raise RuntimeError("sealing failed")
    assert copy_threads() == set()  # the caller may now remove the staging tree
