"""Local files and yum trees the Pulp backend hands to Pulp: a file's sha256, staging under the
shared import directory, and a yum repository written around RPM files (one sync task instead of
one upload request per package): in this process (the bulk upload path), or by the createrepo_c
command in a process of its own (a streamed pull, whose memory is bounded: createrepo_c's librpm
costs a process ~22 MiB that stay mapped, the command ~19-31 MiB for a moment per batch)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import IO

from iss_plugin.domain.errors import BackendError
from iss_plugin.domain.packages import standard_location


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def link_or_copy_tree(src: Path, dst: Path) -> None:
    """dst (new) gets src's regular files as hardlinks, or copies across filesystems."""
    dst.mkdir(parents=True, exist_ok=True)
    for dirpath, _dirnames, filenames in os.walk(src):
        d = Path(dirpath)
        target_dir = dst / d.relative_to(src)
        target_dir.mkdir(parents=True, exist_ok=True)
        for name in filenames:
            link_or_copy(d / name, target_dir / name)
    os.chmod(dst, 0o755)


def write_repo_around(root: Path, files: Sequence[Path]) -> list[str]:
    """Make root a yum repository of `files` (hardlinked under Packages/<x>/, with repodata/).

    Returns the problems (a file that is not a readable RPM, two files at one location); the
    repository is written only when there are none."""
    import createrepo_c as cr

    from iss_plugin.adapters.content_types.yum import write_repodata

    problems: list[str] = []
    pkgs = []
    seen: dict[str, Path] = {}
    for f in files:
        href = standard_location(f.name)
        if href in seen:
            problems.append(f"{f.name}: two files of this name in one upload ({seen[href]} and {f})")
            continue
        seen[href] = f
        target = root / href
        link_or_copy(f, target)
        try:
            pkgs.append(cr.package_from_rpm(str(target), cr.SHA256, href, None, 10))
        except Exception as e:
            problems.append(f"{f.name}: not a readable RPM package ({e})")
    if problems:
        return problems
    write_repodata(root / "repodata", pkgs)
    return []


@cache
def createrepo_c_command() -> str | None:
    """The createrepo_c command: the one beside this Python (pip's createrepo_c installs it there),
    else the machine's; None when there is none."""
    return shutil.which(
        "createrepo_c", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    )


CREATEREPO_TIMEOUT = 600.0  # seconds for one batch's tree (a batch of 100 packages takes ~0.1-3 s)
STDERR_TAIL = 1000  # characters of the command's stderr a message quotes


class CommandNotStarted(BackendError):
    """The createrepo_c command could not be started (gone since it was found, not executable, not
    a program): nothing was written."""


def write_repo_around_in_child(
    root: Path, files: Sequence[Path], command: str, *, what: str = "", timeout: float = CREATEREPO_TIMEOUT
) -> list[str]:
    """As write_repo_around, with the createrepo_c command doing the reading and writing (the same
    options: sha256, gzip, 10 changelog entries) in the new directory `root`.

    A file createrepo_c names on stderr as one it cannot take, or leaves out, is a problem of that
    file (createrepo_c 0.x exits 0 on a file that is not an RPM and leaves it out; 1.x exits 2).
    A command that fails as a whole raises BackendError (CommandNotStarted when it cannot start;
    past `timeout` seconds it is stopped; a non-zero exit naming no file), saying what, where
    (`what`: e.g. the batch's repository) and what to do; root is then removed."""
    from iss_plugin.adapters.content_types.yum import read_tree_packages

    problems: list[str] = []
    placed: dict[str, Path] = {}
    try:
        for f in files:
            href = standard_location(f.name)
            if href in placed:
                problems.append(f"{f.name}: two files of this name in one upload ({placed[href]} and {f})")
                continue
            placed[href] = f
            link_or_copy(f, root / href)
        if problems:
            return problems
        batch = f"{what or 'a batch'} ({_named(files)})"
        returncode, stderr = _run_createrepo_c(root, command, batch, timeout)
        refused = {href: f for href, f in placed.items() if _said_of(f.name, stderr)}
        if returncode != 0 and not refused:
            how = f"was killed by signal {-returncode}" if returncode < 0 else f"failed (exit {returncode})"
            raise BackendError(
                f"the createrepo_c command {command} {how} writing the yum tree of {batch} under "
                f"{root.parent}; nothing of this batch went into Pulp. stderr: {stderr[-STDERR_TAIL:] or '(empty)'}. "
                f"Check that `{command} --version` runs and that there is room under {root.parent}, then pull again",
                details={"command": command, "tree": str(root), "files": len(files), "exit_code": returncode},
            )
        if returncode == 0:
            listed = {u.href for u in read_tree_packages(root)}
            refused |= {href: f for href, f in placed.items() if href not in listed}
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return [
        f"{f.name}: createrepo_c could not take it as an RPM package, although its sha256 is the one the "
        f"signed manifest lists (the source holds it this way: check it there with `rpm -K`): "
        f"{_said_of(f.name, stderr) or stderr[-300:] or 'it left the file out and said nothing'}"
        for f in refused.values()
    ]


def _run_createrepo_c(root: Path, command: str, batch: str, timeout: float) -> tuple[int, str]:
    """Run the command on root: its exit code and stderr (the last 64 KiB: kept in a file, so a
    chatty command costs no memory), or BackendError when it cannot start or runs too long."""
    options = ["--workers", "1", "--checksum", "sha256", "--general-compress-type", "gz"]
    argv = [command, *options, "--no-database", "--changelog-limit", "10", str(root)]
    details: dict[str, object] = {"command": command, "tree": str(root)}
    with tempfile.TemporaryFile() as err:
        try:  # without --quiet: its warnings name each file it cannot read; progress goes to stdout
            run = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, timeout=timeout)
        except OSError as e:
            raise CommandNotStarted(
                f"cannot start the createrepo_c command {command} to write the yum tree of {batch} "
                f"under {root.parent}: {e}; nothing of this batch went into Pulp. Install createrepo_c "
                "(`dnf install createrepo_c`, `apt install createrepo-c`, or `pip install createrepo_c` "
                f"into iss's environment) or make {command} executable, then pull again",
                details=details | {"cause": str(e)},
            ) from None
        except subprocess.TimeoutExpired:  # run() killed it and waited for it
            raise BackendError(
                f"the createrepo_c command {command} did not finish the yum tree of {batch} under "
                f"{root.parent} within {timeout:g} s and was stopped; nothing of this batch went into "
                f"Pulp. stderr: {_tail(err) or '(empty)'}. Check the load and the disk under "
                f"{root.parent} and that the package files can be read, then pull again",
                details=details | {"timeout_seconds": timeout},
            ) from None
        return run.returncode, _tail(err, 64 << 10)


def _tail(f: IO[bytes], size: int = STDERR_TAIL) -> str:
    f.seek(0, os.SEEK_END)
    f.seek(max(0, f.tell() - size))
    return f.read().decode(errors="replace").strip()


def _named(files: Sequence[Path]) -> str:
    if not files:
        return "no package files"
    if len(files) == 1:
        return f"1 package file: {files[0].name}"
    return f"{len(files)} package files: {files[0].name} ... {files[-1].name}"


def _said_of(name: str, stderr: str) -> str:
    """What createrepo_c's stderr says of one file (its lines name the file's path)."""
    said = [line.split("Warning: ", 1)[-1].strip() for line in stderr.splitlines() if f"/{name}" in line]
    return "; ".join(said)[-300:]


def repomd_types(tree: Path) -> set[str]:
    """The metadata types a tree's repomd.xml lists (primary, filelists, other, updateinfo, ...)."""
    from iss_plugin.adapters.content_types.repomd import parse_repomd

    return set(parse_repomd((tree / "repodata" / "repomd.xml").read_bytes()))
