"""The plain tar of a bundle: its size known from the entries, and any suffix of it regenerated
without reading the files before it (a resumed stream)."""

from __future__ import annotations

import io
import tarfile

import pytest

from iss_plugin.adapters.bundles.stream import Entry, tar_size, tar_stream, tar_stream_from
from iss_plugin.domain.errors import IssError


def entries(tmp_path, missing_before: int | None = None) -> list[Entry]:
    made = [Entry("manifest.json", 5, data=b"{...}"), Entry("manifest.json.sig", 3, data=b"sig")]
    for i, size in enumerate([0, 1, 511, 512, 513, 70_000, 1_500_000, 10]):
        path = tmp_path / f"f{i}"
        path.write_bytes(bytes([i % 251]) * size)
        source = tmp_path / "gone" if missing_before is not None and i < missing_before else path
        made.append(Entry(f"repos/p/r/{'Packages/a' if i % 2 else 'repodata'}/f{i}.rpm", size, source))
    return made


def test_the_size_is_known_before_the_first_byte_and_the_tar_reads_back(tmp_path):
    items = entries(tmp_path)
    whole = b"".join(tar_stream(items))
    assert tar_size(items) == len(whole)
    with tarfile.open(fileobj=io.BytesIO(whole)) as tar:
        assert [m.name for m in tar if m.isfile()] == [e.path for e in items]


def test_any_suffix_is_the_same_bytes_without_reading_the_files_before_it(tmp_path):
    whole = b"".join(tar_stream(entries(tmp_path)))
    for first in (0, 1, 511, 512, 2000, 2561, 80_000, 1_000_000, len(whole) - 10_240, len(whole) - 1):
        assert b"".join(tar_stream_from(entries(tmp_path), first)) == whole[first:], first
    # the files before f6 (1.5 MB) are gone: a resume inside f6 does not read them
    with tarfile.open(fileobj=io.BytesIO(whole)) as tar:
        inside_f6 = next(m for m in tar if m.name.endswith("f6.rpm")).offset_data + 1000
    items = entries(tmp_path, missing_before=6)
    assert b"".join(tar_stream_from(items, inside_f6)) == whole[inside_f6:]
    with pytest.raises(IssError, match="f6.rpm: cannot read"):  # f6 itself is read
        b"".join(tar_stream_from(entries(tmp_path, missing_before=7), inside_f6))
