"""Bundles as ISO 9660 images (Rock Ridge + Joliet) through pycdlib.

Rock Ridge carries the real names and is what iss reads. ISO 9660 names are generated
(`D000001`, `F000001.;1`: unique, valid at any interchange level); Joliet names are the real
names, shortened to Joliet's 64 characters where needed, for Windows readers.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

import pycdlib

from iss_plugin.domain.errors import IssError

from .checks import Member, MemberKind, ReadLimits
from .stream import Entry, unreadable

FILE_MODE = 0o100444
DIR_MODE = 0o040555
_JOLIET_MAX = 64
_JOLIET_BAD = set("*/:;?\\")


def write_iso(
    entries: Iterable[Entry], fileobj: BinaryIO, *, volume_id: str, progress: Callable[[int], None] | None = None
) -> None:
    """Master an ISO holding `entries` (parents created as needed) into a seekable `fileobj`."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, rock_ridge="1.09", joliet=3, vol_ident=_volume_id(volume_id))
    dirs: dict[str, tuple[str, str]] = {"": ("/", "/")}  # rel dir -> (iso path, joliet path)
    counters: dict[str, int] = {}
    joliet_used: dict[str, set[str]] = {}
    keep_open: list[BinaryIO] = []

    def next_name(parent: str) -> int:
        counters[parent] = counters.get(parent, 0) + 1
        return counters[parent]

    def joliet_name(parent: str, name: str) -> str:
        used = joliet_used.setdefault(parent, set())
        clean = "".join("_" if c in _JOLIET_BAD or ord(c) < 0x20 else c for c in name)
        candidate, n = clean[:_JOLIET_MAX], 0
        while candidate.lower() in used:
            n += 1
            stem, dot, ext = clean.rpartition(".")
            suffix = f"~{n}" + (dot + ext if dot and len(ext) <= 8 else "")
            base = stem if dot and len(ext) <= 8 else clean
            candidate = base[: _JOLIET_MAX - len(suffix)] + suffix
        used.add(candidate.lower())
        return candidate

    def ensure_dir(rel: str) -> tuple[str, str]:
        if rel in dirs:
            return dirs[rel]
        parent, _, name = rel.rpartition("/")
        parent_iso, parent_joliet = ensure_dir(parent)
        iso_path = f"{parent_iso.rstrip('/')}/D{next_name(parent):06d}"
        joliet_path = f"{parent_joliet.rstrip('/')}/{joliet_name(parent, name)}"
        iso.add_directory(iso_path, rr_name=name, joliet_path=joliet_path, file_mode=DIR_MODE)
        dirs[rel] = (iso_path, joliet_path)
        return dirs[rel]

    try:
        for entry in entries:
            parent, _, name = entry.path.rpartition("/")
            parent_iso, parent_joliet = ensure_dir(parent)
            iso_path = f"{parent_iso.rstrip('/')}/F{next_name(parent):06d}.;1"
            joliet_path = f"{parent_joliet.rstrip('/')}/{joliet_name(parent, name)}"
            if entry.data is not None:
                fp: BinaryIO = io.BytesIO(entry.data)
                keep_open.append(fp)
                iso.add_fp(fp, len(entry.data), iso_path, rr_name=name, joliet_path=joliet_path, file_mode=FILE_MODE)
            else:
                assert entry.source is not None
                try:
                    size = os.stat(entry.source).st_size
                except OSError as e:
                    raise unreadable(entry.path, entry.source, e) from None
                if size != entry.size:
                    raise IssError(
                        f"{entry.path} has {size} bytes, {entry.size} expected: it changed while the bundle was being written"
                    )
                iso.add_file(str(entry.source), iso_path, rr_name=name, joliet_path=joliet_path, file_mode=FILE_MODE)
        done = [0]

        def report(written: int, total: int, _opaque: object) -> None:  # pycdlib counts the arguments
            if progress and written > done[0]:
                progress(written - done[0])
                done[0] = written

        iso.write_fp(fileobj, progress_cb=report if progress else None)
    finally:
        iso.close()
        for fp in keep_open:
            fp.close()


def open_iso(fileobj: BinaryIO) -> pycdlib.PyCdlib:
    """Parse an image (hostile input: the caller turns any exception into an integrity error)."""
    iso = pycdlib.PyCdlib()
    iso.open_fp(fileobj)
    if not iso.has_rock_ridge():
        iso.close()
        raise ValueError("it has no Rock Ridge names (iss writes ISO 9660 with Rock Ridge)")
    return iso


def scan_iso(iso: pycdlib.PyCdlib, limits: ReadLimits) -> Iterator[Member]:
    """Every entry of the image as a Member (Rock Ridge names and modes), breadth first.

    Names that could not be looked up again safely (containing '/', '.', '..', NUL) are
    yielded as-is so that the checks report them, and such directories are not entered."""
    queue: list[str] = [""]
    seen = 0
    while queue:
        rel = queue.pop(0)
        for child in iso.list_children(rr_path="/" + rel):
            if child is None or child.is_dot() or child.is_dotdot():
                continue
            seen += 1
            if seen > limits.max_entries + 1:
                return
            rr = child.rock_ridge
            if rr is None:
                ident = child.file_identifier().decode("ascii", "replace")
                yield Member(f"{rel}/{ident}" if rel else ident, "other", problem="has no Rock Ridge entry")
                continue
            name = rr.name().decode("utf-8", "surrogateescape")
            path = f"{rel}/{name}" if rel else name
            if rr.is_symlink():
                yield Member(path, "symlink", 0, rr.symlink_path().decode("utf-8", "surrogateescape"))
                continue
            try:
                mode = rr.get_file_mode()
            except pycdlib.pycdlibexception.PyCdlibException:
                mode = stat.S_IFDIR if child.is_dir() else stat.S_IFREG
            kind = _kind(mode)
            if (kind == "dir" and not child.is_dir()) or (kind == "file" and child.is_dir()):
                kind = "other"
            if name in ("", ".", "..") or "/" in name or "\0" in name:
                yield Member(f"{rel}/{name}" if rel else name, kind, problem=f"unusable Rock Ridge name {name!r}")
                continue
            yield Member(path, kind, child.get_data_length() if kind == "file" else 0)
            if kind == "dir" and path.count("/") + 1 <= limits.max_depth:
                queue.append(path)


def extract_iso_file(iso: pycdlib.PyCdlib, rel: str, out: BinaryIO) -> None:
    iso.get_file_from_iso_fp(out, rr_path="/" + rel)


def _kind(mode: int) -> MemberKind:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISCHR(mode):
        return "chrdev"
    if stat.S_ISBLK(mode):
        return "blkdev"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "other"


def _volume_id(text: str) -> str:
    clean = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in text.upper())
    return (clean or "ISS_BUNDLE")[:16]  # Joliet stores it as UTF-16 in 32 bytes
