"""A disk that cannot take what iss writes: an error of this server's own, said in words.

A write into the content store, the publication tree or an import's work directory that fails
because the file system is full, over quota, read-only, failing, not writable by iss, or past the
process's file size limit becomes a BackendError naming the errno's words, the path and what to do.
Importing answers it to the source as `destination_error` instead of retrying and parking it.

Not transient: a full disk, a read-only mount or a failing drive is not fixed within the
consumer's retry delays (seconds); retrying would copy the whole bundle again into the same full
disk and park it at the end, with the source never told. Answered, the source backs off and sends
the bundle again after its grace time, once an operator has had the time to act.

Any other OSError (ENOENT of a path iss itself made, ENOTDIR, EEXIST, EBADF...) is a bug or a race
and stays what it is: it surfaces loudly (retried, then parked with its traceback in the log)."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from iss_plugin.domain.errors import BackendError

_FREE = "free space under {area}"
_WRITABLE = "make {area} writable by the iss user"
WHAT_TO_DO: dict[int, str] = {
    errno.ENOSPC: _FREE + " (or inodes: `df -i`)",
    errno.EDQUOT: _FREE + " or raise the iss user's disk quota there",
    errno.EFBIG: "raise the file size limit of the iss process (`ulimit -f`, systemd LimitFSIZE=) "
    "or give {area} a file system that takes files this large",
    errno.EROFS: "remount the file system holding {area} read-write",
    errno.EACCES: _WRITABLE,
    errno.EPERM: _WRITABLE + " (not immutable: `lsattr`)",
    errno.EIO: "check the disk holding {area} (kernel log, SMART); move the directory to a sound disk",
}


def disk_fault(e: OSError, areas: tuple[Path, ...], doing: str) -> BackendError | None:
    """The BackendError for an OSError of a disk that cannot take the write; None for any other,
    and for one naming only paths outside `areas` (a source the block reads: not this disk's).
    A write() error names no path: it is the first area's."""
    if e.errno not in WHAT_TO_DO:
        return None
    named = [os.fspath(f) for f in (e.filename, e.filename2) if f is not None]
    where, area = next(((p, a) for p in named for a in areas if _under(p, a)), (None, areas[0]))
    if named and where is None:
        return None  # a path outside what the block writes (a file it reads): not this disk's fault
    words = e.strerror or os.strerror(e.errno)
    return BackendError(
        f"{doing} failed: {words} ({errno.errorcode[e.errno]}) at {where or area}; nothing was changed; "
        f"{WHAT_TO_DO[e.errno].format(area=area)}, then try again",
        details={"errno": errno.errorcode[e.errno], "path": where or os.fspath(area), "area": os.fspath(area)},
    )


@contextmanager
def disk_faults(*areas: Path, doing: str) -> Iterator[None]:
    """Within the block, such an OSError is raised as a BackendError; `areas` are the directories
    the block writes under (the first one containing the failing path is the one named to free)."""
    try:
        yield
    except OSError as e:
        fault = disk_fault(e, tuple(Path(a) for a in areas), doing)
        if fault is None:
            raise
        raise fault from e


def _under(path: str, area: Path) -> bool:
    root = os.fspath(area).rstrip("/")
    return path == root or path.startswith(root + "/")
