"""Online pull into a Pulp destination (issue 12, points 4 and 5): figures from one run. Not a test.

    .venv/bin/python bench/online_pulp.py [--packages 2000] [--change-pct 1] [--payload 20000] [--stream-batch 100]
                                          [--peak-stacks FILE]

Needs the two Pulp servers of deploy/pulp (`deploy/pulp/pulpctl start --instances 2`).
One source (local store; a content view over one repository of PACKAGES packages of about PAYLOAD
bytes) served by uvicorn in its own process; the destination is iss on Pulp 2, pulling with
`iss content-import sync` in its own process (its peak RSS through bench/online.py's launcher).
While a pull runs, the destination's import work directory and Pulp 2's shared import directory
(the places outside Pulp's storage where iss writes) are sampled every 20 ms: the largest file seen,
and the peak bytes of package files and of other files (the signed manifest, the repodata).
Beside it, in the same run: Pulp 1 syncing the same packages by itself from a plain yum repository
on a loopback HTTP server (a remote, immediate policy, then a publication: what Pulp pays to take
the same content with no iss in between), complete and then incremental (the same repository synced
again after the change). Pulp 1 has never seen these packages (fresh names per run), nor has Pulp 2.
Prints figures and ratios; never asserts; exits 0. Everything made in the Pulps is deleted at the end
(content stays as orphans, as in Pulp).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.export_import import build_packages  # noqa: E402
from bench.online import CREATEREPO_C, ISS, REPO, SERVE, free_port, peak_rss_mb, run_child, wait_http  # noqa: E402
from consumers.demo import CUSTOM_PRODUCT, ORG, make_server, prepare_destination  # noqa: E402
from iss_plugin.adapters.backends.pulp_instances import find_instance, reachable, settings_toml  # noqa: E402
from iss_plugin.services import catalog, content_views, subscriptions  # noqa: E402
from iss_plugin.services.catalog import backend_key  # noqa: E402

ACTOR = "bench"


class DiskWatch:
    """The largest file under `roots` and the peak bytes there (package files, other files), every 20 ms."""

    def __init__(self, *roots: Path) -> None:
        self.roots = roots
        self.largest: tuple[int, str] = (0, "")
        self.peak_rpm = self.peak_other = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rpm = other = 0
            for root in self.roots:
                for dirpath, _dirs, names in os.walk(root):
                    for name in names:
                        path = os.path.join(dirpath, name)
                        try:
                            size = os.lstat(path).st_size
                        except OSError:  # gone while walked
                            continue
                        if name.endswith(".rpm"):
                            rpm += size
                        else:
                            other += size
                        if size > self.largest[0]:
                            self.largest = (size, path)
            self.peak_rpm, self.peak_other = max(self.peak_rpm, rpm), max(self.peak_other, other)
            self._stop.wait(0.02)

    def __enter__(self) -> DiskWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


PEAK_STACKS = [sys.executable, str(ROOT / "bench" / "peak_stack.py")]


def pull(config: Path, url: str, version: str, watch: DiskWatch, iss: list[str]) -> tuple[float, float]:
    """`iss content-import sync` into Pulp 2 in its own process, watched: (seconds, peak RSS MiB)."""
    args = ["--config", str(config), "content-import", "sync", "--from", url, "--organization", ORG]
    with watch:
        return run_child([*iss, *args, "--content-view", "base", "--version", version])


def pulp_floor(backend, key: str, url: str) -> float:
    """Pulp syncing `url` (a plain yum repository) into `key` and publishing the version: seconds."""
    start = time.perf_counter()
    version = backend.sync(key, url, mirror=True)
    backend.publish(key, version)
    return time.perf_counter() - start


def largest_package(files: list[Path]) -> int:
    return max(f.stat().st_size for f in files)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packages", type=int, default=2000)
    ap.add_argument("--change-pct", type=float, default=1.0)
    ap.add_argument("--payload", type=int, default=20000)
    ap.add_argument("--stream-batch", type=int, default=None, help="pulp.stream_batch (default: iss's)")
    ap.add_argument("--peak-stacks", metavar="FILE", help="write the pulls' stacks at their RSS peak to FILE")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    pulps = [find_instance(n) for n in (1, 2)]
    for inst in pulps:
        if problem := reachable(inst):
            raise SystemExit(f"{problem}; start it with: deploy/pulp/pulpctl start --instances 2")
    floor_pulp, dest_pulp = pulps
    iss = ISS
    if args.peak_stacks:  # bench/peak_stack.py: where the destination's RSS peaks
        os.environ["ISS_PEAK_REPORT"] = str(Path(args.peak_stacks).resolve())
        iss = PEAK_STACKS
    run = uuid.uuid4().hex[:8]  # package names neither Pulp has seen
    prefix = f"bench{run}/"
    tmp = Path(tempfile.mkdtemp(prefix="iss-online-pulp-"))
    server = http = None
    floor_backend = floor_pulp.backend(repo_prefix=prefix)
    dest_backend = dest_pulp.backend(repo_prefix=prefix)
    try:
        with ProcessPoolExecutor(2) as pool:
            rpms = build_packages(tmp / "rpms", f"p{run}", args.packages, args.payload, pool)
            changed = max(1, round(args.packages * args.change_pct / 100))
            new = build_packages(tmp / "rpms-new", f"n{run}", changed, args.payload, pool)
        src = make_server(tmp, "source")
        pulp = dest_pulp.settings(prefix).pulp.model_dump()
        if args.stream_batch:
            pulp["stream_batch"] = args.stream_batch
        dst = make_server(tmp, "destination", backend="pulp", pulp=pulp)
        catalog.create_organization(src.uow(), "ACME Corp", ORG, ACTOR)
        catalog.create_product(src.uow(), ORG, "ACME Tools", CUSTOM_PRODUCT, False, None, ACTOR)
        catalog.create_repository(src.uow(), ORG, CUSTOM_PRODUCT, REPO, REPO, None, "yum", ACTOR)
        catalog.upload_packages(src.uow(), ORG, f"{CUSTOM_PRODUCT}/{REPO}", rpms, ACTOR, src.server_id)
        content_views.create_content_view(src.uow(), ORG, "Base", "base", True, [f"{CUSTOM_PRODUCT}/{REPO}"], ACTOR)
        content_views.publish(src.uow(), ORG, "base", None, ACTOR, src.server_id)
        (tmp / "dst-setup").mkdir()
        prepare_destination(dst, src, tmp / "dst-setup", ACTOR)
        subscriptions.add_destination(src.uow(), dst.server_id, dst.server_id, dst.signer.public_pem, ACTOR)
        subscriptions.subscribe(src.uow(), dst.server_id, ORG, "base", None, ACTOR)
        config = tmp / "destination.toml"
        batch = f"stream_batch = {args.stream_batch}\n" if args.stream_batch else ""
        config.write_text(
            f'data_dir = "{dst.settings.data_dir}"\nserver_id = "{dst.server_id}"\n'
            + settings_toml(dest_pulp, prefix)
            + batch
        )
        dst.close()
        floor = tmp / "floor"
        floor.mkdir()
        for f in rpms:
            os.link(f, floor / f.name)
        subprocess.run([CREATEREPO_C, "-q", str(floor)], check=True)  # the source's published repository
        port, http_port = free_port(), free_port()
        server = subprocess.Popen([sys.executable, "-c", SERVE, str(src.settings.data_dir), str(port)], cwd=ROOT)
        http = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(http_port), "--bind", "127.0.0.1", "--directory", str(tmp)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/api/v1/health")
        wait_http(f"http://127.0.0.1:{http_port}/")
        size = sum(f.stat().st_size for f in rpms)
        biggest = largest_package(rpms + new)
        print(
            f"{args.packages} packages, {size / 2**20:.1f} MiB (largest {biggest} B); {changed} changed "
            f"({args.change_pct}%); stream_batch {args.stream_batch or 'default'}"
        )
        outside = (dst.settings.imports_path, dest_pulp.import_dir)
        watch_full = DiskWatch(*outside)
        pull_full, rss_full = pull(config, url, "1.0", watch_full, iss)
        floor_key = f"{CUSTOM_PRODUCT}/{REPO}"
        floor_backend.ensure_repository(floor_key)
        floor_full = pulp_floor(floor_backend, floor_key, f"http://127.0.0.1:{http_port}/floor/")
        src_rss_full = peak_rss_mb(server.pid)

        catalog.upload_packages(src.uow(), ORG, f"{CUSTOM_PRODUCT}/{REPO}", new, ACTOR, src.server_id)
        content_views.publish(src.uow(), ORG, "base", None, ACTOR, src.server_id)
        for f in new:
            os.link(f, floor / f.name)
        subprocess.run([CREATEREPO_C, "-q", "--update", str(floor)], check=True)
        watch_inc = DiskWatch(*outside)
        pull_inc, rss_inc = pull(config, url, "2.0", watch_inc, iss)
        floor_inc = pulp_floor(floor_backend, floor_key, f"http://127.0.0.1:{http_port}/floor/")
        src_rss = peak_rss_mb(server.pid)
        dest_key = backend_key(ORG, CUSTOM_PRODUCT, REPO)
        held = dest_backend.version_info(dest_key, dest_backend.latest_version(dest_key))
        if held.package_count != args.packages + changed:
            print(f"WRONG RESULT: Pulp 2 holds {held.package_count} packages, not {args.packages + changed}")
            return 1

        print(f"{'':14}{'iss pull into Pulp 2':>22}{'Pulp 1 syncs by itself':>24}{'ratio':>8}")
        for what, mine, theirs in (("complete", pull_full, floor_full), ("incremental", pull_inc, floor_inc)):
            print(f"{what:14}{mine:21.1f}s{theirs:23.1f}s{mine / theirs:7.2f}x")
        print(f"peak RSS: destination pull {rss_full:.1f} MiB (complete), {rss_inc:.1f} MiB (incremental);")
        print(f"          source server {src_rss_full:.1f} MiB after complete, {src_rss:.1f} MiB at the end")
        worst = max(rss_full, rss_inc, src_rss_full, src_rss) * 2**20 / 1e6
        print(f"          the larger side {worst:.1f} MB (goal: under 150 MB: {'met' if worst < 150 else 'MISSED'})")
        for what, w in (("complete", watch_full), ("incremental", watch_inc)):
            largest, where = w.largest
            verdict = "no larger than a package" if largest <= biggest else "LARGER than a package"
            print(
                f"outside Pulp's storage ({what}): largest file {largest} B ({verdict}: "
                f"{os.path.relpath(where, tmp) if where.startswith(str(tmp)) else where}); peak package files "
                f"{w.peak_rpm / 1e6:.2f} MB, other files {w.peak_other / 1e6:.2f} MB"
            )
        return 0
    finally:
        for p in (server, http):
            if p is not None:
                p.terminate()
                p.wait(10)
        for backend in (dest_backend, floor_backend):
            for key in backend.list_repositories():
                backend.delete_repository(key)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
