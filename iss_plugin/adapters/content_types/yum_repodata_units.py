"""Metadata units in repodata/: found through repomd.xml records (updateinfo, group/group_gz,
modules) when reading a tree or a remote repository, and written as checksum-named files whose
records are added to repomd.xml (what createrepo_c's modifyrepo_c does)."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from iss_plugin.adapters.content_types.repomd import parse_repomd
from iss_plugin.adapters.content_types.yum_units import PARSERS, comps_xml, modules_yaml, updateinfo_xml
from iss_plugin.domain.content_units import MetadataUnit
from iss_plugin.domain.errors import BackendError, IssError, RejectedInput
from iss_plugin.domain.manifest import FileEntry

if TYPE_CHECKING:  # createrepo_c is loaded only to write (reading must not pay for librpm)
    import createrepo_c as cr

REPODATA = "repodata"
MAX_OPEN_SIZE = 2 << 30  # a decompressed metadata file larger than this is refused (a bomb)
# which repomd records carry which file, in order of preference
RECORDS = {
    "updateinfo": ("updateinfo",),
    "comps": ("group", "group_gz", "group_xz"),
    "modules": ("modules",),
}

# open_record(record type, href, checksum type, checksum, size) -> a local file with its bytes
OpenRecord = Callable[[str, str, str | None, str | None, int | None], Path]


def _open(path: Path) -> BinaryIO:
    name = path.name
    if name.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if name.endswith(".xz"):
        return lzma.open(path, "rb")  # type: ignore[return-value]
    if name.endswith(".bz2"):
        return bz2.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def read_metadata_bytes(path: Path, where: str) -> bytes:
    """The decompressed bytes of a metadata file (plain, gz, xz, bz2, zst), at most MAX_OPEN_SIZE."""
    if path.name.endswith((".zst", ".zck")):
        import createrepo_c as cr

        with tempfile.TemporaryDirectory() as tmp:
            plain = Path(tmp) / "plain"
            try:
                cr.decompress_file(str(path), str(plain), cr.AUTO_DETECT_COMPRESSION)
            except Exception as e:
                raise RejectedInput(f"{where}: cannot decompress: {e}") from None
            return read_metadata_bytes(plain, where)
    try:
        with _open(path) as fh:
            data = fh.read(MAX_OPEN_SIZE + 1)
    except (OSError, EOFError, lzma.LZMAError) as e:
        raise RejectedInput(f"{where}: cannot read or decompress: {e}") from None
    if len(data) > MAX_OPEN_SIZE:
        raise RejectedInput(f"{where}: larger than {MAX_OPEN_SIZE} bytes decompressed; refused")
    return data


def read_repomd_units(
    repomd_path: Path, where: str, open_record: OpenRecord, *, bad: type[IssError] = BackendError
) -> list[MetadataUnit]:
    """The units of the updateinfo, comps and modules files a repomd.xml lists (none: []).
    `bad`: the error for an unreadable repomd.xml (a remote's: BackendError; a bundle's: rejected)."""
    try:
        repomd = parse_repomd(repomd_path.read_bytes())
    except (OSError, ValueError) as e:
        raise bad(f"{where}/repodata/repomd.xml is not a valid repomd.xml: {e}") from None
    units: list[MetadataUnit] = []
    for what, types in RECORDS.items():
        rec = next((repomd[t] for t in types if t in repomd), None)
        if rec is None:
            continue
        href = rec.location_href
        local = open_record(rec.type, href, rec.checksum_type, rec.checksum, rec.size or None)
        units.extend(PARSERS[what](read_metadata_bytes(local, f"{where}/{href}"), f"{where}/{href}"))
    return units


def tree_record_opener(tree: Path) -> OpenRecord:
    """open_record for a local tree: the file at href, which must stay inside the tree."""

    def open_record(kind: str, href: str, checksum_type: str | None, checksum: str | None, _: int | None) -> Path:
        parts = href.split("/")
        if href.startswith("/") or ".." in parts or not href.startswith(REPODATA + "/"):
            raise RejectedInput(f"{tree}: repomd.xml record {kind} points outside repodata/: {href!r}")
        path = tree / href
        if path.is_symlink() or not path.is_file():
            raise RejectedInput(f"{tree}: repomd.xml lists {href}, which is not a regular file in the tree")
        if (checksum_type or "").lower() == "sha256" and _file_sha256(path) != (checksum or "").lower():
            raise RejectedInput(f"{tree}: {href} does not have the sha256 its repomd.xml record gives")
        return path

    return open_record


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def _record(dest: Path, kind: str, name: str, data: bytes, open_data: bytes, timestamp: int) -> cr.RepomdRecord:
    import createrepo_c as cr

    digest = hashlib.sha256(data).hexdigest()
    href = f"{REPODATA}/{digest}-{name}"
    (dest / href).write_bytes(data)
    rec = cr.RepomdRecord(kind)
    rec.location_href = href
    rec.checksum, rec.checksum_type = digest, "sha256"
    if data is not open_data:  # compressed: the open checksum too, as createrepo_c writes it
        rec.checksum_open, rec.checksum_open_type = hashlib.sha256(open_data).hexdigest(), "sha256"
    rec.size, rec.size_open = len(data), len(open_data)
    rec.timestamp = timestamp
    return rec


def write_units(dest: Path, units: Iterable[MetadataUnit], timestamp: int) -> list[FileEntry]:
    """Write the units' files into dest/repodata and add their records to the repomd.xml there.

    Returns the files written, the rewritten repomd.xml last (it replaces the earlier entry)."""
    units = list(units)
    records = []
    info, comps, modules = updateinfo_xml(units), comps_xml(units), modules_yaml(units)
    if info is not None:
        records.append(_record(dest, "updateinfo", "updateinfo.xml.gz", _gzip(info), info, timestamp))
    if comps is not None:
        records.append(_record(dest, "group", "comps.xml", comps, comps, timestamp))
        records.append(_record(dest, "group_gz", "comps.xml.gz", _gzip(comps), comps, timestamp))
    if modules is not None:
        records.append(_record(dest, "modules", "modules.yaml.gz", _gzip(modules), modules, timestamp))
    if not records:
        return []
    import createrepo_c as cr

    repomd_path = dest / REPODATA / "repomd.xml"
    repomd = cr.Repomd(str(repomd_path))
    files = []
    for rec in records:
        repomd.set_record(rec)
        files.append(FileEntry(rec.location_href, rec.checksum, rec.size))
    data = repomd.xml_dump().encode("utf-8")
    tmp = repomd_path.with_name(".repomd.xml.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, repomd_path)
    files.append(FileEntry(f"{REPODATA}/repomd.xml", hashlib.sha256(data).hexdigest(), len(data)))
    return files
