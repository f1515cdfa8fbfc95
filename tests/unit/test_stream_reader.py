"""The one-pass reader of a pulled tar stream: hostile input. Signature first; every member checked
and listed in the signed manifest with its size and sha256; nothing left behind on a refusal."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from iss_plugin.adapters.bundles.stream_reader import read_tar_stream
from iss_plugin.domain.errors import BundleIntegrityError, UntrustedSource

GOOD_SIG = b"signed\n"


def seal(manifest: bytes, signature: bytes) -> None:
    if signature != GOOD_SIG:
        raise UntrustedSource("manifest.json is not signed by a trusted key")


def member(
    name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = ""
) -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.type, ti.size, ti.linkname = kind, len(data) if kind == tarfile.REGTYPE else 0, link
    return ti, data


def stream(
    *members: tuple[tarfile.TarInfo, bytes], listed=None, signature: bytes = GOOD_SIG, cut: int = 0
) -> io.BytesIO:
    files = [(ti.name, data) for ti, data in members if ti.type == tarfile.REGTYPE]
    listed = files if listed is None else listed
    manifest = json.dumps(
        {"files": [{"path": p, "sha256": hashlib.sha256(d).hexdigest(), "size": len(d)} for p, d in listed]}
    ).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for ti, data in [member("manifest.json", manifest), member("manifest.json.sig", signature), *members]:
            tar.addfile(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)
    raw = out.getvalue()
    return io.BytesIO(raw[: len(raw) - cut] if cut else raw)


def read(tmp_path, body: io.BytesIO):
    return read_tar_stream(body, "the stream", tmp_path / "work", seal=seal)


def left(tmp_path) -> list[str]:
    return [str(p) for p in (tmp_path / "work").rglob("*")]


def test_a_good_stream_is_extracted_and_removed_when_closed(tmp_path):
    body = stream(member("repos", kind=tarfile.DIRTYPE), member("repos/a.rpm", b"x" * 5000), member("b.csv", b"b"))
    with read(tmp_path, body) as opened:
        assert (opened.root / "repos/a.rpm").read_bytes() == b"x" * 5000
        assert (opened.root / "manifest.json").exists() and (opened.root / "manifest.json.sig").exists()
    assert left(tmp_path) == []


@pytest.mark.parametrize(
    ("body", "error", "words"),
    [
        (lambda: stream(member("a.rpm", b"1"), signature=b"forged"), UntrustedSource, "not signed"),
        (lambda: stream(member("a.rpm", b"1"), listed=[("a.rpm", b"2")]), BundleIntegrityError, "altered in transit"),
        (lambda: stream(member("a.rpm", b"1"), listed=[]), BundleIntegrityError, "not listed"),
        (lambda: stream(member("a.rpm", b"12"), listed=[("a.rpm", b"1")]), BundleIntegrityError, "is not 1 bytes"),
        (
            lambda: stream(member("a.rpm", b"1"), listed=[("a.rpm", b"1"), ("b.rpm", b"2")]),
            BundleIntegrityError,
            "ended",
        ),
        (lambda: stream(member("../evil", b"1")), BundleIntegrityError, "not a safe bundle stream"),
        (lambda: stream(member("/etc/evil", b"1")), BundleIntegrityError, "not a safe bundle stream"),
        (lambda: stream(member("l", kind=tarfile.SYMTYPE, link="/etc/passwd")), BundleIntegrityError, "not a safe"),
        (lambda: stream(member("a.rpm", b"1"), member("a.rpm", b"1")), BundleIntegrityError, "more than once"),
        (lambda: stream(member("a.rpm", b"x" * 9000), cut=9000), BundleIntegrityError, "truncated|ended"),
    ],
    ids=["forged", "flipped", "unlisted", "wrong-size", "missing", "dotdot", "absolute", "symlink", "dup", "cut"],
)
def test_a_bad_stream_is_refused_and_leaves_nothing(tmp_path, body, error, words):
    with pytest.raises(error, match=words):
        read(tmp_path, body())
    assert left(tmp_path) == []


def test_the_manifest_and_its_signature_must_come_first(tmp_path):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        ti, data = member("a.rpm", b"1")
        tar.addfile(ti, io.BytesIO(data))
    out.seek(0)
    with pytest.raises(BundleIntegrityError, match="must start with manifest.json"):
        read(tmp_path, out)
    assert left(tmp_path) == []


def test_a_receiver_takes_each_checked_file_and_the_bundle_records_it_as_held(tmp_path):
    """With `receive`, a file the receiver takes is its own (here: moved away) and is listed in
    `held` with its sha256; a file it declines stays under the root; nothing is offered before its
    sha256 matched the manifest."""
    taken: dict[str, bytes] = {}

    def receive(path, file, sha256):
        if not path.endswith(".rpm"):
            return False
        assert hashlib.sha256(file.read_bytes()).hexdigest() == sha256
        taken[path] = file.read_bytes()
        file.unlink()
        return True

    body = stream(member("repos", kind=tarfile.DIRTYPE), member("repos/a.rpm", b"x" * 5000), member("b.csv", b"b"))
    with read_tar_stream(body, "the stream", tmp_path / "work", seal=seal, receive=receive) as opened:
        assert taken == {"repos/a.rpm": b"x" * 5000}
        assert opened.held == {"repos/a.rpm": hashlib.sha256(b"x" * 5000).hexdigest()}
        assert not (opened.root / "repos/a.rpm").exists() and (opened.root / "b.csv").read_bytes() == b"b"
    assert left(tmp_path) == []

    offered: list[str] = []
    bad = stream(member("a.rpm", b"1"), member("c.rpm", b"3"), listed=[("a.rpm", b"1"), ("c.rpm", b"2")])
    with pytest.raises(BundleIntegrityError, match="altered in transit"):
        read_tar_stream(
            bad, "the stream", tmp_path / "work", seal=seal, receive=lambda p, f, s: offered.append(p) or False
        )
    assert offered == ["a.rpm"] and left(tmp_path) == []
