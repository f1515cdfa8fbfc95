"""Hostile containers: every unsafe member is named, nothing is extracted, nothing outside the
reader's temporary directory changes, and the temporary directory is gone afterwards."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pycdlib
import pytest

from iss_plugin.adapters.bundles.checks import ReadLimits
from iss_plugin.adapters.bundles.reader import open_bundle, verify_bundle
from iss_plugin.domain.errors import BundleIntegrityError

from .conftest import ORG, build, rewrite_tar, snapshot, tar_member

LINK_ONLY = "bundles hold only regular files and directories"


def refused_on_open(sandbox: Path, bundle: Path, **kwargs) -> BundleIntegrityError:
    before = snapshot(sandbox)
    with pytest.raises(BundleIntegrityError) as e:
        open_bundle(bundle, sandbox / "work", **kwargs)
    assert snapshot(sandbox) == before, "a refused bundle changed the file system"
    assert os.listdir(sandbox / "work") == []
    assert e.value.exit_code == 3
    return e.value


@pytest.fixture
def good_tgz(sandbox, signer) -> Path:
    output, _ = build(sandbox / "out", signer, "tgz")
    return output.path


def test_dotdot_member(sandbox, good_tgz):
    evil = rewrite_tar(good_tgz, sandbox / "evil.tar.gz", extra=[tar_member("../../escaped.txt")])
    e = refused_on_open(sandbox, evil)
    assert e.message == "evil.tar.gz is not a safe bundle archive; nothing was extracted"
    assert e.problems == ["../../escaped.txt: path leaves the bundle ('..')"]
    assert not (sandbox / "escaped.txt").exists() and not (sandbox.parent / "escaped.txt").exists()


def test_dotdot_inside_a_path(sandbox, good_tgz):
    evil = rewrite_tar(good_tgz, sandbox / "evil.tar.gz", extra=[tar_member("repos/tools/../../../escaped.txt")])
    assert refused_on_open(sandbox, evil).problems == [
        "repos/tools/../../../escaped.txt: path leaves the bundle ('..')"
    ]


def test_absolute_member(sandbox, good_tgz):
    target = sandbox / "absolute-escape.txt"
    evil = rewrite_tar(good_tgz, sandbox / "evil.tar.gz", extra=[tar_member(str(target))])
    assert refused_on_open(sandbox, evil).problems == [f"{target}: absolute path"]
    assert not target.exists()


def test_symlink_member_and_write_through_it(sandbox, good_tgz):
    outside = sandbox / "outside"
    outside.mkdir()
    evil = rewrite_tar(
        good_tgz,
        sandbox / "evil.tar.gz",
        extra=[
            tar_member("repos/tools/escape", tarfile.SYMTYPE, linkname=str(outside)),
            tar_member("repos/tools/escape/pwned.txt", data=b"owned"),
        ],
    )
    e = refused_on_open(sandbox, evil)
    assert e.problems == [f"repos/tools/escape: is a symbolic link to {outside}; {LINK_ONLY}"]
    assert os.listdir(outside) == []


def test_hardlink_member(sandbox, good_tgz):
    evil = rewrite_tar(
        good_tgz,
        sandbox / "evil.tar.gz",
        extra=[tar_member("repos/tools/passwd", tarfile.LNKTYPE, linkname="/etc/passwd")],
    )
    assert refused_on_open(sandbox, evil).problems == [
        f"repos/tools/passwd: is a hard link to /etc/passwd; {LINK_ONLY}"
    ]


@pytest.mark.parametrize(
    "kind, words",
    [
        (tarfile.CHRTYPE, "is a character device"),
        (tarfile.BLKTYPE, "is a block device"),
        (tarfile.FIFOTYPE, "is a FIFO (named pipe)"),
    ],
)
def test_device_and_fifo_members(sandbox, good_tgz, kind, words):
    evil = rewrite_tar(
        good_tgz, sandbox / "evil.tar.gz", extra=[tar_member("repos/tools/null", kind, devmajor=1, devminor=3)]
    )
    assert refused_on_open(sandbox, evil).problems == [f"repos/tools/null: {words}; {LINK_ONLY}"]


def test_duplicate_member_would_overwrite(sandbox, good_tgz):
    evil = rewrite_tar(good_tgz, sandbox / "evil.tar.gz", extra=[tar_member("products.csv", data=b"swapped")])
    assert refused_on_open(sandbox, evil).problems == ["products.csv: appears 2 times"]


def test_every_problem_is_reported_at_once(sandbox, good_tgz):
    evil = rewrite_tar(
        good_tgz,
        sandbox / "evil.tar.gz",
        extra=[
            tar_member("../a"),
            tar_member("/tmp/b"),
            tar_member("c", tarfile.SYMTYPE, linkname="/"),
            tar_member("d", tarfile.CHRTYPE),
            tar_member("products.csv", data=b"again"),
        ],
    )
    e = refused_on_open(sandbox, evil)
    assert e.problems == [
        "../a: path leaves the bundle ('..')",
        "/tmp/b: absolute path",
        f"c: is a symbolic link to /; {LINK_ONLY}",
        f"d: is a character device; {LINK_ONLY}",
        "products.csv: appears 2 times",
    ]
    assert "- ../a: path leaves the bundle" in str(e)


def test_size_limits(sandbox, good_tgz):
    e = refused_on_open(sandbox, good_tgz, limits=ReadLimits(max_file_bytes=3002, max_total_bytes=10_000))
    assert (
        "repos/rhel-9/baseos/Packages/b/baseos-pkg3-1.0-1.noarch.rpm: 3003 bytes is over the limit of 3002 bytes for one file"
        in e.problems
    )
    assert any(p.startswith("(bundle): ") and "over the limit of 10000 bytes" in p for p in e.problems)


def test_entry_count_limit(sandbox, good_tgz):
    e = refused_on_open(sandbox, good_tgz, limits=ReadLimits(max_entries=5))
    assert e.problems == ["(bundle): more than 5 entries; refusing to read further"]


def test_truncated_tar_gz(sandbox, good_tgz):
    cut = sandbox / "cut.tar.gz"
    cut.write_bytes(good_tgz.read_bytes()[: good_tgz.stat().st_size // 2])
    e = refused_on_open(sandbox, cut)
    assert e.message.startswith("cut.tar.gz is truncated or not a gzip file: ")


def test_tar_gz_missing_only_its_trailer(sandbox, good_tgz):
    cut = sandbox / "cut.tar.gz"
    cut.write_bytes(good_tgz.read_bytes()[:-8])  # every tar member intact, gzip CRC and length gone
    assert refused_on_open(sandbox, cut).message.startswith("cut.tar.gz is truncated or not a gzip file: ")


def test_corrupted_byte_inside_the_gzip(sandbox, good_tgz):
    data = bytearray(good_tgz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = sandbox / "flipped.tar.gz"
    bad.write_bytes(bytes(data))
    assert refused_on_open(sandbox, bad).message.startswith("flipped.tar.gz is truncated or not a gzip file: ")


def test_not_a_gzip_at_all(sandbox):
    junk = sandbox / "junk.tar.gz"
    junk.write_bytes(b"this is not a bundle\n" * 100)
    assert refused_on_open(sandbox, junk).message.startswith("junk.tar.gz is truncated or not a gzip file: ")


def test_unknown_file_is_a_usage_error(sandbox):
    from iss_plugin.domain.errors import NotFound, UsageError

    junk = sandbox / "junk.bin"
    junk.write_bytes(b"x" * 40000)
    with pytest.raises(UsageError, match="is not a bundle"):
        open_bundle(junk, sandbox / "work")
    with pytest.raises(NotFound, match="does not exist"):
        open_bundle(sandbox / "nope.tar.gz", sandbox / "work")


# -- ISO ------------------------------------------------------------------------------------------


def hostile_iso(path: Path, add) -> Path:
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, rock_ridge="1.09")
    keep = []

    def file(iso_path, rr_name, data=b"x", mode=None):
        fp = io.BytesIO(data)
        keep.append(fp)
        iso.add_fp(fp, len(data), iso_path, rr_name=rr_name, file_mode=mode)

    add(iso, file)
    iso.write(str(path))
    iso.close()
    return path


def test_iso_with_symlink_and_device(sandbox):
    def add(iso, file):
        file("/MANIFES.;1", "manifest.json", b"{}")
        iso.add_directory("/REPOS", rr_name="repos")
        iso.add_symlink(symlink_path="/REPOS/LINK.;1", rr_symlink_name="link", rr_path="/etc/passwd")
        file("/REPOS/DEV.;1", "dev", b"", mode=0o020644)  # Rock Ridge mode: character device
        file("/REPOS/FIFO.;1", "fifo", b"", mode=0o010644)

    bad = hostile_iso(sandbox / "evil.iso", add)
    e = refused_on_open(sandbox, bad)
    assert e.message == "evil.iso is not a safe bundle image; nothing was extracted"
    assert sorted(e.problems) == sorted(
        [
            f"repos/link: is a symbolic link to /etc/passwd; {LINK_ONLY}",
            f"repos/dev: is a character device; {LINK_ONLY}",
            f"repos/fifo: is a FIFO (named pipe); {LINK_ONLY}",
        ]
    )


def test_iso_without_rock_ridge(sandbox):
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3)
    iso.add_fp(io.BytesIO(b"{}"), 2, "/MANIFEST.JSO;1")
    iso.write(str(sandbox / "plain.iso"))
    iso.close()
    e = refused_on_open(sandbox, sandbox / "plain.iso")
    assert (
        e.message
        == "plain.iso is truncated or not an ISO 9660 image: it has no Rock Ridge names (iss writes ISO 9660 with Rock Ridge)"
    )


def test_truncated_and_garbage_iso(sandbox, signer):
    output, _ = build(sandbox / "out", signer, "iso")
    cut = sandbox / "cut.iso"
    cut.write_bytes(output.path.read_bytes()[:40000])
    assert refused_on_open(sandbox, cut).message.startswith("cut.iso is truncated or not an ISO 9660 image: ")
    junk = sandbox / "junk.iso"
    junk.write_bytes(os.urandom(100_000))
    assert refused_on_open(sandbox, junk).message.startswith("junk.iso is truncated or not an ISO 9660 image: ")


# -- directories ----------------------------------------------------------------------------------


def test_directory_with_symlink_and_fifo(sandbox, signer, trusted):
    output, _ = build(sandbox / "out", signer, "dir")
    (output.path / "repos/tools/utils/Packages/passwd.rpm").symlink_to("/etc/passwd")
    os.mkfifo(output.path / "repos/tools/pipe")
    e = refused_on_open(sandbox, output.path)
    assert e.message == f"bundle directory {output.path} holds entries a bundle may not hold; nothing was read"
    assert sorted(e.problems) == [
        f"repos/tools/pipe: is a FIFO (named pipe); {LINK_ONLY}",
        f"repos/tools/utils/Packages/passwd.rpm: is a symbolic link to /etc/passwd; {LINK_ONLY}",
    ]


def test_directory_that_changes_after_open_is_checked_again(sandbox, signer, trusted):
    output, _ = build(sandbox / "out", signer, "dir")
    with open_bundle(output.path, sandbox / "work") as opened:
        (output.path / "products.csv").unlink()
        (output.path / "products.csv").symlink_to("/etc/passwd")
        with pytest.raises(BundleIntegrityError) as e:
            verify_bundle(opened, trusted, ORG)
    assert e.value.problems == [f"products.csv: is a symbolic link to /etc/passwd; {LINK_ONLY}"]
