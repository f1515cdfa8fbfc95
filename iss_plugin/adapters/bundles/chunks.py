"""Bundles split into chunks for media: the chunk files and their table of contents.

A chunked bundle is `<name>.tar.gz.000`, `.001`, ... (or `<name>.iso.000`, ...) plus
`<name>.toc.json` (schemas/bundle/toc.v1.json): the chunks in order with size and sha256, and
the size and sha256 of the joined stream. The suffix has at least three digits (more when there
are more than 1000 chunks).

- `SplitWriter`: a seekable writable file over chunk files (pycdlib seeks while it writes an
  ISO); it hashes on the fly while writes are sequential (tar.gz) and re-reads otherwise.
- `JoinedReader`: a seekable read-only file over chunk files (for gzip and pycdlib).
- `load_toc` / `check_chunks`: the reader side; every problem named by its chunk.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import schemas
from iss_plugin.domain.errors import BundleIntegrityError

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

TOC_FORMAT = "iss-bundle-toc/1"
TOC_SCHEMA = "bundle/toc.v1.json"
TOC_SUFFIX = ".toc.json"
MIN_CHUNK_SIZE = 4096
ARCHIVE_SUFFIXES = {"tar.gz": ".tar.gz", "iso": ".iso"}
_HASH_READ = 1024 * 1024
_CHUNK_NAME = re.compile(r"^(?P<archive>.+\.(?:tar\.gz|iso))\.(?P<index>[0-9]{3,})$")


@dataclass(frozen=True)
class Chunk:
    name: str
    size: int
    sha256: str


class TocChunk(TypedDict):
    name: str
    size: int
    sha256: str


class Toc(TypedDict):
    """<name>.toc.json (schemas/bundle/toc.v1.json)."""

    toc: str
    format: str  # a key of ARCHIVE_SUFFIXES
    name: str
    bundle_id: str
    chunk_size: int
    chunks: list[TocChunk]
    size: int
    sha256: str


def chunk_names(archive_name: str, count: int) -> list[str]:
    width = max(3, len(str(count - 1)))
    return [f"{archive_name}.{i:0{width}d}" for i in range(count)]


def parse_chunk_name(filename: str) -> tuple[str, int] | None:
    """'x.tar.gz.007' -> ('x.tar.gz', 7); None if it is not a chunk name."""
    m = _CHUNK_NAME.match(filename)
    return (m.group("archive"), int(m.group("index"))) if m else None


def toc_name_for(archive_name: str) -> str:
    """'x.tar.gz' or 'x.iso' -> 'x.toc.json'."""
    for suffix in ARCHIVE_SUFFIXES.values():
        if archive_name.endswith(suffix):
            return archive_name[: -len(suffix)] + TOC_SUFFIX
    raise ValueError(f"{archive_name} is not a .tar.gz or .iso name")


class SplitWriter(io.RawIOBase):
    """Write one logical stream into part files of `chunk_size` bytes (seekable, for pycdlib)."""

    def __init__(self, directory: Path, prefix: str, chunk_size: int) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        self.directory, self.prefix, self.chunk_size = Path(directory), prefix, chunk_size
        self._pos = 0
        self._size = 0
        self._fh: io.FileIO | None = None
        self._fh_index = -1
        self._hashed = 0  # every byte before this offset went through the hashes, in order
        self._sequential = True
        self._total_hash = hashlib.sha256()
        self._part_hashes: list[hashlib._Hash] = []
        self.chunks: list[Chunk] = []
        self.sha256 = ""

    def part_path(self, index: int) -> Path:
        return self.directory / f"{self.prefix}{index:06d}"

    def readable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def write(self, data: ReadableBuffer) -> int:
        view = memoryview(data).cast("B")
        total = len(view)
        if self._pos != self._hashed:
            self._sequential = False
        while view:
            index, offset = divmod(self._pos, self.chunk_size)
            n = min(len(view), self.chunk_size - offset)
            fh = self._handle(index)
            fh.seek(offset)
            piece = view[:n]
            while piece:
                written = fh.write(piece)
                piece = piece[written:]
            if self._sequential:
                self._total_hash.update(view[:n])
                while len(self._part_hashes) <= index:
                    self._part_hashes.append(hashlib.sha256())
                self._part_hashes[index].update(view[:n])
                self._hashed += n
            self._pos += n
            self._size = max(self._size, self._pos)
            view = view[n:]
        return total

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._close_handle()
        finally:
            super().close()

    def finish(self) -> list[Chunk]:
        """Close, fill any holes with zeros, and describe the parts (named by their part path)."""
        self.close()
        count = max(1, -(-self._size // self.chunk_size))
        for index in range(count):
            want = min(self.chunk_size, self._size - index * self.chunk_size)
            path = self.part_path(index)
            if not path.exists():
                path.touch()
            if path.stat().st_size != want:
                os.truncate(path, want)
        if self._sequential and self._hashed == self._size:
            hashes = [h.hexdigest() for h in self._part_hashes] + [hashlib.sha256().hexdigest()] * (
                count - len(self._part_hashes)
            )
            self.sha256 = self._total_hash.hexdigest()
        else:
            hashes, total = [], hashlib.sha256()
            for index in range(count):
                h = hashlib.sha256()
                with open(self.part_path(index), "rb") as fh:
                    while block := fh.read(_HASH_READ):
                        h.update(block)
                        total.update(block)
                hashes.append(h.hexdigest())
            self.sha256 = total.hexdigest()
        self.chunks = [Chunk(self.part_path(i).name, self.part_path(i).stat().st_size, hashes[i]) for i in range(count)]
        return self.chunks

    @property
    def size(self) -> int:
        return self._size

    def _handle(self, index: int) -> io.FileIO:
        if self._fh_index != index:
            self._close_handle()
            path = self.part_path(index)
            self._fh = io.FileIO(path, "r+b" if path.exists() else "w+b")
            self._fh_index = index
        assert self._fh is not None
        return self._fh

    def _close_handle(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh, self._fh_index = None, -1


class JoinedReader(io.RawIOBase):
    """Read chunk files as one seekable stream. Sizes are taken as given (check them first)."""

    def __init__(self, paths: Sequence[Path], sizes: Sequence[int]) -> None:
        self._paths = list(paths)
        self._starts: list[int] = []
        start = 0
        for size in sizes:
            self._starts.append(start)
            start += size
        self._sizes = list(sizes)
        self._length = start
        self._pos = 0
        self._fh: io.FileIO | None = None
        self._fh_index = -1

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._length}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        if self._pos >= self._length or not view:
            return 0
        index = self._index_of(self._pos)
        offset = self._pos - self._starts[index]
        n = min(len(view), self._sizes[index] - offset)
        if self._fh_index != index:
            self._close_handle()
            self._fh = io.FileIO(self._paths[index], "rb")
            self._fh_index = index
        assert self._fh is not None
        self._fh.seek(offset)
        got = self._fh.readinto(view[:n]) or 0
        if got == 0:
            raise BundleIntegrityError(f"{self._paths[index].name} ended early while it was being read")
        self._pos += got
        return got

    def close(self) -> None:
        if not self.closed:
            self._close_handle()
        super().close()

    def _index_of(self, pos: int) -> int:
        lo, hi = 0, len(self._starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._starts[mid] <= pos:
                lo = mid
            else:
                hi = mid - 1
        while self._sizes[lo] == 0 and lo + 1 < len(self._sizes):
            lo += 1
        return lo

    def _close_handle(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh, self._fh_index = None, -1


def toc_document(
    name: str, bundle_id: str, fmt: str, chunk_size: int, chunks: Sequence[Chunk], size: int, sha256: str
) -> Toc:
    return {
        "toc": TOC_FORMAT,
        "format": fmt,
        "name": name,
        "bundle_id": bundle_id,
        "chunk_size": chunk_size,
        "chunks": [{"name": c.name, "size": c.size, "sha256": c.sha256} for c in chunks],
        "size": size,
        "sha256": sha256,
    }


def load_toc(toc_path: Path, max_bytes: int) -> Toc:
    """Parse and check <name>.toc.json (hostile input): BundleIntegrityError with every problem."""
    shown = toc_path.name
    try:
        with open(toc_path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise BundleIntegrityError(
            f"{shown} is missing: a chunked bundle needs its table of contents beside the chunks"
        ) from None
    except OSError as e:
        raise BundleIntegrityError(f"{shown} cannot be read: {e.strerror}") from None
    if len(raw) > max_bytes:
        raise BundleIntegrityError(f"{shown} is larger than {max_bytes} bytes; refusing to read it")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise BundleIntegrityError(f"{shown} is not valid JSON: {e}") from None
    problems = schemas.problems(TOC_SCHEMA, data)
    if problems:
        raise BundleIntegrityError(f"{shown} is not a valid table of contents (schemas/{TOC_SCHEMA})", problems)
    archive = data["name"] + ARCHIVE_SUFFIXES[data["format"]]
    expected = chunk_names(archive, len(data["chunks"]))
    for i, (chunk, name) in enumerate(zip(data["chunks"], expected, strict=False)):
        if chunk["name"] != name:
            problems.append(f"chunks/{i}: named {chunk['name']!r}, expected {name!r}")
        last = i == len(expected) - 1
        if (chunk["size"] != data["chunk_size"] and not last) or chunk["size"] > data["chunk_size"]:
            problems.append(f"chunks/{i}: {chunk['size']} bytes does not fit a chunk size of {data['chunk_size']}")
    if sum(c["size"] for c in data["chunks"]) != data["size"]:
        problems.append(f"size: {data['size']} is not the sum of the chunk sizes")
    if toc_path.name != data["name"] + TOC_SUFFIX:
        problems.append(f"name: the table of contents is for '{data['name']}', but the file is called {toc_path.name}")
    if problems:
        raise BundleIntegrityError(f"{shown} is not a valid table of contents", problems)
    toc: Toc = data  # it passed the schema and the checks above
    return toc


def check_chunks(directory: Path, toc: Toc, progress: Callable[[int], None] | None = None) -> list[Path]:
    """Every chunk present, the right size and sha256, in toc order; no extra chunk beside them.

    Returns the chunk paths in order; BundleIntegrityError naming every bad chunk otherwise."""
    archive = toc["name"] + ARCHIVE_SUFFIXES[toc["format"]]
    listed = [c["name"] for c in toc["chunks"]]
    problems: list[str] = []
    paths = [directory / name for name in listed]
    present: list[bool] = []
    for i, (chunk, path) in enumerate(zip(toc["chunks"], paths, strict=False)):
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            problems.append(f"{chunk['name']}: missing (chunk {i + 1} of {len(listed)})")
            present.append(False)
            continue
        if not stat.S_ISREG(st.st_mode):
            problems.append(f"{chunk['name']}: not a regular file")
            present.append(False)
        elif st.st_size != chunk["size"]:
            problems.append(
                f"{chunk['name']}: {st.st_size} bytes, the table of contents says {chunk['size']} "
                "(truncated, reordered or replaced)"
            )
            present.append(False)
        else:
            present.append(True)
    listed_set = set(listed)
    try:
        neighbours = sorted(os.listdir(directory))
    except OSError as e:
        raise BundleIntegrityError(f"cannot list {directory}: {e.strerror}") from None
    for name in neighbours:
        parsed = parse_chunk_name(name)
        if parsed and parsed[0] == archive and name not in listed_set:
            problems.append(f"{name}: not listed in {toc['name']}{TOC_SUFFIX} (an extra or renamed chunk)")
    total = hashlib.sha256()
    whole = all(present)
    for chunk, path, ok in zip(toc["chunks"], paths, present, strict=False):
        if not ok:
            continue
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while block := fh.read(_HASH_READ):
                h.update(block)
                if whole:
                    total.update(block)
                if progress:
                    progress(len(block))
        if h.hexdigest() != chunk["sha256"]:
            problems.append(
                f"{chunk['name']}: sha256 {h.hexdigest()} does not match the table of contents "
                f"({chunk['sha256']}): corrupted, reordered or replaced"
            )
            whole = False
    if not problems and total.hexdigest() != toc["sha256"]:
        problems.append(
            f"the joined chunks have sha256 {total.hexdigest()}, the table of contents says {toc['sha256']}"
        )
    if problems:
        raise BundleIntegrityError(f"chunked bundle {archive} is incomplete or damaged", problems)
    return paths
