"""A real yum client (Debian's dnf) reads a repository the local backend published.

dnf is installed by scripts/install-test-deps.sh. Under CI a missing dnf fails the test; outside CI
it skips."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from iss_plugin.adapters.backends.local import LocalBackend
from iss_plugin.adapters.db.engine import make_engine, make_session_factory
from iss_plugin.adapters.db.migrate import upgrade
from iss_plugin.adapters.fixtures import build_rpms, file_sha256

REPO = "ACME/tools/utils"


def dnf_binary() -> str:
    found = shutil.which("dnf")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("dnf is not installed: run scripts/install-test-deps.sh (CI must not skip this test)")
    pytest.skip("dnf is not installed (scripts/install-test-deps.sh installs it)")


class Dnf:
    def __init__(self, binary: str, repo_path: str, work: Path):
        self.binary = binary
        self.repo_path = repo_path
        self.work = work
        for d in ("cache", "persist", "log", "repos.d", "root"):
            (work / d).mkdir(parents=True, exist_ok=True)

    def run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [
            self.binary,
            "-q",
            "-y",
            "--releasever=1",
            "--nogpgcheck",
            f"--repofrompath=iss,{Path(self.repo_path).resolve().as_uri()}",
            "--repo=iss",
            f"--setopt=cachedir={self.work / 'cache'}",
            f"--setopt=persistdir={self.work / 'persist'}",
            f"--setopt=logdir={self.work / 'log'}",
            f"--setopt=reposdir={self.work / 'repos.d'}",
            "--setopt=metadata_expire=0",
            *args,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{' '.join(cmd)}\nexit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def available(self) -> set[str]:
        out = self.run("list", "--available").stdout
        return {line.split()[0].rsplit(".", 1)[0] for line in out.splitlines()[1:] if line.strip()}

    def has_download_command(self) -> bool:
        proc = subprocess.run([self.binary, "download", "--help"], capture_output=True, text=True, timeout=60)
        return proc.returncode == 0

    def download(self, name: str, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        if self.has_download_command():  # dnf-plugins-core
            self.run("download", "--destdir", str(dest), name)
        else:
            self.run(f"--installroot={self.work / 'root'}", "install", "--downloadonly", f"--downloaddir={dest}", name)


@pytest.fixture
def backend(tmp_path):
    url = f"sqlite:///{tmp_path / 'iss.db'}"
    upgrade(url)
    engine = make_engine(url)
    session = make_session_factory(engine)()
    try:
        yield LocalBackend(session, tmp_path / "store", tmp_path / "published")
        session.commit()
    finally:
        session.close()
        engine.dispose()


def test_dnf_lists_and_downloads_a_published_repository(backend, tmp_path):
    binary = dnf_binary()
    backend.ensure_repository(REPO)
    first = build_rpms(tmp_path / "rpms", 5, prefix="dnfpkg")
    backend.add_packages(REPO, first)
    path = backend.publish(REPO, 1)

    dnf = Dnf(binary, path, tmp_path / "dnf")
    assert dnf.available() == {f"dnfpkg{i:04d}" for i in range(5)}
    dnf.download("dnfpkg0002", tmp_path / "downloads")
    [got] = list((tmp_path / "downloads").glob("*.rpm"))
    assert got.name == "dnfpkg0002-1.0-1.noarch.rpm"
    assert file_sha256(got) == file_sha256(first[2])

    # a new version published over the old one: the client sees the new package set
    more = build_rpms(tmp_path / "rpms2", 2, prefix="dnfpkg", start=5)
    backend.add_packages(REPO, more)
    backend.remove_packages(REPO, [file_sha256(first[0])])
    assert backend.publish(REPO, 3) == path
    assert dnf.available() == {f"dnfpkg{i:04d}" for i in range(1, 7)}
