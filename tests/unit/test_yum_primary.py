"""primary.xml is read without createrepo_c (content_types/primary.py): the packages, in order, with
the same location, checksum, size and NEVRA as createrepo_c's parser gives, whatever the compression;
hostile or broken documents are refused with a reason."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
from pathlib import Path

import pytest

from iss_plugin.adapters.content_types.primary import read_primary
from iss_plugin.adapters.content_types.yum import YumContentType, _read_primary_with_createrepo_c
from iss_plugin.adapters.fixtures import build_rpm, build_rpms, write_yum_repo
from iss_plugin.domain.errors import BackendError


def fetch_local(url: str, dest: Path, *_: object) -> None:
    dest.write_bytes(Path(url.removeprefix("file://")).read_bytes())


def primary_of(tree: Path) -> Path:
    return next((tree / "repodata").glob("*primary.xml*"))


@pytest.mark.parametrize("compression", ["gz", "xz", "bz2", "zstd"])
def test_the_packages_are_createrepo_c_s(tmp_path, compression):
    rpms = build_rpms(tmp_path / "rpms", 3, prefix="plain")
    rpms.append(build_rpm(tmp_path / "rpms", "epoch", "2.0", "3.el9", epoch=7, arch="x86_64"))
    rpms.append(build_rpm(tmp_path / "rpms", "zero", "1.0", "1", epoch=0, arch="noarch"))
    tree = write_yum_repo(tmp_path / "tree", rpms, compression=compression)
    mine = YumContentType().read_remote_index(tree.as_uri(), fetch_local, tmp_path)
    theirs = _read_primary_with_createrepo_c(primary_of(tree), "primary")
    assert mine == theirs
    assert len(mine) == 5 and any(u.nevra == "epoch-7:2.0-3.el9.x86_64" for u in mine)
    assert all(u.sha256 and u.size > 0 and u.href.endswith(".rpm") for u in mine)


def test_reading_a_gzip_index_does_not_load_createrepo_c(tmp_path):
    tree = write_yum_repo(tmp_path / "tree", build_rpms(tmp_path / "rpms", 2))
    code = (
        "import sys; from pathlib import Path; from iss_plugin.adapters.content_types.yum import YumContentType;"
        "f = lambda url, dest, *a: dest.write_bytes(Path(url[7:]).read_bytes());"
        f"units = YumContentType().read_remote_index({tree.as_uri()!r}, f, Path({str(tmp_path)!r}));"
        "print(len(units), 'createrepo_c' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["2", "False"]


PRIMARY = """<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="2">
<package type="rpm"><name>a</name><arch>noarch</arch><version epoch="0" ver="1" rel="2"/>
<checksum type="SHA256" pkgid="YES">ABCDEF</checksum><size package="10" installed="1" archive="1"/>
<location xml:base="http://elsewhere.example/" href="Packages/a.rpm"/></package>
<package type="rpm"><name>b</name><arch>x86_64</arch><version ver="3" rel="4"/>
<checksum type="sha256" pkgid="YES">012</checksum><size package="20"/><location href="b.rpm"/></package>
</metadata>"""


def test_xml_base_checksum_case_and_a_missing_epoch():
    a, b = read_primary(io.BytesIO(PRIMARY.encode()))
    assert (a.href, a.base_url, a.checksum_type, a.checksum, a.size, a.nevra) == (
        "Packages/a.rpm",
        "http://elsewhere.example/",
        "sha256",
        "abcdef",
        10,
        "a-0:1-2.noarch",
    )
    assert (b.base_url, b.nevra, b.size) == (None, "b-0:3-4.x86_64", 20)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ('<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x "y">]><metadata/>', "DTD"),
        ("<repomd xmlns='http://linux.duke.edu/metadata/repo'/>", "not metadata"),
        (PRIMARY.replace('<location href="b.rpm"/>', ""), "lacks"),
        (PRIMARY.replace('package="20"', 'package="many"'), "not a number"),
        (PRIMARY[:300], "not well-formed"),
    ],
)
def test_a_hostile_or_broken_primary_is_refused_with_its_reason(document, reason):
    with pytest.raises(ValueError, match=reason):
        list(read_primary(io.BytesIO(document.encode())))


def test_a_broken_primary_file_is_a_backend_error_naming_it(tmp_path):
    tree = write_yum_repo(tmp_path / "tree", build_rpms(tmp_path / "rpms", 1))
    path = primary_of(tree)
    path.write_bytes(gzip.compress(b"<metadata xmlns='http://linux.duke.edu/metadata/common'><package>"))
    # the repomd.xml checksum no longer matches, but fetch_local does not check: the parser must refuse
    with pytest.raises(BackendError, match="cannot parse .*primary"):
        YumContentType().read_remote_index(tree.as_uri(), fetch_local, tmp_path)


def test_the_digests_of_many_packages_hold_no_second_copy_of_each():
    """A pull into Pulp keeps every listed unit and every unit's sha256 at once (imports.py): the
    digests must be the units' own strings, and the checksum type one string for all of them."""
    import tracemalloc

    rows = "".join(
        f'<package type="rpm"><name>p{i}</name><arch>noarch</arch><version epoch="0" ver="1" rel="1"/>'
        f'<checksum type="sha256" pkgid="YES">{i:064x}</checksum><size package="1"/>'
        f'<location href="p{i}.rpm"/></package>'
        for i in range(2000)
    )
    document = f'<metadata xmlns="http://linux.duke.edu/metadata/common" packages="2000">{rows}</metadata>'
    units = list(read_primary(io.BytesIO(document.encode())))
    assert all(u.sha256 is u.checksum for u in units)
    assert len({id(u.checksum_type) for u in units}) == 1

    tracemalloc.start()
    try:
        digests = [u.sha256 for u in units]
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(digests) == 2000 and held < 2000 * 64  # the list's pointers, no 113-byte string each
