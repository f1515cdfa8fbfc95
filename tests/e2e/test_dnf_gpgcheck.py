"""A real client proves the signatures: Debian's dnf with gpgcheck=1 and the product's key installs
a signed package from the destination's published repository (into a throwaway --installroot, no
network), and refuses the same package tampered on a mirror of that repository.

dnf is installed by scripts/install-test-deps.sh; under CI a missing dnf fails, outside it skips."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from iss_plugin.adapters.fixtures import build_rpm, build_rpms, make_signing_key, sign_rpms, write_yum_repo

from .conftest import CUSTOM, make_destination


def dnf_binary() -> str:
    found = shutil.which("dnf")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("dnf is not installed: run scripts/install-test-deps.sh (CI must not skip this test)")
    pytest.skip("dnf is not installed (scripts/install-test-deps.sh installs it)")


def dnf_install(repo: Path, key: Path, work: Path, name: str) -> subprocess.CompletedProcess[str]:
    """dnf install NAME with gpgcheck=1 and only this repository and key, into work/root."""
    for d in ("cache", "persist", "log", "repos.d", "root"):
        (work / d).mkdir(parents=True, exist_ok=True)
    cmd = [
        dnf_binary(),
        "-y",
        "--releasever=1",
        f"--repofrompath=iss,{repo.resolve().as_uri()}",
        "--repo=iss",
        "--setopt=iss.gpgcheck=1",
        f"--setopt=iss.gpgkey={key.resolve().as_uri()}",
        f"--installroot={work / 'root'}",
        f"--setopt=cachedir={work / 'cache'}",
        f"--setopt=persistdir={work / 'persist'}",
        f"--setopt=logdir={work / 'log'}",
        f"--setopt=reposdir={work / 'repos.d'}",
        "--setopt=metadata_expire=0",
        "install",
        name,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def test_dnf_gpgcheck_installs_signed_and_refuses_tampered(source, tmp_path):
    dnf_binary()
    key = make_signing_key("iss tools <tools@example.invalid>")
    key_path = tmp_path / "RPM-GPG-KEY-tools"
    key_path.write_text(key.public)
    packages = build_rpms(tmp_path / "rpms", 2, prefix="gpgpkg")
    sign_rpms(packages, key)
    source.run("product", "set-gpg-key", "--organization", "ACME", "--product", CUSTOM, "--key-file", str(key_path))
    source.run("repository", "create", "--organization", "ACME", "--product", CUSTOM, "--name", "utils")
    source.run("repository", "upload", "--organization", "ACME", "--repository", f"{CUSTOM}/utils", *map(str, packages))
    bundle = source.json(
        "content-export", "complete", "repository", "--organization", "ACME", "--product", CUSTOM,
        "--repository", "utils", "--format", "tgz",
    )["path"]  # fmt: skip
    dest = make_destination(tmp_path, source)
    dest.run("content-import", "repository", "--organization", "ACME", "--path", bundle)
    published = Path(
        dest.json("repository", "info", "--organization", "ACME", "--repository", f"{CUSTOM}/utils")["published_at"]
    )

    ok = dnf_install(published, key_path, tmp_path / "client", "gpgpkg0000")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert (tmp_path / "client" / "root" / "usr/share/gpgpkg0000/data.bin").is_file()

    # a mirror of the published repository where gpgpkg0001 was altered after signing (and the
    # repodata regenerated to match it, so only the signature can catch it)
    mirror = tmp_path / "mirror"
    shutil.copytree(published, mirror, symlinks=False)
    [victim] = mirror.rglob("gpgpkg0001-*.rpm")
    data = bytearray(victim.read_bytes())
    data[data.find(b"iss test package")] ^= 0x20
    victim.write_bytes(bytes(data))
    build_rpm(mirror / "Packages", "unsigned")  # and a package nobody signed
    write_yum_repo(mirror, sorted(mirror.rglob("*.rpm")))
    bad = dnf_install(mirror, key_path, tmp_path / "client2", "gpgpkg0001")
    assert bad.returncode != 0, bad.stdout + bad.stderr
    assert "GPG check FAILED" in bad.stdout + bad.stderr, bad.stdout + bad.stderr
    assert not (tmp_path / "client2" / "root" / "usr/share/gpgpkg0001").exists()

    unsigned = dnf_install(mirror, key_path, tmp_path / "client2", "unsigned")
    assert unsigned.returncode != 0 and "is not signed" in unsigned.stdout + unsigned.stderr, unsigned.stderr
    assert not (tmp_path / "client2" / "root" / "usr/share/unsigned").exists()

    # the untouched package from the same mirror still installs: the refusal was the signature's
    good = dnf_install(mirror, key_path, tmp_path / "client2", "gpgpkg0000")
    assert good.returncode == 0, good.stdout + good.stderr
