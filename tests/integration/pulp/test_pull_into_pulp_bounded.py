"""Issue 12, point 5 for a destination on Pulp: `iss content-import sync` into Pulp (instance 2), in a
process of its own, from a source's stream served by uvicorn in another. Its peak RSS stays under a
pinned bound (the issue's goal is 150 MB at 20,000 packages; bench/online_pulp.py measures that
size), it never loads createrepo_c (22 MiB of librpm: the tree's metadata is read with defusedxml,
streamed batches go into Pulp by uploads), and package files never pile up outside Pulp: at most two
batches and the file being written lie in the destination's import work directory or Pulp's shared
import directory, and no file there but the stream's metadata (its signed manifest and repodata,
which Pulp reads from there) is larger than a package."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from consumers.demo import CUSTOM_PRODUCT, ORG, make_server, prepare_destination
from iss_plugin.adapters.backends.pulp_instances import settings_toml
from iss_plugin.adapters.fixtures import build_rpms
from iss_plugin.services import catalog, content_views, subscriptions
from tests.conftest import closed_port
from tests.integration.propagation.test_bounded_resources import LAUNCHER, SERVE
from tests.integration.pulp.support import new_prefix, purge, require_instance

pytestmark = pytest.mark.pulp

ACTOR = "test"
PACKAGES, BATCH = 300, 50
# measured on the project's machine at 300 packages: ~109 MiB in the development venv (132 MiB with
# createrepo_c loaded in the process and Pulp's whole API description parsed, 147-155 MiB with it
# parsed once per thread); the growth from 300 to 5,000 packages was under 5 MiB (bench/online_pulp.py)
PEAK_MIB = 125.0
ISS = (
    "import atexit, os, sys;"
    "atexit.register(lambda: os.write(2, b'\\nCREATEREPO_C=%d\\n' % ('createrepo_c' in sys.modules)));"
    "from iss_plugin.cli import main; main()"
)


class Outside:
    """Polls directories: the largest file seen (and where), and the peak bytes and count of .rpm
    files (hard links counted once)."""

    def __init__(self, roots: list[Path]) -> None:
        self.roots = roots
        self.largest: dict[str, tuple[int, str]] = {"package": (0, ""), "metadata": (0, ""), "other": (0, "")}
        self.rpm_files = self.rpm_bytes = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Outside:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def _run(self) -> None:
        while not self.stop.is_set():
            count = total = 0
            seen: set[tuple[int, int]] = set()  # a file and its hard link (staged for Pulp) are one file on disk
            for root in self.roots:
                for dirpath, _dirs, files in os.walk(root):
                    for name in files:
                        path = os.path.join(dirpath, name)
                        try:
                            st = os.lstat(path)
                        except FileNotFoundError:
                            continue
                        size = st.st_size
                        if (st.st_dev, st.st_ino) in seen:
                            continue
                        seen.add((st.st_dev, st.st_ino))
                        kind = "package" if name.endswith(".rpm") else "other"
                        if name in ("manifest.json", "manifest.json.sig") or "/repodata/" in path:
                            kind = "metadata"
                        if kind == "package":
                            count, total = count + 1, total + size
                        if size > self.largest[kind][0]:
                            self.largest[kind] = (size, path)
            self.rpm_files, self.rpm_bytes = max(self.rpm_files, count), max(self.rpm_bytes, total)
            time.sleep(0.005)


def test_a_pull_into_pulp_stays_bounded_and_never_loads_createrepo_c(tmp_path):
    inst = require_instance(2)
    prefix = new_prefix()
    run = uuid.uuid4().hex[:8]  # packages Pulp has never seen, so every one travels
    rpms = build_rpms(tmp_path / "rpms", PACKAGES, prefix=f"b{run}-", payload_size=8000)
    package_size = max(p.stat().st_size for p in rpms)
    src = make_server(tmp_path, "source")
    catalog.create_organization(src.uow(), "ACME Corp", ORG, ACTOR)
    catalog.create_product(src.uow(), ORG, "ACME Tools", CUSTOM_PRODUCT, False, None, ACTOR)
    catalog.create_repository(src.uow(), ORG, CUSTOM_PRODUCT, "utils", "utils", None, "yum", ACTOR)
    repo = f"{CUSTOM_PRODUCT}/utils"
    catalog.upload_packages(src.uow(), ORG, repo, rpms, ACTOR, src.server_id)
    content_views.create_content_view(src.uow(), ORG, "Base", "base", True, [repo], ACTOR)
    content_views.publish(src.uow(), ORG, "base", None, ACTOR, src.server_id)
    dst = make_server(tmp_path, "destination", backend="pulp", pulp=inst.settings(prefix).pulp.model_dump())
    (tmp_path / "setup").mkdir()
    prepare_destination(dst, src, tmp_path / "setup", ACTOR)
    subscriptions.add_destination(src.uow(), dst.server_id, dst.server_id, dst.signer.public_pem, ACTOR)
    subscriptions.subscribe(src.uow(), dst.server_id, ORG, "base", None, ACTOR)
    config = tmp_path / "destination.toml"
    config.write_text(
        f'data_dir = "{dst.settings.data_dir}"\nserver_id = "{dst.server_id}"\n'
        + settings_toml(inst, prefix)
        + f"stream_batch = {BATCH}\n"
    )
    imports = dst.settings.imports_path
    imports.mkdir(parents=True, exist_ok=True)
    dst.close()
    port = closed_port()
    url = f"http://127.0.0.1:{port}"
    root = Path(__file__).resolve().parents[3]
    server = subprocess.Popen([sys.executable, "-c", SERVE, str(src.settings.data_dir), str(port)], cwd=root)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/api/v1/health", timeout=1).read()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "the source did not start"
                time.sleep(0.1)
        args = ["--config", str(config), "content-import", "sync", "--from", url, "--organization", ORG]
        with Outside([imports, inst.import_dir]) as outside:
            proc = subprocess.run(
                [sys.executable, "-c", LAUNCHER, sys.executable, "-c", ISS, *args, "--content-view", "base"],
                capture_output=True,
                timeout=600,
            )
    finally:
        server.terminate()
        server.wait(30)
        purge(inst.backend(repo_prefix=prefix))
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, proc.stdout.decode(errors="replace")[-2000:] + err[-2000:]
    peak = int(err.rsplit("MAXRSS_KIB=", 1)[1].split()[0]) / 1024
    print(f"pull into Pulp: {PACKAGES} packages, peak RSS {peak:.1f} MiB; outside Pulp: {outside.largest}")
    assert err.rsplit("CREATEREPO_C=", 1)[1].split()[0] == "0", "the pull loaded createrepo_c"
    assert peak < PEAK_MIB, f"peak RSS {peak:.1f} MiB, bound {PEAK_MIB} MiB"
    assert outside.rpm_files <= 2 * BATCH + 1, outside.rpm_files  # two batches and the file being written
    assert outside.largest["package"][0] <= package_size
    assert outside.largest["other"][0] <= package_size, outside.largest["other"]
