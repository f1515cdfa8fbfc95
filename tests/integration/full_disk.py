"""A real full disk for tests: a small tmpfs mounted (root only) and filled to the last byte, or
with only `room` bytes left. Removing the FILLER file makes room again."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import IN_CI

FILLER = "filler"


def mount_full_tmpfs(where: Path, room: int = 0) -> Path:
    """A 2 MiB tmpfs at `where` (whatever was there copied in), filled to the last byte: the filler
    file, whose removal makes room again."""
    side = where.with_name(where.name + ".before-mount")
    if where.exists():
        shutil.move(where, side)
    where.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        if IN_CI:
            pytest.fail(f"cannot mount a tmpfs: {done.stderr.decode(errors='replace')}")
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    if side.exists():
        shutil.copytree(side, where, dirs_exist_ok=True, symlinks=True)
        shutil.rmtree(side)
    fd = os.open(where / FILLER, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass  # full
    finally:
        os.close(fd)
    if room:
        os.truncate(where / FILLER, max(0, os.path.getsize(where / FILLER) - room))
    return where


def unmount(where: Path) -> None:
    if os.path.ismount(where):
        subprocess.run(["umount", "-l", str(where)], check=False)
