"""Copying a file exactly, shared by the local store and the bundle writer."""

from __future__ import annotations

import errno
import os

# a hard link failing with one of these means "this file system or file cannot be linked": copy instead
NO_LINK_ERRNOS = frozenset({errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES})


class WrongSize(Exception):
    """The source does not have the size the caller expects (nothing was created), or it shrank
    while being copied."""

    def __init__(self, src: str, actual: int, expected: int, *, shrank: bool = False) -> None:
        self.src, self.actual, self.expected, self.shrank = src, actual, expected, shrank
        super().__init__(
            f"{src} shrank to {actual} bytes while being copied"
            if shrank
            else f"{src} has {actual} bytes, {expected} expected"
        )


def copy_exact(src: str, target: str, expected_size: int | None = None) -> None:
    """A new file at target (O_EXCL) with src's bytes: sendfile between raw descriptors
    (shutil.copyfile adds two stats for its same-file check and buffering around the same system
    call). Opening src raises OSError with filename=src; a size other than expected_size raises
    WrongSize before target exists."""
    fin = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fin).st_size
        if expected_size is not None and size != expected_size:
            raise WrongSize(src, size, expected_size)
        fout = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            offset = 0
            while offset < size:
                sent = os.sendfile(fout, fin, offset, size - offset)
                if sent == 0:
                    raise WrongSize(src, offset, size, shrank=True)
                offset += sent
        finally:
            os.close(fout)
    finally:
        os.close(fin)
