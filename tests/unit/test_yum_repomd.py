"""repomd.xml is written without createrepo_c (a source streaming from cached blocks does not load
it): the bytes must be createrepo_c's own for the same records, or every ETag and manifest changes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from iss_plugin.adapters.content_types.yum import MD_TYPES, REPODATA, YumContentType, repomd_xml


def createrepo_c_repomd(revision: str, records: list[tuple[str, str, int, int, int]]) -> bytes:
    import createrepo_c as cr

    repomd = cr.Repomd()
    repomd.revision = revision
    for md, digest, size, open_size, timestamp in records:
        rec = cr.RepomdRecord(md)
        rec.location_href = f"{REPODATA}/{digest}-{md}.xml.gz"
        rec.checksum, rec.checksum_type = digest, "sha256"
        rec.size, rec.size_open, rec.timestamp = size, open_size, timestamp
        repomd.set_record(rec)
    return repomd.xml_dump().encode("utf-8")


@pytest.mark.parametrize(
    ("revision", "sizes"),
    [
        ("1700000000", (0, 0, 0)),
        ("0", (20, 1, 33)),
        ("1764979200", (123456789, 987654321, 2**33)),
        ("a&b<c>", (1, 2, 3)),
    ],
)
def test_repomd_is_createrepo_c_s(revision, sizes):
    records = [
        (md, f"{i + 1:x}" * 64, sizes[i], sizes[i] * 7, int(revision) if revision.isdigit() else 5)
        for i, md in enumerate(MD_TYPES)
    ]
    assert repomd_xml(revision, records) == createrepo_c_repomd(revision, records)


def test_format_version_is_createrepo_c_s():
    import createrepo_c as cr

    assert YumContentType.format_version == f"yum-1/createrepo_c-{cr.VERSION}"


def test_the_yum_type_does_not_load_createrepo_c_until_it_reads_rpms():
    code = "import sys, iss_plugin.adapters.content_types.yum as y; y.YumContentType(); print('createrepo_c' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_repomd_is_read_as_createrepo_c_reads_it(tmp_path):
    """An import reads repomd.xml records without createrepo_c: the same records as its parser."""
    import createrepo_c as cr

    from iss_plugin.adapters.content_types.repomd import parse_repomd

    data = createrepo_c_repomd("7", [(md, f"{i + 1:x}" * 64, 10 + i, 70 + i, 7) for i, md in enumerate(MD_TYPES)])
    path = tmp_path / "repomd.xml"
    path.write_bytes(data)
    theirs = cr.Repomd(str(path))
    ours = parse_repomd(data)
    assert sorted(ours) == sorted(r.type for r in theirs.records)
    for rec in theirs.records:
        mine = ours[rec.type]
        assert (mine.location_href, mine.checksum_type, mine.checksum, mine.size) == (
            rec.location_href,
            rec.checksum_type,
            rec.checksum,
            rec.size,
        )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not xml", "not well-formed"),
        (b'<?xml version="1.0"?><repo/>', "not repomd"),
        (b'<repomd xmlns="http://linux.duke.edu/metadata/repo"><data type="primary"/></repomd>', "no location"),
        (
            b'<!DOCTYPE r [<!ENTITY a "aaaa">]><repomd xmlns="http://linux.duke.edu/metadata/repo">&a;</repomd>',
            "entities or a DTD",
        ),
    ],
)
def test_a_repomd_that_is_not_one_is_refused_with_its_reason(data, reason):
    from iss_plugin.adapters.content_types.repomd import parse_repomd

    with pytest.raises(ValueError, match=reason):
        parse_repomd(data)
