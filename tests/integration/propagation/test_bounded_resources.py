"""Issue 12, point 5 (bounded resources), at a size CI affords: a source serving its stream from its
own process (uvicorn) and `iss content-import sync` pulling it in another, each measured.

Two pulls of full versions, 1.0 (SMALL packages) and 2.0 (LARGE), give each side's peak RSS and
its growth per package. The issue's bound is 150 MB at 20,000 packages; what this branch reached
(docs/operations.md, Benchmarks) is pinned here with a little room, so that a regression (a list of
every package held twice, an eager import, a future per file) fails: the peak at LARGE packages and
the growth per package of each side. Meanwhile no file larger than the largest package appears
outside the content store on either side (their staging, imports and exports: the destination
extracts the stream in its store) nor in either process's temporary directory."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from consumers.demo import CUSTOM_PRODUCT, ORG, make_server, prepare_destination
from iss_plugin.adapters.fixtures import build_rpms
from iss_plugin.services import catalog, content_views, subscriptions
from tests.conftest import closed_port

ACTOR = "test"
SMALL, LARGE = 300, 2400
TARGET_PACKAGES = 20_000  # the size (the projection is printed, for information)
# peak RSS (MiB) at LARGE packages and growth (KiB per package between SMALL and LARGE: noisy at
# this size, arenas come in MiB) measured on the project's machine: pull 112 MiB, serve 113 MiB
# at 2,400 (before: 113 and 127, the source loading createrepo_c to write repomd.xml), then serve
# 106 MiB (the push and sync modules imported when used, the manifest sealed without a dict or a
# string per file) and pull ~108-110 MiB (the manifest's files parsed as FileEntry values, not
# dicts, and dropped by the import once the files are checked), with room for noise
# RSS counts the shared libraries' pages mapped in, and that varies with the install: createrepo_c's
# libraries (one wheel) showed 13 MiB in one venv and 22 MiB in a fresh one on the same machine, so
# the bound leaves room for that; the growth per package is the finer guard.
PEAK_MIB = {"pull": 126.0, "serve": 118.0}
KIB_PER_PACKAGE = 5.0

SERVE = (
    "import sys, uvicorn; from iss_plugin.bootstrap import App; from iss_plugin.settings import load_settings;"
    "from iss_plugin.web.app import create_app;"
    "uvicorn.run(create_app(App(load_settings(None, data_dir=sys.argv[1], server_id='source'))),"
    " host='127.0.0.1', port=int(sys.argv[2]), log_level='warning')"
)
# A fresh interpreter starts the pull and reports its peak RSS: a child forked from pytest would
# inherit pytest's high-water mark.
LAUNCHER = (
    "import os, resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]);"
    " os.write(2, b'\\nMAXRSS_KIB=%d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)"
)
ISS = [sys.executable, "-c", "from iss_plugin.cli import main; main()"]


class LargestFile:
    """Polls directories (recursively) and keeps the largest regular file seen in them."""

    def __init__(self, roots: list[Path]) -> None:
        self.roots, self.size, self.path = roots, 0, ""
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LargestFile:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def _run(self) -> None:
        while not self.stop.is_set():
            for root in self.roots:
                for dirpath, _dirs, files in os.walk(root):
                    for name in files:
                        try:
                            size = os.lstat(os.path.join(dirpath, name)).st_size
                        except FileNotFoundError:
                            continue
                        if size > self.size:
                            self.size, self.path = size, os.path.join(dirpath, name)
            time.sleep(0.005)


def vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


def pull_peak_mib(config: Path, url: str, version: str, env: dict[str, str]) -> float:
    args = ["--config", str(config), "content-import", "sync", "--from", url, "--organization", ORG]
    proc = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *ISS, *args, "--content-view", "base", "--version", version],
        capture_output=True,
        env=env,
        timeout=300,
    )
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, proc.stdout.decode(errors="replace")[-2000:] + err[-2000:]
    return int(err.rsplit("MAXRSS_KIB=", 1)[1].split()[0]) / 1024


def projected(small: float, large: float) -> tuple[float, float]:
    """(MiB per package, MiB at TARGET_PACKAGES) from the peaks at SMALL and LARGE packages."""
    per_package = max(0.0, (large - small) / (LARGE - SMALL))
    return per_package, large + per_package * (TARGET_PACKAGES - LARGE)


@pytest.mark.slow
def test_pull_and_serve_stay_bounded(tmp_path):
    rpms = build_rpms(tmp_path / "rpms", LARGE, prefix="pkg", payload_size=8000)
    package_size = max(p.stat().st_size for p in rpms)
    src = make_server(tmp_path, "source")
    catalog.create_organization(src.uow(), "ACME Corp", ORG, ACTOR)
    catalog.create_product(src.uow(), ORG, "ACME Tools", CUSTOM_PRODUCT, False, None, ACTOR)
    catalog.create_repository(src.uow(), ORG, CUSTOM_PRODUCT, "utils", "utils", None, "yum", ACTOR)
    repo = f"{CUSTOM_PRODUCT}/utils"
    catalog.upload_packages(src.uow(), ORG, repo, rpms[:SMALL], ACTOR, src.server_id)
    content_views.create_content_view(src.uow(), ORG, "Base", "base", True, [repo], ACTOR)
    content_views.publish(src.uow(), ORG, "base", None, ACTOR, src.server_id)  # 1.0: SMALL packages
    catalog.upload_packages(src.uow(), ORG, repo, rpms[SMALL:], ACTOR, src.server_id)
    content_views.publish(src.uow(), ORG, "base", None, ACTOR, src.server_id)  # 2.0: LARGE packages
    configs, destination_dirs = [], []
    for name in ("destination-a", "destination-b"):
        dst = make_server(tmp_path, name)
        prepare_destination(dst, src, tmp_path / name, ACTOR)
        subscriptions.add_destination(src.uow(), name, name, dst.signer.public_pem, ACTOR)
        subscriptions.subscribe(src.uow(), name, ORG, "base", None, ACTOR)
        config = tmp_path / f"{name}.toml"
        config.write_text(f'data_dir = "{dst.settings.data_dir}"\nserver_id = "{name}"\n')
        configs.append(config)
        destination_dirs += [dst.settings.data_dir / d for d in ("staging", "imports", "exports")]

    temp = tmp_path / "process-tmp"  # TMPDIR of both processes
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    port = closed_port()
    url = f"http://127.0.0.1:{port}"
    root = Path(__file__).resolve().parents[3]
    server = subprocess.Popen([sys.executable, "-c", SERVE, str(src.settings.data_dir), str(port)], cwd=root, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/api/v1/health", timeout=1).read()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "the source did not start"
                time.sleep(0.1)
        outside_store = [
            temp,
            *(src.settings.data_dir / d for d in ("staging", "imports", "exports")),
            *destination_dirs,
        ]
        for d in outside_store:
            d.mkdir(parents=True, exist_ok=True)
        with LargestFile(outside_store) as largest:
            pull_small = pull_peak_mib(configs[0], url, "1.0", env)
            serve_small = vm_hwm_mib(server.pid)
            pull_large = pull_peak_mib(configs[1], url, "2.0", env)
            serve_large = vm_hwm_mib(server.pid)
    finally:
        server.terminate()
        server.wait(30)

    failures = []
    if largest.size > package_size:
        failures.append(
            f"{largest.path} ({largest.size} bytes) was written outside the content store; "
            f"the largest package is {package_size} bytes"
        )
    for side, small, large in (("pull", pull_small, pull_large), ("serve", serve_small, serve_large)):
        per_package, at_target = projected(small, large)
        figures = (
            f"{side}: {small:.0f} MiB at {SMALL} packages, {large:.0f} MiB at {LARGE}, "
            f"{per_package * 2**20 / 1024:.2f} KiB per package, {at_target:.0f} MiB projected at {TARGET_PACKAGES}"
        )
        print(figures)
        if large >= PEAK_MIB[side] or per_package * 1024 >= KIB_PER_PACKAGE:
            failures.append(figures)
    assert not failures, failures
