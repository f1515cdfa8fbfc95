"""Helpers for the bundle adapter tests: a staged export, a signed bundle in any format, hostile
archives crafted with tarfile, and a snapshot of a directory tree to prove nothing changed."""

from __future__ import annotations

import hashlib
import io
import os
import random
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from iss_plugin.adapters.bundles.reader import TrustedKey
from iss_plugin.adapters.bundles.signing import Signer
from iss_plugin.adapters.bundles.writer import BundleOutput, finalize_bundle
from iss_plugin.domain.manifest import (
    PRODUCTS_CSV,
    BundleManifest,
    ContentViewRef,
    FileEntry,
    ProductEntry,
    RepositoryEntry,
    VersionRef,
)
from iss_plugin.domain.packages import package_set_digest

ORG = "ACME"
RH = ProductEntry("rhel-9", "Red Hat Enterprise Linux 9", True, "479")
CUSTOM = ProductEntry("tools", "Tools", False, None)


@dataclass
class Staged:
    staging: Path
    manifest: BundleManifest
    known: list[FileEntry]
    contents: dict[str, bytes]  # every file the bundle should hold, by path


def stage(
    out_dir: Path,
    *,
    packages: int = 6,
    seed: int = 1,
    bundle_id: str = "0b5e1c2d-0000-4000-8000-000000000001",
    package_size: int = 3000,
) -> Staged:
    """What the export service leaves in out_dir/.tmp-<id>: two yum trees and products.csv."""
    rnd = random.Random(seed)
    staging = out_dir / f".tmp-{bundle_id}"
    contents: dict[str, bytes] = {}
    known: list[FileEntry] = []
    repos = []
    for product, repo in ((RH, "baseos"), (CUSTOM, "utils")):
        rel = f"repos/{product.label}/{repo}"
        shas = []
        for i in range(packages):
            name = f"{repo}-pkg{i}-1.0-1.noarch.rpm"
            data = rnd.randbytes(package_size + i)
            path = f"{rel}/Packages/{name[0]}/{name}"
            contents[path] = data
            sha = hashlib.sha256(data).hexdigest()
            shas.append(sha)
            known.append(FileEntry(path, sha, len(data)))
        for meta in ("repomd.xml", "primary.xml.gz"):
            data = (f"<{meta} repo='{repo}'/>" * 50).encode()
            contents[f"{rel}/repodata/{meta}"] = data
            known.append(FileEntry(f"{rel}/repodata/{meta}", hashlib.sha256(data).hexdigest(), len(data)))
        repos.append(
            RepositoryEntry(
                repo,
                repo.title(),
                product.label,
                rel,
                "yum",
                VersionRef(1, packages, package_set_digest(shas)),
                None,
                packages,
            )
        )
    contents[PRODUCTS_CSV] = b"product_label,repository_label\nrhel-9,baseos\ntools,utils\n"
    for path, data in contents.items():
        target = staging / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    manifest = BundleManifest(
        bundle_id=bundle_id,
        source_server="source-1",
        source_key_fingerprint="",
        created="2024-05-02T10:15:30Z",
        organization=ORG,
        scope="content_view_version",
        kind="full",
        content_view=ContentViewRef("base", "Base", "1.0"),
        base_content_view_version=None,
        products=(RH, CUSTOM),
        repositories=tuple(repos),
        files=(),
    )
    return Staged(staging, manifest, known, contents)


def build(
    out_dir: Path, signer: Signer, fmt: str = "tgz", chunk_size: int | None = None, name: str = "bundle", **stage_args
) -> tuple[BundleOutput, dict[str, bytes]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    s = stage(out_dir, **stage_args)
    out = finalize_bundle(
        s.staging, s.manifest, signer, s.known, out_dir=out_dir, name=name, fmt=fmt, chunk_size=chunk_size
    )
    return out, s.contents


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under root (links not followed): mode, size, mtime, content hash for files.

    The top-level `work` directory is where the reader may make (and must remove) its temporary
    directory, so its own mtime is not compared; everything inside it is."""
    result = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            rel = str(p.relative_to(root))
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() and not p.is_symlink() else None
            mtime = None if rel == "work" else st.st_mtime_ns
            result[rel] = (st.st_mode, st.st_size, mtime, digest)
    return result


def tar_member(
    name: str, kind: bytes = tarfile.REGTYPE, data: bytes | None = b"x", linkname: str = "", **attrs
) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = len(data) if (data is not None and kind == tarfile.REGTYPE) else 0
    for k, v in attrs.items():
        setattr(info, k, v)
    return info, (data if kind == tarfile.REGTYPE else None)


def rewrite_tar(src: Path, dst: Path, *, extra=(), drop=(), edit=None, first=()) -> Path:
    """Copy a bundle's tar.gz member by member, adding/dropping/editing members (a hostile producer)."""
    with tarfile.open(src, "r:gz") as tin, tarfile.open(dst, "w:gz") as tout:
        for info, data in first:
            tout.addfile(info, io.BytesIO(data) if data is not None else None)
        for m in tin.getmembers():
            if m.name in drop:
                continue
            data = tin.extractfile(m).read() if m.isfile() else None
            if edit and m.isfile():
                data = edit(m.name, data)
                m.size = len(data)
            tout.addfile(m, io.BytesIO(data) if data is not None else None)
        for info, data in extra:
            tout.addfile(info, io.BytesIO(data) if data is not None else None)
    return dst


@pytest.fixture
def signer() -> Signer:
    return Signer.generate()


@pytest.fixture
def trusted(signer) -> list[TrustedKey]:
    return [TrustedKey("source", signer.public_pem, signer.fingerprint, (ORG,))]


@pytest.fixture
def sandbox(tmp_path) -> Path:
    """tmp_path with an empty work dir; tests snapshot all of tmp_path to prove nothing escaped."""
    (tmp_path / "work").mkdir()
    return tmp_path
