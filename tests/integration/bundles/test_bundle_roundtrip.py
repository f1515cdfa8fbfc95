"""Write a bundle in every format, read it back: the same files, verified, nothing left behind."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from iss_plugin.adapters.bundles.reader import open_bundle, verify_bundle
from iss_plugin.adapters.bundles.signing import verify
from iss_plugin.adapters.bundles.writer import finalize_bundle, manifest_bytes
from iss_plugin.domain.errors import IssError, UsageError
from iss_plugin.domain.manifest import MANIFEST_NAME, SIGNATURE_NAME, FileEntry

from .conftest import ORG, build, snapshot, stage

FORMATS = [
    ("dir", None, ["bundle"]),
    ("tgz", None, ["bundle.tar.gz"]),
    ("iso", None, ["bundle.iso"]),
    ("tgz", 8192, None),
    ("iso", 16384, None),
    ("dir", 8192, None),  # a chunked directory bundle is a chunked tar.gz
]


@pytest.mark.parametrize(
    "fmt, chunk_size, expected", FORMATS, ids=["dir", "tgz", "iso", "tgz-chunks", "iso-chunks", "dir-chunks"]
)
def test_round_trip(sandbox, signer, trusted, fmt, chunk_size, expected):
    out_dir = sandbox / "out"
    output, contents = build(out_dir, signer, fmt, chunk_size)
    written = sorted(os.listdir(out_dir))
    assert written == sorted(p.name for p in output.files)  # staging and temporary files are gone
    if expected:
        assert written == expected
    else:
        suffix = ".iso" if fmt == "iso" else ".tar.gz"
        assert output.chunked and output.path.name == f"bundle{suffix}.000"
        assert output.toc == out_dir / "bundle.toc.json" and output.files[-1] == output.toc
        assert len(output.files) >= 3
        assert all(p.stat().st_size <= chunk_size for p in output.files[:-1])
        toc = json.loads(output.toc.read_text())
        joined = b"".join(p.read_bytes() for p in output.files[:-1])
        assert toc["size"] == len(joined) == output.size
        assert toc["sha256"] == hashlib.sha256(joined).hexdigest()
    assert output.format == ("iso" if fmt == "iso" else "dir" if fmt == "dir" and not chunk_size else "tgz")

    work = sandbox / "work"
    with open_bundle(output.path, work) as opened:
        manifest = verify_bundle(opened, trusted, ORG)
        assert manifest == output.manifest
        assert {f.path for f in manifest.files} == set(contents)
        for path, data in contents.items():
            assert (opened.root / path).read_bytes() == data
        assert set(opened.inventory()) == set(contents) | {MANIFEST_NAME, SIGNATURE_NAME}
        if fmt == "dir" and not chunk_size:
            assert opened.root == output.path and opened.temp_dir is None  # read in place
        else:
            assert opened.root.parent == work
    assert os.listdir(work) == []


def test_manifest_is_canonical_signed_and_lists_every_file(sandbox, signer):
    output, contents = build(sandbox / "out", signer, "dir")
    raw = (output.path / MANIFEST_NAME).read_bytes()
    assert raw == manifest_bytes(output.manifest)
    assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    assert verify(signer.public_pem, raw, (output.path / SIGNATURE_NAME).read_bytes())
    m = output.manifest
    assert m.source_key_fingerprint == signer.fingerprint
    assert [f.path for f in m.files] == sorted(contents)
    for f in m.files:  # products.csv was hashed by the writer, the rest came from the backend
        assert f == FileEntry(f.path, hashlib.sha256(contents[f.path]).hexdigest(), len(contents[f.path]))


def test_dir_bundle_is_a_rename_not_a_copy(sandbox, signer):
    out_dir = sandbox / "out"
    out_dir.mkdir()
    s = stage(out_dir)
    some = next(p for p in s.contents if p.endswith(".rpm"))
    inode = (s.staging / some).stat().st_ino
    output = finalize_bundle(s.staging, s.manifest, signer, s.known, out_dir=out_dir, name="b", fmt="dir")
    assert (output.path / some).stat().st_ino == inode
    assert not s.staging.exists()


def test_tar_gz_is_standard_deterministic_and_starts_with_the_manifest(sandbox, signer):
    a, _ = build(sandbox / "a", signer, "tgz")
    b, _ = build(sandbox / "b", signer, "tgz")
    assert a.path.read_bytes() == b.path.read_bytes()
    with tarfile.open(a.path, "r:gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members[:3]] == [MANIFEST_NAME, SIGNATURE_NAME, "products.csv"]
    assert all(m.uid == 0 and m.gid == 0 and m.uname == "" and m.mtime == members[0].mtime for m in members)
    assert all(m.isfile() or m.isdir() for m in members)
    assert len(gzip.decompress(a.path.read_bytes())) % tarfile.RECORDSIZE == 0
    if shutil.which("tar"):
        listing = subprocess.run(["tar", "-tzf", str(a.path)], capture_output=True, text=True, check=True).stdout
        assert listing.splitlines()[0] == MANIFEST_NAME


def test_progress_reports_every_byte_archived(sandbox, signer):
    out_dir = sandbox / "out"
    out_dir.mkdir()
    s = stage(out_dir)
    seen = []
    out = finalize_bundle(
        s.staging, s.manifest, signer, s.known, out_dir=out_dir, name="b", fmt="tgz", progress=seen.append
    )
    csv = len(s.contents["products.csv"])
    sealed = len(manifest_bytes(out.manifest)) + len(signer.sign(manifest_bytes(out.manifest))) + 1
    # products.csv hashed (the backend knew the rest), then every byte archived, manifest and signature too
    assert sum(seen) == csv + sum(len(d) for d in s.contents.values()) + sealed


@pytest.mark.parametrize("fmt, chunk_size", [("dir", None), ("tgz", None), ("tgz", 8192), ("iso", None)])
def test_never_overwrites_an_existing_bundle(sandbox, signer, fmt, chunk_size):
    out_dir = sandbox / "out"
    _first, _ = build(out_dir, signer, fmt, chunk_size)
    before = snapshot(out_dir)
    s = stage(out_dir, seed=2)
    with pytest.raises(UsageError, match="already exists"):
        finalize_bundle(
            s.staging, s.manifest, signer, s.known, out_dir=out_dir, name="bundle", fmt=fmt, chunk_size=chunk_size
        )
    assert snapshot(out_dir) == before  # the old bundle untouched, the new staging removed


def test_inconsistent_staging_fails_and_leaves_nothing(sandbox, signer):
    out_dir = sandbox / "out"
    out_dir.mkdir()
    s = stage(out_dir)
    (s.staging / "repos/tools/utils/link.rpm").symlink_to("/etc/passwd")
    wrong = [
        FileEntry(f.path, f.sha256, f.size + 1) if f.path.endswith("pkg0-1.0-1.noarch.rpm") else f for f in s.known
    ]
    wrong.append(FileEntry("repos/tools/utils/Packages/g/ghost.rpm", "0" * 64, 1))
    with pytest.raises(IssError) as e:
        finalize_bundle(s.staging, s.manifest, signer, wrong, out_dir=out_dir, name="b", fmt="tgz")
    assert "the staged bundle" in e.value.message and "nothing was written" in e.value.message
    assert "repos/tools/utils/link.rpm: is a symbolic link; bundles hold only regular files" in e.value.problems
    assert (
        "repos/tools/utils/Packages/g/ghost.rpm: listed by the export but not in the staging directory"
        in e.value.problems
    )
    assert any("bytes on disk" in p and "baseos-pkg0" in p for p in e.value.problems)
    assert os.listdir(out_dir) == []


def test_a_manifest_that_breaks_its_schema_is_not_written(sandbox, signer):
    from dataclasses import replace

    out_dir = sandbox / "out"
    out_dir.mkdir()
    s = stage(out_dir)
    bad = replace(s.manifest, organization="not a label", kind="incremental")
    with pytest.raises(IssError) as e:
        finalize_bundle(s.staging, bad, signer, s.known, out_dir=out_dir, name="b", fmt="dir")
    assert "does not follow schemas/bundle/manifest.v1.json" in e.value.message
    assert any(p.startswith("organization:") for p in e.value.problems)
    assert any(p.startswith("base_content_view_version:") for p in e.value.problems)  # incremental needs a base
    assert os.listdir(out_dir) == []


def test_failure_while_archiving_removes_partial_output(sandbox, signer, monkeypatch):
    out_dir = sandbox / "out"
    out_dir.mkdir()
    s = stage(out_dir)
    victim = s.staging / next(p for p in s.contents if p.endswith("pkg3-1.0-1.noarch.rpm"))

    import iss_plugin.adapters.bundles.stream as stream

    original = stream.Entry.open_fd

    def shrinking_open(self):
        if self.source is not None and Path(self.source) == victim:
            victim.write_bytes(b"short")  # the file changes under the writer
        return original(self)

    monkeypatch.setattr(stream.Entry, "open_fd", shrinking_open)
    with pytest.raises(IssError, match="changed while the bundle was being written"):
        finalize_bundle(s.staging, s.manifest, signer, s.known, out_dir=out_dir, name="b", fmt="tgz", chunk_size=4096)
    assert os.listdir(out_dir) == []


def test_bad_arguments_are_usage_errors(sandbox, signer):
    out_dir = sandbox / "out"
    out_dir.mkdir()
    for kwargs, needle in [
        ({"fmt": "zip"}, "unknown bundle format"),
        ({"name": "../x"}, "cannot name a bundle"),
        ({"name": ".hidden"}, "cannot name a bundle"),
        ({"chunk_size": 10}, "too small"),
    ]:
        s = stage(out_dir)
        args = {"out_dir": out_dir, "name": "b", "fmt": "tgz"} | kwargs
        with pytest.raises(UsageError, match=needle):
            finalize_bundle(s.staging, s.manifest, signer, s.known, **args)
        assert os.listdir(out_dir) == []


def test_many_chunks_get_wider_suffixes(sandbox, signer):
    output, _ = build(sandbox / "out", signer, "tgz", 4096, packages=300, package_size=8000)
    chunks = output.files[:-1]
    assert len(chunks) > 1000
    assert chunks[0].name == "bundle.tar.gz.0000" and chunks[-1].name == f"bundle.tar.gz.{len(chunks) - 1:04d}"
    with open_bundle(chunks[0], sandbox / "work") as opened:
        assert len(opened.inventory()) == 300 * 2 + 4 + 3


def test_a_streamed_bundle_needs_no_staging_and_reads_back(sandbox, signer, trusted):
    """Phase 3: manifest sealed first, then tar.gz bytes straight from where the files live."""
    from iss_plugin.adapters.bundles.stream import Entry, tar_gz_stream
    from iss_plugin.adapters.bundles.writer import seal_manifest

    s = stage(sandbox / "store")  # stands in for the content store: any paths will do
    csv = s.contents["products.csv"]
    files = [*s.known, FileEntry("products.csv", hashlib.sha256(csv).hexdigest(), len(csv))]
    manifest, data, sig = seal_manifest(s.manifest, signer, files)
    entries = [Entry(MANIFEST_NAME, len(data), data=data), Entry(SIGNATURE_NAME, len(sig), data=sig)]
    entries += [Entry(f.path, f.size, source=s.staging / f.path) for f in manifest.files]
    body = sandbox / "received.tar.gz"
    with open(body, "wb") as response:
        for piece in tar_gz_stream(entries):
            response.write(piece)
    with open_bundle(body, sandbox / "work") as opened:
        assert verify_bundle(opened, trusted, ORG) == manifest
