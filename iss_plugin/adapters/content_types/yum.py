"""The yum content type: RPM headers into metadata chunks, repodata from chunks, remote repodata.

Chunks are what `createrepo_c.xml_dump` makes of one package: its <package> element of
primary.xml, filelists.xml and other.xml. The store keeps them, so the metadata of any version is
generated without reading an RPM again.

Each metadata file is written as a series of gzip members (a header, one member per block of
packages, a footer). Concatenated gzip members are one valid gzip stream (RFC 1952; zlib's
gzread, librepo/libsolv, createrepo_c and Python all read them), so the store can cache the
compressed blocks and a new version costs the blocks that changed, not the repository size."""

from __future__ import annotations

import hashlib
import os
import re
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin

from iss_plugin.adapters.content_types import CompressedBlock, Fetch, RemoteUnit, Unit
from iss_plugin.domain.content_units import MetadataUnit
from iss_plugin.domain.errors import BackendError, BundleIntegrityError, RejectedInput
from iss_plugin.domain.manifest import FileEntry
from iss_plugin.domain.packages import Package, standard_location

if TYPE_CHECKING:
    import createrepo_c as cr

CHANGELOG_LIMIT = 10
GZIP_LEVEL = 6
REPODATA = "repodata"
MD_TYPES = ("primary", "filelists", "other")

_XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'
_HEADERS = {
    "primary": '<metadata xmlns="http://linux.duke.edu/metadata/common" '
    'xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="{count}">\n',
    "filelists": '<filelists xmlns="http://linux.duke.edu/metadata/filelists" packages="{count}">\n',
    "other": '<otherdata xmlns="http://linux.duke.edu/metadata/other" packages="{count}">\n',
}
_FOOTERS = {"primary": "</metadata>\n", "filelists": "</filelists>\n", "other": "</otherdata>\n"}
# What may appear in a package file name we write (the header's name, version, release, arch).
_SAFE_FILENAME = re.compile(r"^[A-Za-z0-9_+~^][A-Za-z0-9._+~^-]*\.rpm$")


_RPM_LEAD_MAGIC = b"\xed\xab\xee\xdb"
_SIGNATURE_OFFSET = 96  # the lead is 96 bytes; the signature header follows it
_HEADER_MAGIC = b"\x8e\xad\xe8\x01"


def gzip_member(data: bytes) -> bytes:
    """One gzip member (fixed header: mtime 0) holding data."""
    c = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def _createrepo_c_version() -> str:
    """createrepo_c's version without importing it (11 MiB of a process that only writes repodata
    from cached blocks, such as a source serving a stream); the module's own when not installed as
    a distribution."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("createrepo_c")
    except PackageNotFoundError:
        import createrepo_c

        return str(createrepo_c.VERSION)


def repomd_xml(revision: str, records: Sequence[tuple[str, str, int, int, int]]) -> bytes:
    """repomd.xml for (type, sha256, size, open size, timestamp) records of repodata/<sha256>-<type>.xml.gz,
    byte for byte what createrepo_c's Repomd.xml_dump writes for them (tests/unit compare the two)."""
    from xml.sax.saxutils import escape

    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">',
        f"  <revision>{escape(revision)}</revision>",
    ]
    for md, digest, size, open_size, timestamp in records:
        lines += [
            f'  <data type="{md}">',
            f'    <checksum type="sha256">{digest}</checksum>',
            f'    <location href="{REPODATA}/{digest}-{md}.xml.gz"/>',
            f"    <timestamp>{timestamp}</timestamp>",
            f"    <size>{size}</size>",
            f"    <open-size>{open_size}</open-size>",
            "  </data>",
        ]
    lines.append("</repomd>\n")
    return "\n".join(lines).encode("utf-8")


def rpm_filename(pkg: cr.Package) -> str:
    return f"{pkg.name}-{pkg.version}-{pkg.release}.{pkg.arch}.rpm"


class YumContentType:
    """Registered as `yum` in the entry point group iss_plugin.content_types."""

    name = "yum"
    format_version = f"yum-1/createrepo_c-{_createrepo_c_version()}"
    md_types = MD_TYPES
    _last_tree_units: tuple[tuple[str, str], tuple[MetadataUnit, ...]] | None = None

    # --- reading content files --------------------------------------------------------------
    def read_unit(self, path: Path) -> Unit:
        """Read an RPM's header (createrepo_c computes the file's sha256) into a Unit.

        The location is the standard one for the package's canonical file name, whatever the file
        is called on disk, and the chunk's file time is the build time: the same file gives the
        same chunks on every server."""
        import createrepo_c as cr

        try:
            pkg = cr.package_from_rpm(str(path), cr.SHA256, "", None, CHANGELOG_LIMIT)
        except Exception as e:  # createrepo_c raises its own error type or OSError
            raise BackendError(
                f"{path} is not a readable RPM package: {e}",
                details={"path": str(path)},
            ) from None
        filename = rpm_filename(pkg)
        if not _SAFE_FILENAME.match(filename) or ".." in filename:
            raise BackendError(
                f"{path}: the RPM header gives the file name {filename!r}, which is not a safe file name; "
                "the package is refused",
                details={"path": str(path)},
            )
        location = standard_location(filename)
        pkg.location_href = location
        pkg.location_base = None
        pkg.time_file = pkg.time_build
        primary, filelists, other = cr.xml_dump(pkg)
        package = Package(
            name=pkg.name,
            epoch=pkg.epoch or "0",
            version=pkg.version,
            release=pkg.release,
            arch=pkg.arch,
            sha256=pkg.pkgId,
            size=pkg.size_package,
            location=location,
        )
        return Unit(package=package, chunks=(primary, filelists, other))

    def sniff(self, path: Path) -> str | None:
        """Why `path` is plainly not an RPM (its lead and signature header magic are missing), or
        None. Cheap (reads 100 bytes): uploads are checked with it before the store reads them."""
        try:
            with open(path, "rb") as fh:
                head = fh.read(_SIGNATURE_OFFSET + len(_HEADER_MAGIC))
        except OSError as e:
            return f"{path}: cannot be read ({e.strerror})"
        if not head.startswith(_RPM_LEAD_MAGIC) or head[_SIGNATURE_OFFSET:] != _HEADER_MAGIC:
            return f"{path}: not an RPM package (no RPM lead and header)"
        return None

    def is_unit_path(self, relpath: str) -> bool:
        return relpath.endswith(".rpm") and not relpath.startswith(REPODATA + "/")

    # --- writing repodata -------------------------------------------------------------------
    def compress_block(self, chunks: Sequence[tuple[str, ...]]) -> CompressedBlock:
        members, sizes = [], []
        for i in range(len(MD_TYPES)):
            data = "".join(c[i] for c in chunks).encode("utf-8")
            members.append(gzip_member(data))
            sizes.append(len(data))
        return CompressedBlock(tuple(members), tuple(sizes))

    def write_index(
        self, dest: Path, count: int, blocks: Iterable[CompressedBlock], *, revision: str, timestamp: int
    ) -> list[FileEntry]:
        """Write dest/repodata/ (primary, filelists, other .xml.gz and repomd.xml) from blocks.

        Returns the files written, relative to dest."""
        repodata = dest / REPODATA
        repodata.mkdir(parents=True, exist_ok=True)
        outs, hashes, sizes, open_sizes, tmp_paths = [], [], [], [], []
        try:
            for md in MD_TYPES:
                tmp = repodata / f".{md}.xml.gz.tmp"
                tmp_paths.append(tmp)
                outs.append(open(tmp, "wb"))  # noqa: SIM115 - closed in the finally below
                hashes.append(hashlib.sha256())
                sizes.append(0)
                open_sizes.append(0)

            def put(i: int, member: bytes, open_size: int) -> None:
                outs[i].write(member)
                hashes[i].update(member)
                sizes[i] += len(member)
                open_sizes[i] += open_size

            for i, md in enumerate(MD_TYPES):
                head = (_XML_DECL + _HEADERS[md].format(count=count)).encode()
                put(i, gzip_member(head), len(head))
            for block in blocks:
                for i in range(len(MD_TYPES)):
                    put(i, block.members[i], block.open_sizes[i])
            for i, md in enumerate(MD_TYPES):
                foot = _FOOTERS[md].encode()
                put(i, gzip_member(foot), len(foot))
        finally:
            for f in outs:
                f.close()

        files: list[FileEntry] = []
        records = []
        for i, md in enumerate(MD_TYPES):
            digest = hashes[i].hexdigest()
            href = f"{REPODATA}/{digest}-{md}.xml.gz"
            os.replace(tmp_paths[i], dest / href)
            records.append((md, digest, sizes[i], open_sizes[i], timestamp))
            files.append(FileEntry(href, digest, sizes[i]))
        data = repomd_xml(revision, records)
        (repodata / "repomd.xml").write_bytes(data)
        files.append(FileEntry(f"{REPODATA}/repomd.xml", hashlib.sha256(data).hexdigest(), len(data)))
        return files

    # --- metadata units (advisories, comps, modules): yum_units, yum_repodata_units -------------
    def read_metadata_file(self, path: Path) -> list[MetadataUnit]:
        """The units of an updateinfo.xml, comps.xml or modules.yaml (plain or compressed)."""
        from iss_plugin.adapters.content_types.yum_repodata_units import read_metadata_bytes
        from iss_plugin.adapters.content_types.yum_units import PARSERS, sniff_metadata

        data = read_metadata_bytes(path, str(path))
        kind = sniff_metadata(data)
        if kind is None:
            raise RejectedInput(
                f"{path} is not an updateinfo.xml, comps.xml or modules.yaml; nothing was uploaded",
                details={"path": str(path)},
            )
        return PARSERS[kind](data, str(path))

    def read_tree_units(self, tree: Path) -> list[MetadataUnit]:
        from iss_plugin.adapters.content_types.yum_repodata_units import read_repomd_units, tree_record_opener

        repomd = tree / REPODATA / "repomd.xml"
        if not repomd.is_file():
            return []
        # An import reads a tree's units twice (the rules, then the backend): the last one is kept,
        # keyed by the tree and its repomd.xml (which pins every file's sha256, checked on reading).
        key = (str(tree.resolve()), hashlib.sha256(repomd.read_bytes()).hexdigest())
        last = self._last_tree_units
        if last is not None and last[0] == key:
            return list(last[1])
        units = read_repomd_units(repomd, str(tree), tree_record_opener(tree), bad=BundleIntegrityError)
        self._last_tree_units = (key, tuple(units))
        return units

    def read_remote_units(self, url: str, fetch: Fetch, workdir: Path) -> list[MetadataUnit]:
        """The units of a remote yum repository's updateinfo, comps and modules files."""
        from iss_plugin.adapters.content_types.yum_repodata_units import read_repomd_units

        base = url if url.endswith("/") else url + "/"
        repomd_path = workdir / "units-repomd.xml"
        fetch(urljoin(base, f"{REPODATA}/repomd.xml"), repomd_path, None, None, None)

        def open_record(
            kind: str, href: str, checksum_type: str | None, checksum: str | None, size: int | None
        ) -> Path:
            local = workdir / f"units-{kind}-{os.path.basename(href)}"
            fetch(urljoin(base, href), local, checksum_type, checksum, size)
            return local

        return read_repomd_units(repomd_path, base.rstrip("/"), open_record)

    def write_units(self, dest: Path, units: Sequence[MetadataUnit], timestamp: int) -> list[FileEntry]:
        from iss_plugin.adapters.content_types.yum_repodata_units import write_units

        return write_units(dest, units, timestamp)

    # --- reading a remote repository ----------------------------------------------------------
    def read_remote_index(self, url: str, fetch: Fetch, workdir: Path) -> list[RemoteUnit]:
        """The packages a yum repository at url lists (from repomd.xml and primary.xml.*), read
        without createrepo_c (content_types/primary.py) but for a zstd-compressed primary.xml."""
        from iss_plugin.adapters.content_types.repomd import parse_repomd

        base = url if url.endswith("/") else url + "/"
        repomd_path = workdir / "repomd.xml"
        fetch(urljoin(base, f"{REPODATA}/repomd.xml"), repomd_path, None, None, None)
        try:
            records = parse_repomd(repomd_path.read_bytes())
        except (OSError, ValueError) as e:
            raise BackendError(f"{base}{REPODATA}/repomd.xml is not a valid repomd.xml: {e}") from None
        if "primary" not in records:
            raise BackendError(f"{base}{REPODATA}/repomd.xml lists no primary metadata; is {url} a yum repository?")
        rec = records["primary"]
        href = rec.location_href
        primary_url = urljoin(rec.location_base or base, href)
        primary_path = workdir / os.path.basename(href)
        fetch(primary_url, primary_path, rec.checksum_type, rec.checksum, rec.size or None)
        return _read_primary_file(primary_path, primary_url)


def _read_primary_file(primary_path: Path, where: str) -> list[RemoteUnit]:
    from iss_plugin.adapters.content_types.primary import open_compressed, read_primary

    if primary_path.name.endswith((".zst", ".zck")):
        return _read_primary_with_createrepo_c(primary_path, where)
    try:
        with open_compressed(primary_path) as fh:
            return list(read_primary(fh))
    except ValueError as e:
        raise BackendError(f"cannot parse {where}: {e}") from None


def _read_primary_with_createrepo_c(primary_path: Path, primary_url: str) -> list[RemoteUnit]:
    import createrepo_c as cr

    units: list[RemoteUnit] = []

    def on_package(pkg: cr.Package) -> None:
        units.append(
            RemoteUnit(
                href=pkg.location_href,
                base_url=pkg.location_base or None,
                checksum_type=(pkg.checksum_type or "").lower(),
                checksum=(pkg.pkgId or "").lower(),
                size=int(pkg.size_package or 0),
                nevra=pkg.nevra(),
            )
        )

    warnings: list[str] = []

    def on_warning(kind: int, message: str) -> bool:
        warnings.append(str(message))
        return True

    try:
        cr.xml_parse_primary(str(primary_path), pkgcb=on_package, warningcb=on_warning, do_files=False)
    except Exception as e:
        raise BackendError(f"cannot parse {primary_url}: {e}", warnings) from None
    return units


def write_repodata(repodata: Path, packages: Sequence[cr.Package], compression: int | None = None) -> None:
    """repodata/ for these packages with createrepo_c's own writers: primary, filelists, other and
    repomd.xml (sha256, checksum-named files); gzip unless `compression` says otherwise."""
    import createrepo_c as cr

    compression = cr.GZ_COMPRESSION if compression is None else compression
    repodata.mkdir(parents=True, exist_ok=True)
    suffix = cr.compression_suffix(compression)
    paths = {name: repodata / f"{name}.xml{suffix}" for name in ("primary", "filelists", "other")}
    writers = (
        cr.PrimaryXmlFile(str(paths["primary"]), compression),
        cr.FilelistsXmlFile(str(paths["filelists"]), compression),
        cr.OtherXmlFile(str(paths["other"]), compression),
    )
    for w in writers:
        w.set_num_of_pkgs(len(packages))
    for pkg in packages:
        for w in writers:
            w.add_pkg(pkg)
    for w in writers:
        w.close()
    repomd = cr.Repomd()
    for name, path in paths.items():
        rec = cr.RepomdRecord(name, str(path))
        rec.fill(cr.SHA256)
        rec.rename_file()
        repomd.set_record(rec)
    (repodata / "repomd.xml").write_text(repomd.xml_dump())


def read_tree_packages(tree: Path) -> list[RemoteUnit]:
    """The packages a local yum tree's repodata lists, read in place (no copy of its metadata)."""
    from iss_plugin.adapters.content_types.repomd import parse_repomd

    root = tree.resolve()
    repomd = root / REPODATA / "repomd.xml"
    try:
        records = parse_repomd(repomd.read_bytes())
    except (OSError, ValueError) as e:
        raise BackendError(f"{repomd} is not a readable repomd.xml: {e}") from None
    rec = records.get("primary")
    if rec is None:
        raise BackendError(f"{repomd} lists no primary metadata; is {tree} a yum tree?")
    primary = (root / rec.location_href).resolve()
    if rec.location_base or not primary.is_relative_to(root) or not primary.is_file():
        raise BackendError(f"{repomd}: its primary metadata {rec.location_href!r} is not a file inside the tree")
    return _read_primary_file(primary, str(primary))
