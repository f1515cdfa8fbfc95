"""Files given by reference (`sources`): read where they are stored instead of from a staged tree.

The same bundle comes out in every format as from a fully staged tree; a source that is missing or
has another size fails the export and leaves nothing behind."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile

import pytest

from iss_plugin.adapters.bundles import stream
from iss_plugin.adapters.bundles.reader import open_bundle, verify_bundle
from iss_plugin.adapters.bundles.stream import Entry, tar_gz_stream, write_tar_gz
from iss_plugin.adapters.bundles.writer import finalize_bundle
from iss_plugin.domain.errors import IssError
from iss_plugin.domain.manifest import FileEntry

from .conftest import ORG, stage

FORMATS = [("dir", None), ("tgz", None), ("iso", None), ("tgz", 8192)]


def stage_by_reference(out_dir, store):
    """A staged tree whose package files were moved to `store`: sources maps them back."""
    s = stage(out_dir)
    sources = {}
    for path in s.contents:
        if path.endswith(".rpm"):
            target = store / hashlib.sha256(path.encode()).hexdigest()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(s.staging / path, target)
            sources[path] = str(target)
    return s, sources


@pytest.mark.parametrize("fmt, chunk_size", FORMATS, ids=["dir", "tgz", "iso", "tgz-chunks"])
def test_by_reference_writes_the_same_verified_bundle(sandbox, signer, trusted, fmt, chunk_size):
    out_dir = sandbox / "out"
    out_dir.mkdir()
    s, sources = stage_by_reference(out_dir, sandbox / "store")
    output = finalize_bundle(
        s.staging,
        s.manifest,
        signer,
        s.known,
        out_dir=out_dir,
        name="b",
        fmt=fmt,
        chunk_size=chunk_size,
        sources=sources,
    )
    assert sorted(os.listdir(out_dir)) == sorted(p.name for p in output.files)  # no staging left
    assert all(os.path.exists(src) for src in sources.values())  # the store's files are only read
    with open_bundle(output.path, sandbox / "work") as opened:
        assert verify_bundle(opened, trusted, ORG) == output.manifest
        assert {f.path for f in output.manifest.files} == set(s.contents)


def test_by_reference_tar_gz_has_the_bytes_of_a_staged_one(sandbox, signer):
    staged, by_ref = sandbox / "staged", sandbox / "by-ref"
    staged.mkdir()
    by_ref.mkdir()
    a = stage(staged)
    b, sources = stage_by_reference(by_ref, sandbox / "store")
    out_a = finalize_bundle(a.staging, a.manifest, signer, a.known, out_dir=staged, name="b", fmt="tgz")
    out_b = finalize_bundle(
        b.staging, b.manifest, signer, b.known, out_dir=by_ref, name="b", fmt="tgz", sources=sources
    )
    assert out_a.manifest == out_b.manifest
    with tarfile.open(out_a.path) as ta, tarfile.open(out_b.path) as tb:
        assert [(m.name, m.size) for m in ta] == [(m.name, m.size) for m in tb]
        assert all(ta.extractfile(m.name).read() == tb.extractfile(m.name).read() for m in ta if m.isfile())


@pytest.mark.parametrize("fmt", ["dir", "tgz", "iso"])
def test_a_source_of_another_size_fails_and_leaves_nothing(sandbox, signer, fmt):
    out_dir = sandbox / "out"
    out_dir.mkdir()
    s, sources = stage_by_reference(out_dir, sandbox / "store")
    victim = next(iter(sources))
    with open(sources[victim], "ab") as fh:
        fh.write(b"more")
    with pytest.raises(IssError, match="bytes"):
        finalize_bundle(s.staging, s.manifest, signer, s.known, out_dir=out_dir, name="b", fmt=fmt, sources=sources)
    assert os.listdir(out_dir) == []


@pytest.mark.parametrize("fmt", ["dir", "tgz", "iso"])
def test_a_missing_source_is_named_and_leaves_nothing(sandbox, signer, fmt):
    out_dir = sandbox / "out"
    out_dir.mkdir()
    s, sources = stage_by_reference(out_dir, sandbox / "store")
    victim = sorted(sources)[-1]
    os.unlink(sources[victim])
    with pytest.raises(IssError) as e:
        finalize_bundle(s.staging, s.manifest, signer, s.known, out_dir=out_dir, name="b", fmt=fmt, sources=sources)
    assert victim in e.value.message
    assert os.listdir(out_dir) == []


def test_sources_must_be_known_and_not_staged_too(sandbox, signer):
    out_dir = sandbox / "out"
    out_dir.mkdir()
    s, sources = stage_by_reference(out_dir, sandbox / "store")
    staged_too = next(p for p in s.contents if p.endswith("repomd.xml"))
    bad = {
        **sources,
        "repos/tools/utils/Packages/x/unknown.rpm": sources[next(iter(sources))],
        staged_too: str(s.staging / staged_too),
    }
    with pytest.raises(IssError) as e:
        finalize_bundle(s.staging, s.manifest, signer, s.known, out_dir=out_dir, name="b", fmt="tgz", sources=bad)
    assert (
        "repos/tools/utils/Packages/x/unknown.rpm: given by reference, but its checksum is not known"
        in e.value.problems
    )
    assert f"{staged_too}: both in the staging directory and given by reference" in e.value.problems
    assert os.listdir(out_dir) == []


def test_write_tar_gz_writes_what_tar_gz_stream_yields_across_buffers(tmp_path, monkeypatch):
    monkeypatch.setattr(stream, "RUN_SIZE", 4096)  # files larger than a buffer, runs that wrap the ring
    files = []
    for i, size in enumerate([0, 1, 511, 512, 4095, 4096, 4097, 20000, 3]):
        path = tmp_path / f"f{i}.{'rpm' if i % 3 else 'xml'}"
        path.write_bytes(bytes((i * 7 + j) % 251 for j in range(size)))
        files.append(Entry(f"repos/p/r/{path.name}", size, source=path))
    entries = [Entry("manifest.json", 2, data=b"{}"), *files]
    expected = b"".join(tar_gz_stream(entries, mtime=7))
    with open(tmp_path / "raw.tar.gz", "wb", buffering=0) as raw:  # writev on the descriptor
        write_tar_gz(entries, raw, mtime=7)
    buffered = io.BytesIO()  # write by write
    write_tar_gz(entries, buffered, mtime=7)
    assert (tmp_path / "raw.tar.gz").read_bytes() == expected == buffered.getvalue()
    with tarfile.open(fileobj=io.BytesIO(expected)) as tar:
        for e in files:
            assert tar.extractfile(e.path).read() == e.source.read_bytes()


def test_write_tar_gz_raises_a_sink_error_without_hanging(tmp_path):
    class Full(io.RawIOBase):
        def writable(self):
            return True

        def write(self, data):
            raise OSError(28, "No space left on device")

    big = tmp_path / "big.rpm"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    with pytest.raises(OSError, match="No space left"):
        write_tar_gz([Entry("big.rpm", big.stat().st_size, source=big)] * 4, Full())


def test_a_source_that_grows_or_shrinks_aborts_the_stream(tmp_path):
    path = tmp_path / "a.rpm"
    path.write_bytes(b"abcdef")
    with pytest.raises(IssError, match="grew while the bundle was being written"):
        b"".join(tar_gz_stream([Entry("a.rpm", 5, source=path)]))
    with pytest.raises(IssError, match="has 6 bytes, 7 expected"):
        b"".join(tar_gz_stream([Entry("a.rpm", 7, source=path)]))
    with pytest.raises(IssError, match="a.rpm: cannot read"):
        b"".join(tar_gz_stream([Entry("a.rpm", 7, source=tmp_path / "missing.rpm")]))


@pytest.mark.parametrize("link", [True, False])
def test_a_directory_bundle_links_or_copies_its_sources(sandbox, signer, trusted, link):
    out_dir = sandbox / "out"
    out_dir.mkdir()
    s, sources = stage_by_reference(out_dir, sandbox / "store")
    output = finalize_bundle(
        s.staging, s.manifest, signer, s.known, out_dir=out_dir, name="b", fmt="dir", sources=sources, link_sources=link
    )
    for path, source in sources.items():
        assert os.path.samefile(output.path / path, source) == link
        assert (output.path / path).read_bytes() == open(source, "rb").read()
    with open_bundle(output.path, sandbox / "work") as opened:
        assert verify_bundle(opened, trusted, ORG) == output.manifest


@pytest.mark.parametrize("fmt", ["dir", "tgz"])
def test_a_source_path_that_escapes_is_refused_before_anything_is_placed(sandbox, signer, fmt):
    out_dir = sandbox / "out"
    out_dir.mkdir()
    s, sources = stage_by_reference(out_dir, sandbox / "store")
    victim = next(iter(sources))
    escaping = "repos/rhel-9/baseos/../../../../ESCAPED.rpm"
    sources = {(escaping if path == victim else path): source for path, source in sources.items()}
    known = [FileEntry(escaping, f.sha256, f.size) if f.path == victim else f for f in s.known]
    with pytest.raises(IssError) as e:
        finalize_bundle(s.staging, s.manifest, signer, known, out_dir=out_dir, name="b", fmt=fmt, sources=sources)
    assert "is inconsistent; nothing was written" in e.value.message
    assert any(p.startswith(escaping + ": ") for p in e.value.problems)
    assert os.listdir(out_dir) == []
    assert not (sandbox / "ESCAPED.rpm").exists() and not (out_dir.parent.parent / "ESCAPED.rpm").exists()
