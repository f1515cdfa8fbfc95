"""Derived data that lets the local store's work follow the change, not the repository size.

- SetCache: a version's package checksums in membership order, filed under the version's package
  set digest (so it is valid for any version with that digest, and checked against it on every
  read). A new version is its base's list plus and minus the change: no query over all members.
- BlockCache: the version's packages, in that order, cut into blocks at content-defined
  boundaries; each block's compressed metadata cached by the checksums of its packages.
  Membership order is insertion order, so a new version keeps the blocks of its base and adds
  blocks at the end; a removal changes only the block that held the package. Writing a version's
  metadata compresses only the blocks not seen before and copies the rest.

Both are caches: deleting them costs time, never correctness."""

from __future__ import annotations

import hashlib
import os
import struct
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from iss_plugin.adapters.content_types import CompressedBlock

BLOCK_TARGET = 128  # mean packages per block (content-defined boundary: 1 in BLOCK_TARGET)
BLOCK_MAX = 512
_MAGIC = b"ISSMD1\n"


def set_digest(shas: Sequence[str]) -> str:
    """domain.packages.package_set_digest for checksums already in lowercase hex, hashed in slices
    (the same value: tests/contract/test_local_backend.py checks it)."""
    unique = sorted(set(shas))
    h = hashlib.sha256()
    for i in range(0, len(unique), 1024):  # in slices: the whole text at once is a 7 MiB peak at 20,000
        h.update("".join(s + "\n" for s in unique[i : i + 1024]).encode("ascii"))
    return "sha256:" + h.hexdigest()


def partition(shas: Sequence[str]) -> list[tuple[int, int]]:
    """[start, end) ranges over shas: a block ends after a package whose checksum's last two hex
    digits are 0 modulo BLOCK_TARGET, or at BLOCK_MAX packages."""
    ranges, start = [], 0
    for i, sha in enumerate(shas):
        if int(sha[-2:], 16) % BLOCK_TARGET == 0 or i + 1 - start >= BLOCK_MAX:
            ranges.append((start, i + 1))
            start = i + 1
    if start < len(shas):
        ranges.append((start, len(shas)))
    return ranges


# generated repodata files, content-addressed (<root>/ab/cdef...): derived data like the blocks
REPODATA_CACHE = "index-cache/repodata"


class BlockCache:
    """<root>/ab/<key>: one file per block, written atomically. Derived data: safe to delete."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @staticmethod
    def key(format_version: str, shas: Sequence[str]) -> str:
        return hashlib.sha256(format_version.encode() + b"\n" + "".join(shas).encode("ascii")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / key[2:]

    def get(self, key: str) -> CompressedBlock | None:
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        if not data.startswith(_MAGIC):
            return None
        pos = len(_MAGIC)
        (n,) = struct.unpack_from("<I", data, pos)
        pos += 4
        sizes = struct.unpack_from(f"<{2 * n}Q", data, pos)
        pos += 16 * n
        members, open_sizes = [], []
        for i in range(n):
            length = sizes[2 * i]
            members.append(data[pos : pos + length])
            open_sizes.append(sizes[2 * i + 1])
            pos += length
        if pos != len(data):
            return None  # truncated or foreign: recompute
        return CompressedBlock(tuple(members), tuple(open_sizes))

    def put(self, key: str, block: CompressedBlock) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        n = len(block.members)
        head = _MAGIC + struct.pack("<I", n)
        head += struct.pack(
            f"<{2 * n}Q", *(v for m, o in zip(block.members, block.open_sizes, strict=False) for v in (len(m), o))
        )
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
        with open(tmp, "wb") as f:
            f.write(head)
            for m in block.members:
                f.write(m)
        os.replace(tmp, path)


class SetCache:
    """<root>/ab/<digest hex>: the package checksums of a set, in membership order, one per line.

    Lists this process wrote or verified are also kept in memory (a few, bounded by MEMO_LIMIT
    checksums in all), so a long-running worker does not read and check them again."""

    MEMO_LIMIT = 200_000
    _memo: OrderedDict[tuple[str, str], tuple[str, ...]] = OrderedDict()
    _memo_size = 0
    _memo_lock = threading.Lock()

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, digest: str) -> Path:
        hexpart = digest.split(":", 1)[-1]
        return self.root / hexpart[:2] / hexpart

    def get(self, digest: str, count: int) -> tuple[str, ...] | None:
        """The list filed under digest, if it is there and really has that digest and count."""
        key = (str(self.root), digest)
        with self._memo_lock:
            shas = self._memo.get(key)
            if shas is not None:
                self._memo.move_to_end(key)
                return shas
        try:
            text = self._path(digest).read_text("ascii")
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        shas = tuple(text.split("\n")) if text else ()
        if len(shas) != count or set_digest(shas) != digest:
            return None
        self._remember(key, shas)
        return shas

    def put(self, digest: str, shas: Sequence[str]) -> None:
        path = self._path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
        tmp.write_text("\n".join(shas), "ascii")
        os.replace(tmp, path)
        self._remember((str(self.root), digest), tuple(shas))

    @classmethod
    def forget_memory(cls) -> None:
        with cls._memo_lock:
            cls._memo.clear()
            cls._memo_size = 0

    @classmethod
    def _remember(cls, key: tuple[str, str], shas: tuple[str, ...]) -> None:
        if len(shas) > cls.MEMO_LIMIT:
            return
        with cls._memo_lock:
            old = cls._memo.pop(key, None)
            cls._memo_size -= len(old) if old is not None else 0
            cls._memo[key] = shas
            cls._memo_size += len(shas)
            while cls._memo_size > cls.MEMO_LIMIT:
                _, dropped = cls._memo.popitem(last=False)
                cls._memo_size -= len(dropped)
