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
from collections.abc import Sequence
from functools import cache
from pathlib import Path

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


def write_repo_around_in_child(root: Path, files: Sequence[Path], command: str) -> list[str]:
    """As write_repo_around, with the createrepo_c command doing the reading and writing (the same
    options: sha256, gzip, 10 changelog entries). A file it left out is named as not readable."""
    from iss_plugin.adapters.content_types.yum import read_tree_packages

    problems: list[str] = []
    placed: dict[str, Path] = {}
    for f in files:
        href = standard_location(f.name)
        if href in placed:
            problems.append(f"{f.name}: two files of this name in one upload ({placed[href]} and {f})")
            continue
        placed[href] = f
        link_or_copy(f, root / href)
    if problems:
        return problems
    options = ["--quiet", "--workers", "1", "--checksum", "sha256", "--general-compress-type", "gz"]
    run = subprocess.run(
        [command, *options, "--no-database", "--changelog-limit", "10", str(root)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if run.returncode != 0:
        return [f"createrepo_c failed (exit {run.returncode}) on {len(files)} package files: {run.stderr[-1000:]}"]
    listed = {u.href for u in read_tree_packages(root)}
    return [
        f"{f.name}: not a readable RPM package (createrepo_c left it out: {run.stderr[-300:]})"
        for href, f in placed.items()
        if href not in listed
    ]


def repomd_types(tree: Path) -> set[str]:
    """The metadata types a tree's repomd.xml lists (primary, filelists, other, updateinfo, ...)."""
    from iss_plugin.adapters.content_types.repomd import parse_repomd

    return set(parse_repomd((tree / "repodata" / "repomd.xml").read_bytes()))
