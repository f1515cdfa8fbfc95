"""The entry stream -> tar.gz writer, in memory."""

import gzip
import hashlib
import io
import tarfile
import zlib

import pytest

from iss_plugin.adapters.bundles.stream import Entry, tar_gz_stream
from iss_plugin.domain.errors import IssError


def entries(payload=b"\x8f" * 70000):
    return [
        Entry("manifest.json", 2, data=b"{}"),
        Entry("manifest.json.sig", 4, data=b"sig\n"),
        Entry("products.csv", 30, data=b"a,b,c\n" * 5),
        Entry("repos/p/r/Packages/a/a-1.rpm", len(payload), data=payload),
        Entry("repos/p/r/repodata/repomd.xml", 4000, data=b"<x/>" * 1000),
        Entry("repos/p/r/Packages/" + "long" * 40 + ".rpm", 0, data=b""),
    ]


@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_standard_gzip_of_a_standard_tar(level):
    blob = b"".join(tar_gz_stream(entries(), mtime=1714644930, compresslevel=level))
    raw = gzip.decompress(blob)  # checks CRC and length
    assert len(raw) % tarfile.RECORDSIZE == 0
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names[:3] == ["manifest.json", "manifest.json.sig", "products.csv"]
        assert names[3:6] == ["repos", "repos/p", "repos/p/r"]
        for e in entries():
            assert tar.extractfile(e.path).read() == e.data
        assert all(m.mtime == 1714644930 and m.uid == 0 and m.uname == "" for m in members)
        assert {m.mode for m in members if m.isdir()} == {0o755} and {m.mode for m in members if m.isfile()} == {0o644}


def test_deterministic_and_rpms_are_stored_not_deflated():
    repetitive = hashlib.sha256(b"seed").digest() * 4000  # deflate would shrink this to almost nothing
    a = b"".join(tar_gz_stream(entries(repetitive)))
    b = b"".join(tar_gz_stream(entries(repetitive)))
    assert a == b
    assert len(repetitive) < len(a) < len(repetitive) + 10_000  # the .rpm went in stored blocks, as it came
    xml_only = b"".join(tar_gz_stream([Entry("x.xml", 100000, data=b"<a/>" * 25000)]))
    assert len(xml_only) < 2000  # text is deflated


def test_deflate_is_one_valid_stream_across_switches():
    many = [Entry(f"f{i}.{'rpm' if i % 2 else 'txt'}", 700, data=bytes([i % 251]) * 700) for i in range(50)]
    blob = b"".join(tar_gz_stream(many, compresslevel=6))
    d = zlib.decompressobj(31)
    assert len(d.decompress(blob)) > 50 * 700 and d.eof and d.unused_data == b""


def test_entry_that_lies_about_its_size_aborts():
    with pytest.raises(IssError, match="has 3 bytes, 5 expected"):
        b"".join(tar_gz_stream([Entry("a.rpm", 5, data=b"abc")]))
    with pytest.raises(IssError, match="grew while the bundle was being written"):
        b"".join(tar_gz_stream([Entry("a.rpm", 2, data=b"abc")]))


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "manifest.json",
        "x" * 99,
        "x" * 100,
        "x" * 101,
        "x" * 90 + "é" * 20,
        "y" * 1000,
        "répertoire/ü.rpm",
        "bad\udcff.rpm",
        (
            "repos/Red_Hat_Enterprise_Linux_for_x86_64/rhel-9-for-x86_64-baseos-rpms/Packages/k/"
            "kernel-5.14.0-362.8.1.el9_3.x86_64.rpm"
        ),
    ],
)
@pytest.mark.parametrize("is_dir", [False, True])
@pytest.mark.parametrize("size, mtime", [(0, 0), (20480, 1714644930), (8**11 - 1, 8**11 - 1), (8**11, 5), (3, 8**11)])
def test_fast_headers_are_what_tarfile_writes(name, is_dir, size, mtime):
    from iss_plugin.adapters.bundles.stream import _header

    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.mode = 0o755 if is_dir else 0o644
    info.size = 0 if is_dir else size
    info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "", ""
    assert _header(name, size, mtime, is_dir=is_dir) == info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
