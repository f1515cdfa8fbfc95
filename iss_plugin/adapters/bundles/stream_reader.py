"""Reading a bundle from a tar stream in one pass (phase 3: a source's /bundles/stream): hostile input.

    opened = read_tar_stream(body, "the stream from URL", work_dir, seal=seal)
    with opened:
        ... import from opened.root (verify_bundle checks it again) ...

The stream must start with manifest.json and manifest.json.sig: the signature is checked (`seal`)
before anything else is read. Then every member gets the reader's checks (checks.member_problems:
relative paths, no '..', regular files and directories only, no duplicates, sizes within the
limits) and must be a file the signed manifest lists, with its size; each file is hashed while it
is written under a fresh directory in `work_dir`, and a sha256 other than the manifest's stops the
stream there. A stream that ends early (a listed file missing or short) is refused. On any refusal
the directory is removed: nothing of a bad stream remains.

With `receive(path, file, sha256)`, each file, once its sha256 is checked, is offered to the caller
(a content backend that stores package files one at a time, ReceivesPackages): when it answers True
the file is the receiver's (it removes it) and the bundle records it in `held` instead of keeping it
under its root, so no more than a few package files lie outside the content store at any time."""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from iss_plugin.adapters.disk_faults import disk_faults
from iss_plugin.domain.errors import BundleIntegrityError
from iss_plugin.domain.manifest import MANIFEST_NAME, SIGNATURE_NAME, FileEntry

from .checks import Member, ReadLimits, capped, member_problems
from .reader import _TAR_KINDS, MAX_SIGNATURE_BYTES, OpenedBundle, Progress, Seal, _parse_manifest, _remove_tree

_BLOCK = 1024 * 1024

# (path in the bundle, the checked file, its sha256) -> True when the receiver took the file
Receive = Callable[[str, Path, str], bool]


def read_tar_stream(
    fh: BinaryIO,
    display: str,
    work_dir: Path,
    *,
    seal: Seal,
    limits: ReadLimits = ReadLimits(),
    progress: Progress | None = None,
    receive: Receive | None = None,
) -> OpenedBundle:
    """The bundle in the (uncompressed, or gzip with mode 'r|gz') tar stream `fh`, checked and
    extracted under a new directory in `work_dir` (an OpenedBundle that removes it when closed)."""
    with disk_faults(work_dir, doing=f"extracting {display} under {work_dir}"):
        work_dir.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(prefix="stream-", dir=work_dir))
    try:
        with tarfile.open(fileobj=fh, mode="r|*") as tar, disk_faults(work_dir, doing=f"extracting {display}"):
            extraction = _StreamExtraction(tar, display, temp, seal, limits, progress, receive)
            extraction.run()
    except BaseException as e:
        _remove_tree(temp)
        if isinstance(e, (tarfile.TarError, EOFError, zlib.error, ValueError)):
            raise BundleIntegrityError(
                f"{display} is truncated or not a tar stream: {e}; nothing was imported"
            ) from None
        raise
    return OpenedBundle(Path(display), temp, "tgz", False, limits, temp, extraction.held)


class _StreamExtraction:
    def __init__(
        self,
        tar: tarfile.TarFile,
        display: str,
        dest: Path,
        seal: Seal,
        limits: ReadLimits,
        progress: Progress | None,
        receive: Receive | None = None,
    ) -> None:
        self.tar, self.display, self.dest, self.seal = tar, display, dest, seal
        self.limits, self.progress, self.receive = limits, progress, receive
        self.held: dict[str, str] = {}
        self.listed: dict[str, FileEntry] = {}
        self.count = 2  # the manifest and its signature
        self.names: set[str] = set()
        self.total = 0

    def run(self) -> None:
        members = _one_at_a_time(self.tar)
        manifest = self._sealed(next(members, None), MANIFEST_NAME, self.limits.max_manifest_bytes)
        signature = self._sealed(next(members, None), SIGNATURE_NAME, MAX_SIGNATURE_BYTES)
        self.seal(manifest, signature)  # an untrusted or edited manifest stops the stream here
        self.listed = _listed_files(manifest, self.display)
        for ti in members:
            self._extract(ti)
        missing = sorted(set(self.listed) - self.names)
        if missing:
            raise BundleIntegrityError(
                f"{self.display} ended before every file the manifest lists arrived; nothing was imported",
                capped([f"{p}: missing" for p in missing], self.limits.max_reported_problems),
            )

    def _sealed(self, ti: tarfile.TarInfo | None, name: str, limit: int) -> bytes:
        if ti is None or ti.name.removeprefix("./") != name or not ti.isfile() or ti.size > limit:
            got = "nothing" if ti is None else ti.name
            raise BundleIntegrityError(
                f"{self.display} must start with {MANIFEST_NAME} and {SIGNATURE_NAME} (at most {limit} bytes); "
                f"got {got}; nothing was imported"
            )
        content = self.tar.extractfile(ti)
        assert content is not None, "a regular member always has content"
        data = content.read()
        if len(data) != ti.size:
            raise BundleIntegrityError(f"{self.display} ended inside {name}; nothing was imported")
        self.names.add(name)
        (self.dest / name).write_bytes(data)
        return data

    def _extract(self, ti: tarfile.TarInfo) -> None:
        member = Member(ti.name, _TAR_KINDS.get(ti.type, "other"), ti.size, ti.linkname)
        self.count += 1
        self.total += max(ti.size, 0) if member.kind == "file" else 0
        accepted, problems = member_problems([member], self.limits)  # one at a time: the stream is not indexed
        if accepted and accepted[-1].name in self.names:
            problems.append(f"{accepted[-1].name}: appears more than once")
        if self.count > self.limits.max_entries:
            problems.append(f"(bundle): more than {self.limits.max_entries} entries")
        if self.total > self.limits.max_total_bytes:
            problems.append(f"(bundle): more than {self.limits.max_total_bytes} bytes of content")
        if problems:
            raise BundleIntegrityError(
                f"{self.display} is not a safe bundle stream; nothing was imported",
                capped(problems, self.limits.max_reported_problems),
            )
        if not accepted:
            return  # the top directory itself
        name = accepted[-1].name
        self.names.add(name)
        target = self.dest / name
        if member.kind == "dir":
            target.mkdir(mode=0o755, parents=True, exist_ok=True)
            return
        expected = self.listed.get(name)
        if expected is None or expected.size != ti.size:
            what = "is not listed in the signed manifest" if expected is None else f"is not {expected.size} bytes"
            raise BundleIntegrityError(f"{self.display}: {name} {what}; nothing was imported")
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        digest = self._write(ti, target)
        if digest != expected.sha256:
            raise BundleIntegrityError(
                f"{self.display}: {name} has sha256 {digest}, the signed manifest says {expected.sha256}: "
                "altered in transit; nothing was imported"
            )
        if self.receive is not None and self.receive(name, target, digest):
            self.held[name] = digest

    def _write(self, ti: tarfile.TarInfo, target: Path) -> str:
        content = self.tar.extractfile(ti)
        assert content is not None, "a regular member always has content"
        h = hashlib.sha256()
        written = 0
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "wb") as out:
            while block := content.read(min(_BLOCK, ti.size - written + 1)):  # no 1 MiB buffer per small file
                h.update(block)
                out.write(block)
                written += len(block)
                if self.progress:
                    self.progress(len(block))
        if written != ti.size:
            raise BundleIntegrityError(f"{self.display} ended inside {ti.name}; nothing was imported")
        return h.hexdigest()


def _one_at_a_time(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The members of a tar read as a stream, without the TarInfo list tarfile keeps of every member
    it has read (hundreds of bytes each: MiBs at 20,000 packages; a stream is not read twice)."""
    while (ti := tar.next()) is not None:
        tar.members.clear()  # type: ignore[attr-defined]  # typeshed omits TarFile.members
        yield ti


def _listed_files(manifest: bytes, display: str) -> dict[str, FileEntry]:
    """path -> its entry in the (already signature-checked) manifest; its schema is checked later.
    The entries are parsed as FileEntry (reader._parse_manifest), not as 20,000 dicts."""
    try:
        data, _ = _parse_manifest(manifest)
        if not isinstance(data, dict) or not isinstance(data["files"], list):
            raise TypeError("files is not an array")
        return {entry.path: entry for entry in map(_as_entry, data["files"])}
    except BundleIntegrityError as e:
        raise BundleIntegrityError(f"{display}: {e.message}") from None
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise BundleIntegrityError(f"{display}: manifest.json does not list its files: {e}") from None


def _as_entry(entry: object) -> FileEntry:
    """A files[] item as a FileEntry of a str path, a str sha256 and an int size (or TypeError,
    ValueError or KeyError); the schema check says later what else is wrong with it."""
    if isinstance(entry, FileEntry):
        path, sha256, size = entry.path, entry.sha256, entry.size
    elif isinstance(entry, dict):
        path, sha256, size = entry["path"], entry["sha256"], entry["size"]
    else:
        raise TypeError(f"a files entry is {type(entry).__name__}, not an object")
    return FileEntry(str(path), str(sha256), int(size))
