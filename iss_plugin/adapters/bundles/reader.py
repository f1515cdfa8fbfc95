"""Reading a bundle: hostile-input code (DESIGN §6).

    with open_bundle(path, work_dir) as opened:          # safe container checks, extraction
        manifest = verify_bundle(opened, trusted, org)   # signature, schema, every file
        ... import from opened.root ...
    # the temporary extraction under work_dir is gone here

`open_bundle(path, work_dir, *, trusted=None, organization=None, limits=ReadLimits(), progress=None)
-> OpenedBundle` accepts a
directory (read in place, nothing copied), `x.tar.gz` / `x.tgz`, `x.iso`, or a chunked bundle
given by its FIRST chunk `x.tar.gz.000` / `x.iso.000` (or its `x.toc.json`). Chunks are checked
against the table of contents first (each one's size and sha256, none missing, extra or out of
order). Every member of an archive is checked before anything is extracted: relative paths
only, no '..', only regular files and directories (no symlinks, hard links, devices, FIFOs),
no duplicates, sizes within `limits`. All problems are collected and raised once as
BundleIntegrityError. Archives are extracted into a fresh directory under `work_dir` (tarfile's
"data" filter as defence in depth), removed when the context exits or when opening fails.
With `trusted` and `organization`, the signature is checked as soon as manifest.json and its
signature have been read (iss writes them first in a tar.gz), so a bundle from an untrusted
source or with an edited manifest is refused before the rest is read or anything is extracted.

`verify_bundle(opened, trusted, organization, *, schema=True, progress=None) -> BundleManifest`:
manifest.json and manifest.json.sig present; the signature FIRST, with a key trusted for
`organization` (UntrustedSource otherwise); then the JSON Schema (SchemaViolation with every
problem); then every listed file present with its size and sha256, and no unlisted file
(BundleIntegrityError with every problem).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, NoReturn

import schemas
from iss_plugin.adapters.disk_faults import disk_faults
from iss_plugin.domain.errors import (
    BundleIntegrityError,
    IssError,
    NotFound,
    SchemaViolation,
    UntrustedSource,
    UsageError,
)
from iss_plugin.domain.manifest import MANIFEST_NAME, SIGNATURE_NAME, BundleManifest, FileEntry
from schemas import JSONObject

from . import chunks as chunking
from .checks import (
    RESERVED,
    Member,
    MemberKind,
    ReadLimits,
    capped,
    manifest_consistency_problems,
    member_problems,
)
from .signing import TrustedKey, fingerprint_of
from .signing import verify as verify_signature

__all__ = ["OpenedBundle", "ReadLimits", "TrustedKey", "open_bundle", "verify_bundle"]

MANIFEST_SCHEMA = "bundle/manifest.v1.json"
MAX_SIGNATURE_BYTES = 4096
_READ = 1024 * 1024
_HASH_THREADS = 4
_TAR_KINDS: dict[bytes, MemberKind] = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "chrdev",
    tarfile.BLKTYPE: "blkdev",
    tarfile.FIFOTYPE: "fifo",
}

Progress = Callable[[int], None]
Seal = Callable[[bytes, bytes], None]  # (manifest.json, manifest.json.sig) -> raises unless trusted


@dataclass
class OpenedBundle:
    """A bundle whose container passed the safety checks. `root` holds manifest.json and the tree."""

    source: Path  # what was given (directory, archive, first chunk or table of contents)
    root: Path  # the directory to read: the source itself, or the temporary extraction
    format: str  # "dir" | "tgz" | "iso"
    chunked: bool = False
    limits: ReadLimits = field(default_factory=ReadLimits)
    temp_dir: Path | None = None  # ours to delete (None when a directory is read in place)
    # Files the manifest lists that are not under `root`: checked while streamed (sha256 against the
    # signed manifest) and handed to the content backend (ReceivesPackages). path -> sha256
    held: dict[str, str] = field(default_factory=dict)

    def __enter__(self) -> OpenedBundle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self.temp_dir is not None:
            _remove_tree(self.temp_dir)
            self.temp_dir = None

    def inventory(self) -> dict[str, int]:
        """Every regular file under `root` (relative path -> size); BundleIntegrityError on anything unsafe."""
        members, problems = _walk_directory(self.root, self.limits)
        if problems:
            raise BundleIntegrityError(
                f"{self.source} holds entries a bundle may not hold; nothing was imported",
                capped(problems, self.limits.max_reported_problems),
            )
        return {m.name: m.size for m in members if m.kind == "file"}


def open_bundle(
    path: Path,
    work_dir: Path,
    *,
    trusted: Sequence[TrustedKey] | None = None,
    organization: str | None = None,
    limits: ReadLimits = ReadLimits(),
    progress: Progress | None = None,
) -> OpenedBundle:
    path = Path(path)
    if not path.exists():
        raise NotFound(f"bundle {path} does not exist")
    seal = None
    if trusted is not None:
        if organization is None:
            raise ValueError("open_bundle: `trusted` needs `organization`")

        def seal(manifest: bytes, signature: bytes) -> None:
            _check_signature(manifest, signature, trusted, organization)

    if path.is_dir():
        members, problems = _walk_directory(path, limits)
        _raise_if(problems, f"bundle directory {path} holds entries a bundle may not hold; nothing was read", limits)
        opened = OpenedBundle(path, path, "dir", False, limits)
        if seal is not None and {MANIFEST_NAME, SIGNATURE_NAME} <= {m.name for m in members}:
            seal(
                _read_bounded(path / MANIFEST_NAME, limits.max_manifest_bytes, MANIFEST_NAME),
                _read_bounded(path / SIGNATURE_NAME, MAX_SIGNATURE_BYTES, SIGNATURE_NAME),
            )
        return opened
    kind, chunked = _classify(path)
    with ExitStack() as stack:
        if chunked:
            toc_path, toc = _toc_for(path, limits)
            kind = "iso" if toc["format"] == "iso" else "tgz"
            paths = chunking.check_chunks(toc_path.parent, toc, progress)
            display = toc["name"] + chunking.ARCHIVE_SUFFIXES[toc["format"]]
            sizes = [c["size"] for c in toc["chunks"]]

            def opener() -> BinaryIO:
                return io.BufferedReader(chunking.JoinedReader(paths, sizes), _READ)
        else:
            display = path.name

            def opener() -> BinaryIO:
                return open(path, "rb", buffering=_READ)

        work_dir = Path(work_dir)
        with disk_faults(work_dir, doing=f"extracting {display} under {work_dir}"):
            work_dir.mkdir(parents=True, exist_ok=True)
            if kind == "tgz":
                opened = _open_tar(path, display, opener, work_dir, limits, chunked, progress, seal)
            else:
                fh = stack.enter_context(opener())
                opened = _open_iso(path, display, fh, work_dir, limits, chunked, progress, seal)
        return opened


# -- containers ---------------------------------------------------------------------------------


def _classify(path: Path) -> tuple[str, bool]:
    name = path.name
    if name.endswith(chunking.TOC_SUFFIX):
        return "", True  # the table of contents says which
    parsed = chunking.parse_chunk_name(name)
    if parsed:
        return ("iso" if parsed[0].endswith(".iso") else "tgz"), True
    if name.endswith((".tar.gz", ".tgz")):
        return "tgz", False
    if name.endswith(".iso"):
        return "iso", False
    with open(path, "rb") as fh:
        head = fh.read(2)
        fh.seek(0x8001)
        iso_magic = fh.read(5)
    if head == b"\x1f\x8b":
        return "tgz", False
    if iso_magic == b"CD001":
        return "iso", False
    raise UsageError(
        f"{path} is not a bundle: expected a directory, a .tar.gz, an .iso, "
        "or the first chunk (.000) of a chunked bundle"
    )


def _toc_for(path: Path, limits: ReadLimits) -> tuple[Path, chunking.Toc]:
    if path.name.endswith(chunking.TOC_SUFFIX):
        toc_path = path
    else:
        parsed = chunking.parse_chunk_name(path.name)
        assert parsed is not None, "_classify recognised a chunk name"
        archive, index = parsed
        if index != 0:
            raise UsageError(f"{path} is not the first chunk: give the chunk ending in .000 (or the .toc.json)")
        toc_path = path.parent / chunking.toc_name_for(archive)
    toc = chunking.load_toc(toc_path, limits.max_toc_bytes)
    if not path.name.endswith(chunking.TOC_SUFFIX):
        first = toc["chunks"][0]["name"]
        if first != path.name:
            raise BundleIntegrityError(
                f"{toc_path.name} describes chunks of {toc['name']}, not {path.name}", [f"its first chunk is {first}"]
            )
    return toc_path, toc


def _open_tar(
    source: Path,
    display: str,
    opener: Callable[[], BinaryIO],
    work_dir: Path,
    limits: ReadLimits,
    chunked: bool,
    progress: Progress | None,
    seal: Seal | None,
) -> OpenedBundle:
    # pass 1: every header, nothing written (and the signature as soon as the first two members are read)
    infos = _tar_index(display, opener, limits, seal)
    members = [Member(ti.name, _TAR_KINDS.get(ti.type, "other"), ti.size, ti.linkname) for ti in infos]
    accepted, problems = member_problems(members, limits)
    _raise_if(problems, f"{display} is not a safe bundle archive; nothing was extracted", limits)
    _check_space(work_dir, sum(m.size for m in accepted if m.kind == "file"))
    temp = Path(tempfile.mkdtemp(prefix="bundle-", dir=work_dir))
    try:
        _extract_tar(display, opener, infos, temp, progress)
    except BaseException:
        _remove_tree(temp)
        raise
    return OpenedBundle(source, temp, "tgz", chunked, limits, temp)


def _tar_stream(fh: BinaryIO) -> tuple[gzip.GzipFile, tarfile.TarFile]:
    gz = gzip.GzipFile(fileobj=fh, mode="rb")
    return gz, tarfile.open(fileobj=gz, mode="r|")


def _tar_index(
    display: str, opener: Callable[[], BinaryIO], limits: ReadLimits, seal: Seal | None = None
) -> list[tarfile.TarInfo]:
    infos: list[tarfile.TarInfo] = []
    sealed: dict[str, bytes] = {}
    bounds = {MANIFEST_NAME: limits.max_manifest_bytes, SIGNATURE_NAME: MAX_SIGNATURE_BYTES}
    try:
        with opener() as fh:
            gz, tar = _tar_stream(fh)
            with gz, tar:
                for ti in tar:
                    infos.append(ti)
                    if len(infos) > limits.max_entries:
                        return infos  # member_problems reports it; no need to read further
                    name = ti.name.removeprefix("./")
                    if (
                        seal
                        and name in bounds
                        and ti.type in (tarfile.REGTYPE, tarfile.AREGTYPE)
                        and ti.size <= bounds[name]
                        and name not in sealed
                    ):
                        content = tar.extractfile(ti)
                        if content is None:  # tarfile gives None only for members that are not files
                            raise BundleIntegrityError(f"{display}: {name} cannot be read as a file")
                        sealed[name] = content.read()
                        if len(sealed) == 2:  # iss writes these two first: an untrusted bundle stops here
                            seal(sealed[MANIFEST_NAME], sealed[SIGNATURE_NAME])
                while gz.read(_READ):  # to the end: the gzip trailer's CRC and length are checked
                    pass
    except BundleIntegrityError:
        raise
    except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
        raise BundleIntegrityError(f"{display} cannot be read: {e.strerror}") from None
    except (EOFError, gzip.BadGzipFile, zlib.error, tarfile.TarError, OSError, ValueError) as e:
        raise BundleIntegrityError(f"{display} is truncated or not a gzip file: {_reason(e)}") from None
    return infos


def _extract_tar(
    display: str, opener: Callable[[], BinaryIO], infos: list[tarfile.TarInfo], dest: Path, progress: Progress | None
) -> None:
    """Pass 2: the same members again (they must be exactly those checked), extracted under `dest`."""
    expected = iter(infos)
    try:
        with opener() as fh:
            gz, tar = _tar_stream(fh)
            with gz, tar:
                for ti in tar:
                    seen = next(expected, None)
                    if seen is None or (seen.name, seen.type, seen.size) != (ti.name, ti.type, ti.size):
                        raise BundleIntegrityError(f"{display} changed while it was being read; nothing was imported")
                    if ti.name.strip("/") in ("", "."):
                        continue
                    tar.extract(ti, dest, set_attrs=True, filter=_strict_data_filter)
                    if progress and ti.isfile():
                        progress(ti.size)
    except BundleIntegrityError:
        raise
    except (EOFError, gzip.BadGzipFile, zlib.error, tarfile.TarError, ValueError) as e:
        raise BundleIntegrityError(f"{display} is truncated or not a gzip file: {_reason(e)}") from None
    if next(expected, None) is not None:
        raise BundleIntegrityError(f"{display} changed while it was being read; nothing was imported")


def _strict_data_filter(member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo:
    """tarfile's "data" filter, then fixed modes and owners (our temp dir must stay removable)."""
    member = tarfile.data_filter(member, dest_path)
    if not (member.isfile() or member.isdir()):
        raise tarfile.FilterError(f"{member.name}: only regular files and directories")
    return member.replace(
        mode=0o755 if member.isdir() else 0o644,
        # None: do not set owners (as tarfile's own data_filter does); typeshed allows only int and str
        uid=None,  # type: ignore[arg-type]
        gid=None,  # type: ignore[arg-type]
        uname=None,  # type: ignore[arg-type]
        gname=None,  # type: ignore[arg-type]
        deep=False,
    )


def _open_iso(
    source: Path,
    display: str,
    fh: BinaryIO,
    work_dir: Path,
    limits: ReadLimits,
    chunked: bool,
    progress: Progress | None,
    seal: Seal | None,
) -> OpenedBundle:
    from .iso import extract_iso_file, open_iso, scan_iso  # pycdlib: only for an ISO (4 MiB of RSS)

    try:
        iso = open_iso(fh)
    except Exception as e:  # pycdlib on a hostile image may raise anything; all of it means "bad image"
        raise BundleIntegrityError(f"{display} is truncated or not an ISO 9660 image: {_reason(e)}") from None
    try:
        try:
            members = list(scan_iso(iso, limits))
        except Exception as e:
            raise BundleIntegrityError(f"{display} is damaged: {_reason(e)}") from None
        accepted, problems = member_problems(members, limits)
        _raise_if(problems, f"{display} is not a safe bundle image; nothing was extracted", limits)
        sizes = {m.name: m.size for m in accepted if m.kind == "file"}
        if (
            seal
            and sizes.get(MANIFEST_NAME, 1 << 62) <= limits.max_manifest_bytes
            and sizes.get(SIGNATURE_NAME, 1 << 62) <= MAX_SIGNATURE_BYTES
        ):
            pieces = []
            for name in (MANIFEST_NAME, SIGNATURE_NAME):
                buffer = io.BytesIO()
                try:
                    extract_iso_file(iso, name, buffer)
                except Exception as e:
                    raise BundleIntegrityError(f"{display}: {name} cannot be read: {_reason(e)}") from None
                pieces.append(buffer.getvalue())
            seal(*pieces)
        _check_space(work_dir, sum(sizes.values()))
        temp = Path(tempfile.mkdtemp(prefix="bundle-", dir=work_dir))
        try:
            for m in sorted(accepted, key=lambda m: (m.kind != "dir", m.name)):
                target = temp / m.name
                if m.kind == "dir":
                    target.mkdir(mode=0o755, parents=True, exist_ok=True)
                    continue
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
                with os.fdopen(fd, "wb", buffering=_READ) as out:
                    try:
                        extract_iso_file(iso, m.name, out)
                    except Exception as e:
                        raise BundleIntegrityError(f"{display}: {m.name} cannot be read: {_reason(e)}") from None
                if progress:
                    progress(m.size)
        except BaseException:
            _remove_tree(temp)
            raise
    finally:
        iso.close()
    return OpenedBundle(source, temp, "iso", chunked, limits, temp)


def _walk_directory(root: Path, limits: ReadLimits) -> tuple[list[Member], list[str]]:
    """A directory bundle as members, without following any link."""
    members: list[Member] = []
    problems: list[str] = []
    stack = [""]

    def scan() -> Iterator[Member]:
        while stack:
            rel = stack.pop()
            try:
                with os.scandir(root / rel if rel else root) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as e:
                problems.append(f"{rel or '.'}: cannot be listed ({e.strerror})")
                continue
            for entry in entries:
                path = f"{rel}/{entry.name}" if rel else entry.name
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError as e:
                    problems.append(f"{path}: cannot be examined ({e.strerror})")
                    continue
                kind = _mode_kind(st.st_mode)
                link = ""
                if kind == "symlink":
                    try:
                        link = os.readlink(entry.path)
                    except OSError:
                        link = "?"
                yield Member(path, kind, st.st_size if kind == "file" else 0, link)
                if kind == "dir" and path.count("/") + 1 <= limits.max_depth:
                    stack.append(path)  # deeper entries are yielded once, for member_problems to report

    accepted, found = member_problems(scan(), limits)
    members.extend(accepted)
    return members, problems + found


_MODE_KINDS: tuple[tuple[Callable[[int], bool], MemberKind], ...] = (
    (stat.S_ISREG, "file"),
    (stat.S_ISDIR, "dir"),
    (stat.S_ISLNK, "symlink"),
    (stat.S_ISCHR, "chrdev"),
    (stat.S_ISBLK, "blkdev"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
)


def _mode_kind(mode: int) -> MemberKind:
    for test, kind in _MODE_KINDS:
        if test(mode):
            return kind
    return "other"


# -- verification -------------------------------------------------------------------------------


def verify_bundle(
    opened: OpenedBundle,
    trusted: Sequence[TrustedKey],
    organization: str,
    *,
    schema: bool = True,
    progress: Progress | None = None,
    file_problems: list[str] | None = None,
) -> BundleManifest:
    """Signature, then schema, then every file. With `file_problems` (a dry run that wants every
    problem at once), problems with the files are appended there instead of raised."""
    limits = opened.limits
    files = opened.inventory()
    missing = [n for n in (MANIFEST_NAME, SIGNATURE_NAME) if n not in files]
    if missing:
        raise BundleIntegrityError(
            f"{opened.source} is not an iss bundle: {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing"
        )
    raw = _read_bounded(opened.root / MANIFEST_NAME, limits.max_manifest_bytes, MANIFEST_NAME)
    signature = _read_bounded(opened.root / SIGNATURE_NAME, MAX_SIGNATURE_BYTES, SIGNATURE_NAME)

    # 1. the signature, before anything in the manifest is believed
    data, duplicates = _check_signature(raw, signature, trusted, organization)

    # 2. the schema
    if schema:
        problems = [f"(top): key '{k}' appears more than once in an object" for k in duplicates]
        problems += _schema_problems(data)
        if not problems:
            problems = manifest_consistency_problems(data)
        if problems:
            raise SchemaViolation(
                f"manifest.json does not follow schemas/{MANIFEST_SCHEMA}; nothing was imported",
                capped(problems, limits.max_reported_problems),
            )
    try:
        manifest = BundleManifest.from_dict(data)
        listed = {f.path: f for f in manifest.files}
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise SchemaViolation(f"manifest.json cannot be read as a bundle manifest: {_reason(e)}") from None
    del raw, data  # MiBs at 20,000 files, not needed while the files are hashed

    # 3. every file
    problems = []
    to_hash: list[FileEntry] = []
    for path, entry in sorted(listed.items()):
        size = files.get(path)
        if size is None and opened.held.get(path) == entry.sha256:
            continue  # checked while it was streamed, and stored by the backend
        if size is None:
            problems.append(f"{path}: listed in the manifest but missing from the bundle")
        elif size != entry.size:
            problems.append(f"{path}: {size} bytes, the manifest says {entry.size}")
        else:
            to_hash.append(entry)
    for path in sorted(set(files) - set(listed) - RESERVED):
        problems.append(f"{path}: in the bundle but not listed in the manifest")
    problems += _hash_problems(opened.root, to_hash, progress)
    if problems and file_problems is not None:
        file_problems.extend(capped(sorted(problems), limits.max_reported_problems))
    elif problems:
        raise BundleIntegrityError(
            f"bundle {opened.source.name} failed its integrity check; nothing was imported",
            capped(sorted(problems), limits.max_reported_problems),
        )
    return manifest


def _check_signature(
    raw: bytes, signature: bytes, trusted: Sequence[TrustedKey], organization: str
) -> tuple[JSONObject, list[str]]:
    """The manifest's signature by a key trusted for `organization`; (parsed JSON, duplicate keys)."""
    data, duplicates = _parse_manifest(raw)
    fingerprint = data.get("source_key_fingerprint") if isinstance(data, dict) else None
    if (
        not isinstance(data, dict)
        or not isinstance(fingerprint, str)
        or not fingerprint.startswith("sha256:")
        or len(fingerprint) > 80
    ):
        raise BundleIntegrityError("manifest.json does not name the key that signed it (source_key_fingerprint)")
    key = _trusted_key(trusted, fingerprint, organization)
    if not verify_signature(key.public_pem, raw, signature):
        raise BundleIntegrityError(
            f"manifest.json was changed after it was signed: its signature does not verify with "
            f"the trusted key '{key.name}' ({fingerprint}); nothing was imported",
            details={"fingerprint": fingerprint, "key": key.name},
        )
    return data, duplicates


def _parse_manifest(raw: bytes) -> tuple[object, list[str]]:
    """(the manifest's JSON, the keys that appear more than once in one of its objects). An object
    written as iss writes a files[] entry, {"path": .., "sha256": .., "size": ..} in that order,
    becomes a FileEntry as it is parsed (whatever its values hold: the schema checks them later),
    not a dict: 20,000 dicts weigh MiBs more. Outside the files[] array they are dicts again."""
    duplicates: list[str] = []
    made = [0]

    def pairs(items: list[tuple[str, object]]) -> object:
        if len(items) == 3 and (items[0][0], items[1][0], items[2][0]) == _FILE_KEYS:
            made[0] += 1
            return FileEntry(items[0][1], items[1][1], items[2][1])  # type: ignore[arg-type]
        d: dict[str, object] = {}
        for k, v in items:
            if k in d:
                duplicates.append(k)
            d[k] = v
        return d

    def no_constants(name: str) -> NoReturn:
        raise ValueError(f"{name} is not JSON")

    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=pairs, parse_constant=no_constants)
        files = data.get("files") if isinstance(data, dict) else None
        if made[0] == (sum(isinstance(f, FileEntry) for f in files) if isinstance(files, list) else 0):
            return data, duplicates  # every FileEntry is a files[] entry (and none holds another)
        # one elsewhere: the document as parsed, the files[] entries aside
        if not isinstance(data, dict) or not isinstance(files, list):
            return _plain(data), duplicates
        kept = [f if isinstance(f, FileEntry) and not _holds_entry(f) else _plain(f) for f in files]
        return {k: kept if k == "files" else _plain(v) for k, v in data.items()}, duplicates
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise BundleIntegrityError(f"manifest.json is not valid JSON: {_reason(e)}") from None


_FILE_KEYS = ("path", "sha256", "size")


def _plain(value: object) -> object:
    """`value` with each FileEntry _parse_manifest made back as the object it was parsed from."""
    if isinstance(value, FileEntry):
        return {"path": _plain(value.path), "sha256": _plain(value.sha256), "size": _plain(value.size)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _holds_entry(entry: FileEntry) -> bool:
    return any(isinstance(v, (FileEntry, dict, list)) for v in (entry.path, entry.sha256, entry.size))


def _schema_problems(data: object) -> list[str]:
    """schemas.problems(MANIFEST_SCHEMA, data) with every files[] entry as the object it was parsed
    from, one entry at a time (the problems are the same, in the same order)."""
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(files, list):
        return schemas.problems(MANIFEST_SCHEMA, data)
    return schemas.problems_item_by_item(MANIFEST_SCHEMA, data, "files", map(_plain, files))


def _trusted_key(trusted: Sequence[TrustedKey], fingerprint: str, organization: str) -> TrustedKey:
    same_key = []
    for key in trusted:
        if key.fingerprint != fingerprint:
            continue
        try:
            if fingerprint_of(key.public_pem) != fingerprint:
                continue  # a stored key whose PEM is not what its fingerprint says: never use it
        except UsageError:
            continue
        if key.may_feed(organization):
            return key
        same_key.append(key)
    message = (
        f"bundle signed by key {fingerprint} which is not trusted for organization {organization}; "
        "add it with `iss trust add`"
    )
    problems = [
        f"key '{k.name}' is trusted only for: {', '.join(k.organizations) or 'no organization'}" for k in same_key
    ]
    raise UntrustedSource(message, problems, details={"fingerprint": fingerprint, "organization": organization})


def _hash_problems(root: Path, entries: Sequence[FileEntry], progress: Progress | None) -> list[str]:
    """sha256 of every entry (a few threads: hashlib releases the GIL); progress on this thread."""

    def check(entry: FileEntry) -> tuple[str | None, int]:
        try:
            fd = os.open(root / entry.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as e:
            return f"{entry.path}: cannot be read ({e.strerror})", 0
        with os.fdopen(fd, "rb", buffering=0) as fh:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size != entry.size:
                return f"{entry.path}: changed while the bundle was being verified", 0
            h = hashlib.sha256()
            # blocks no larger than the file: read(_READ) allocates _READ bytes per call, 1 MiB for
            # each 20 KB package, which the hashing threads' malloc arenas then keep
            while block := fh.read(min(_READ, st.st_size + 1)):
                h.update(block)
        digest = h.hexdigest()
        if digest != entry.sha256:
            return (
                f"{entry.path}: sha256 {digest} does not match the manifest ({entry.sha256}): the file was altered",
                entry.size,
            )
        return None, entry.size

    problems: list[str] = []
    with ThreadPoolExecutor(max_workers=_HASH_THREADS) as pool:
        for problem, size in _bounded_map(pool, check, entries, _HASH_THREADS * 16):
            if problem:
                problems.append(problem)
            if progress and size:
                progress(size)
    return problems


def _bounded_map(
    pool: ThreadPoolExecutor, fn: Callable[[FileEntry], tuple[str | None, int]], items: Sequence[FileEntry], window: int
) -> Iterator[tuple[str | None, int]]:
    """pool.map(fn, items) in order, with at most `window` calls submitted at a time: Executor.map
    submits every item at once, a Future (and its lock) per file, about 1.5 KB each (30 MiB at
    20,000 packages) before the first result."""
    pending: deque[Future[tuple[str | None, int]]] = deque()
    for item in items:
        if len(pending) >= window:
            yield pending.popleft().result()
        pending.append(pool.submit(fn, item))
    while pending:
        yield pending.popleft().result()


# -- helpers -------------------------------------------------------------------------------------


def _read_bounded(path: Path, limit: int, shown: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as e:
        raise BundleIntegrityError(f"{shown} cannot be read: {e.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        # the file's own size (plus one byte, to see it grow), not the limit: read(limit + 1) would
        # reserve the whole limit (512 MiB for a manifest) however small the file is
        data = fh.read(min(limit, os.fstat(fd).st_size) + 1)
        if limit >= len(data) > os.fstat(fd).st_size:
            data += fh.read(limit + 1 - len(data))
    if len(data) > limit:
        raise BundleIntegrityError(f"{shown} is larger than {limit} bytes; refusing to read it")
    return data


def _check_space(work_dir: Path, needed: int) -> None:
    free = shutil.disk_usage(work_dir).free
    if needed > free:
        raise IssError(
            f"not enough space in {work_dir} to open the bundle: it needs {needed} bytes, {free} are free; "
            f"nothing was imported; free space under {work_dir} (or set import_dir elsewhere), then try again"
        )


def _raise_if(problems: list[str], message: str, limits: ReadLimits) -> None:
    if problems:
        raise BundleIntegrityError(message, capped(problems, limits.max_reported_problems))


def _remove_tree(path: Path) -> None:
    def make_writable_and_retry(func: Callable[[str], object], p: str, _exc: object) -> None:
        try:
            os.chmod(os.path.dirname(p), 0o755)
            os.chmod(p, 0o755, follow_symlinks=False)
        except OSError:
            pass
        func(p)

    if os.path.lexists(path):
        shutil.rmtree(path, onerror=make_writable_and_retry)


def _reason(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text if len(text) <= 300 else text[:300] + "..."
