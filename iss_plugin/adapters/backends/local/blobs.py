"""The local store's content-addressed files: <root>/sha256/ab/cdef... (the first two hex digits are
a directory, the rest the file name).

Files enter through a temporary file in <root>/tmp (same filesystem) and os.replace, so a blob
path either does not exist or holds the whole, verified file. Blobs are made read-only because
exports and publications hardlink them."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from iss_plugin.adapters.files import NO_LINK_ERRNOS, WrongSize, copy_exact
from iss_plugin.domain.errors import BackendError

BUFSIZE = 1 << 20


_SHA256 = re.compile(r"[0-9a-f]{64}")


def is_sha256(s: str) -> bool:
    return _SHA256.fullmatch(s) is not None


class BlobStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.blobs = self.root / "sha256"
        self.tmp = self.root / "tmp"

    def path(self, sha256: str) -> Path:
        if not is_sha256(sha256):
            raise BackendError(f"'{sha256}' is not a lowercase hex sha256 checksum")
        return self.blobs / sha256[:2] / sha256[2:]

    def file_of(self, sha256: str) -> str:
        """path() as a string, for a checksum the caller has already checked (thousands at a time)."""
        return f"{os.fspath(self.blobs)}/{sha256[:2]}/{sha256[2:]}"

    def has(self, sha256: str, size: int | None = None) -> bool:
        try:
            st = self.path(sha256).stat()
        except FileNotFoundError:
            return False
        return size is None or st.st_size == size

    def new_tmp_path(self, hint: str = "blob") -> Path:
        self.tmp.mkdir(parents=True, exist_ok=True)
        return self.tmp / f"{hint}.{os.getpid()}.{time.monotonic_ns()}.{os.urandom(4).hex()}"

    # --- putting files in ----------------------------------------------------------------------
    def adopt(self, tmp: Path, sha256: str) -> None:
        """Move a verified temporary file (in self.tmp) to its blob path."""
        target = self.path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)

    def put_copy(self, src: Path, sha256: str) -> None:
        """Copy src into the store, checking while copying that it still has the sha256 expected."""
        tmp = self.new_tmp_path()
        h = hashlib.sha256()
        try:
            with open(src, "rb") as fin, open(tmp, "wb") as fout:
                # blocks no larger than the file (plus one byte, to see it grew): read(BUFSIZE)
                # allocates 1 MiB for each small package
                block = min(BUFSIZE, os.fstat(fin.fileno()).st_size + 1)
                while chunk := fin.read(block):
                    h.update(chunk)
                    fout.write(chunk)
            if h.hexdigest() != sha256:
                raise BackendError(
                    f"{src} changed while it was being stored: its sha256 is now {h.hexdigest()}, "
                    f"it was {sha256} when its header was read; nothing was stored from it"
                )
            self.adopt(tmp, sha256)
        finally:
            tmp.unlink(missing_ok=True)

    def put_move(self, src: Path, sha256: str) -> None:
        """Move src (a file the caller owns and gives up) into the store; copy across filesystems."""
        tmp = self.new_tmp_path()
        try:
            os.rename(src, tmp)
        except OSError as e:
            if e.errno not in NO_LINK_ERRNOS:
                raise
            self.put_copy(src, sha256)
            return
        try:
            self.adopt(tmp, sha256)
        finally:
            tmp.unlink(missing_ok=True)

    def remove(self, sha256: str) -> bool:
        try:
            self.path(sha256).unlink()
            return True
        except FileNotFoundError:
            return False

    def iter_blobs(self) -> Iterator[tuple[str, Path]]:
        if not self.blobs.is_dir():
            return
        for d in sorted(self.blobs.iterdir()):
            if len(d.name) != 2 or not d.is_dir():
                continue
            for f in d.iterdir():
                sha = d.name + f.name
                if is_sha256(sha):
                    yield sha, f

    def remove_stale_tmp(self, min_age_seconds: float) -> int:
        """Remove what a crashed process left in <store>/tmp and <store>/incoming (streams extracted
        in the store): files, and directories nothing under which was written for min_age_seconds."""
        now, n = time.time(), 0
        for area in (self.tmp, self.root / "incoming"):
            if not area.is_dir():
                continue
            for f in area.iterdir():
                try:
                    if now - _newest_mtime(f) < min_age_seconds:
                        continue
                    if f.is_dir() and not f.is_symlink():
                        shutil.rmtree(f)
                    else:
                        f.unlink()
                    n += 1
                except FileNotFoundError:
                    pass
        return n


def _newest_mtime(path: Path) -> float:
    """A directory's age is its newest entry's: a stream still being extracted writes deep in it."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for name in (*dirs, *files):
                with contextlib.suppress(FileNotFoundError):
                    newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
    return newest


class Placer:
    """Places store files into a tree: hardlinks while the filesystem allows, else copies.

    Works on str paths: at thousands of files, pathlib objects cost more than the links."""

    def __init__(self, store: BlobStore, hardlink: bool = True):
        self.store = store
        self.hardlink = hardlink
        self.linked = 0
        self.copied = 0
        self._dirs: set[str] = set()

    def place(self, sha256: str, target: Path) -> None:
        if not is_sha256(sha256):
            raise BackendError(f"'{sha256}' is not a lowercase hex sha256 checksum")
        self._place(self.store.file_of(sha256), os.fspath(target))

    def place_many(
        self, dest: Path, items: Iterable[tuple[str, str, int]], problems: list[str]
    ) -> list[tuple[str, str, int]]:
        """Place (sha256, path relative to dest, size) items; returns those placed. A store file that
        is missing or has another size is reported in `problems` (one stat per link, no hashing;
        a copy checks the size of what it opened)."""
        root = os.fspath(dest)
        placed = []
        for sha, rel, size in items:
            if not is_sha256(sha):
                problems.append(f"{rel}: '{sha}' is not a lowercase hex sha256 checksum")
                continue
            src = self.store.file_of(sha)
            if not self._place_checked(src, f"{root}/{rel}", size):
                problems.append(f"{rel} ({sha}): the store file {src} is missing or damaged")
                continue
            placed.append((sha, rel, size))
        return placed

    def _place_checked(self, src: str, target: str, size: int) -> bool:
        """Place src at target if it has `size` bytes; False (nothing placed) if it is missing or has not."""
        if self.hardlink:
            try:
                if os.stat(src).st_size != size:
                    return False
            except FileNotFoundError:
                return False
            self._place(src, target)
            return True
        self._make_parent(target)
        try:
            copy_exact(src, target, expected_size=size)
        except (FileNotFoundError, WrongSize):
            return False
        self.copied += 1
        return True

    def _make_parent(self, target: str) -> None:
        parent = os.path.dirname(target)
        if parent not in self._dirs:
            os.makedirs(parent, exist_ok=True)
            self._dirs.add(parent)

    def _place(self, src: str, target: str) -> None:
        self._make_parent(target)
        if self.hardlink:
            try:
                os.link(src, target)
                self.linked += 1
                return
            except OSError as e:
                if e.errno not in NO_LINK_ERRNOS:
                    raise
                self.hardlink = False  # another filesystem: stop trying
        try:
            copy_exact(src, target)
        except WrongSize as e:
            raise BackendError(str(e)) from None
        self.copied += 1
