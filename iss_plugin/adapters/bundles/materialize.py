"""Placing the files a directory bundle was given by reference (a content store's own files) into
its staged tree: hard links where the file system allows, else copies on a few threads.

    with Materializer(staging, sources, sizes, link=True) as placing:
        ...                     # other work (sealing the manifest) while the files are placed
        placing.wait()          # raises the first failure (IssError naming the file)

Leaving the block without `wait()` (an exception) stops the copies and waits for the threads, so
the caller can remove the staging tree. Copies run on up to COPY_THREADS threads, each a
contiguous slice of the files: the kernel does the work of sendfile and open with the GIL
released, and two threads creating files in one tmpfs directory measured 1.5x faster than one
(5,000 x 22 KB: 0.11 s vs 0.165 s; one future per file instead was slower than one thread).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from iss_plugin.adapters.files import NO_LINK_ERRNOS, WrongSize, copy_exact
from iss_plugin.domain.errors import IssError

from .stream import unreadable

COPY_THREADS = min(4, os.cpu_count() or 1)
MIN_PER_THREAD = 256  # fewer files than this per thread: not worth a thread


class Materializer:
    """Links (else copies) `sources` ({bundle path: file}) into `staging`, each checked against
    `sizes` ({bundle path: bytes}). Starts on entering the block."""

    def __init__(
        self,
        staging: Path,
        sources: Mapping[str, str],
        sizes: Mapping[str, int],
        *,
        link: bool,
        threads: int = COPY_THREADS,
    ) -> None:
        self._root = os.fspath(staging) + "/"
        self._sources, self._sizes, self._link, self._threads = sources, sizes, link, threads
        self._stop = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._futures: list[Future[None]] = []

    def __enter__(self) -> Materializer:
        jobs = self._make_parents()
        if self._link:
            jobs = self._link_all(jobs)
        self._start_copies(jobs)
        return self

    def wait(self) -> None:
        try:
            for f in self._futures:
                f.result()
        finally:
            self._shutdown()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._shutdown()

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _make_parents(self) -> list[tuple[str, str, str]]:
        """(bundle path, source, target) in order, with every target's directory made."""
        jobs, made = [], set()
        for path, source in self._sources.items():
            target = self._root + path
            parent = target.rpartition("/")[0]
            if parent not in made:
                os.makedirs(parent, exist_ok=True)
                made.add(parent)
            jobs.append((path, source, target))
        return jobs

    def _link_all(self, jobs: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
        """Hard-link while the file system allows; what is left is to be copied."""
        for i, (path, source, target) in enumerate(jobs):
            if not _link(source, target, path):
                return jobs[i:]
            _check_size(path, source, os.stat(target).st_size, self._sizes[path])
        return []

    def _start_copies(self, jobs: list[tuple[str, str, str]]) -> None:
        if not jobs:
            return
        threads = max(1, min(self._threads, len(jobs) // MIN_PER_THREAD))
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="iss-copy")
        step = -(-len(jobs) // threads)
        self._futures = [self._pool.submit(self._copy_slice, jobs[i : i + step]) for i in range(0, len(jobs), step)]

    def _copy_slice(self, jobs: list[tuple[str, str, str]]) -> None:
        try:
            for path, source, target in jobs:
                if self._stop.is_set():
                    return
                _copy(source, target, path, self._sizes[path])
        except BaseException:
            self._stop.set()  # the other threads stop at their next file
            raise


def _link(source: str, target: str, path: str) -> bool:
    """Hard-link source at target; False if this file system cannot (nothing made)."""
    try:
        os.link(source, target)
        return True
    except OSError as e:
        if e.errno in NO_LINK_ERRNOS:
            return False
        raise unreadable(path, source, e) from None


def _copy(source: str, target: str, path: str, size: int) -> None:
    """A new file at target with the `size` bytes of source."""
    try:
        copy_exact(source, target, expected_size=size)
    except WrongSize as e:
        if e.shrank:
            raise IssError(f"{path}: {source} shrank while it was being copied") from None
        _check_size(path, source, e.actual, size)
    except OSError as e:
        if e.filename == source:
            raise unreadable(path, source, e) from None
        raise


def _check_size(path: str, source: str, actual: int, listed: int) -> None:
    if actual != listed:
        raise IssError(f"{path}: {source} has {actual} bytes, {listed} listed")
