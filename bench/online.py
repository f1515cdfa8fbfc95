"""Online propagation benchmark (issue 12, Performance): figures and ratios from one run. Not a test.

    .venv/bin/python bench/online.py [--packages 2000] [--change-pct 1] [--payload 20000]

One source (a content view over one repository of PACKAGES packages of about PAYLOAD bytes) served
by uvicorn in its own process on a loopback port; the destination pulls with `iss content-import
sync` in its own process (its peak RSS via a small launcher, see run_child; the server's from /proc/<pid>/status VmHWM).
1. Complete: the pull of 1.0, against `curl` of the same package files from a loopback HTTP
   server (python -m http.server, threaded) plus `createrepo_c` over them (the floor's metadata).
2. Incremental: CHANGE-PCT % new packages, published as 2.0; the pull (base 1.0) against `curl` of
   only the changed files into a copy of 1.0's tree plus `createrepo_c --update`.
Beside each: the bundle-on-disk path (export a .tar.gz, import it) into a second destination.
Prints the ratios; never asserts; goals: incremental <= 1.3x, complete <= 1.5x.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# before createrepo_c loads librpm (fixtures, uploads): as the `iss` command does
from iss_plugin.cli.noise import use_empty_rpm_config_if_missing  # noqa: E402

use_empty_rpm_config_if_missing()

from bench.export_import import build_packages  # noqa: E402
from consumers.demo import CUSTOM_PRODUCT, ORG, import_into, make_server, prepare_destination  # noqa: E402
from iss_plugin.domain.versions import VersionNumber  # noqa: E402
from iss_plugin.services import catalog, content_views, exporting, subscriptions  # noqa: E402

ACTOR = "bench"
# the createrepo_c command the project's venv installs (pip's createrepo_c), else the machine's
CREATEREPO_C = shutil.which("createrepo_c", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}") or (
    "createrepo_c"
)
REPO = "utils"
SERVE = (
    "import sys, uvicorn; from iss_plugin.bootstrap import App; from iss_plugin.settings import load_settings;"
    "from iss_plugin.web.app import create_app;"
    "uvicorn.run(create_app(App(load_settings(None, data_dir=sys.argv[1], server_id='source'))),"
    " host='127.0.0.1', port=int(sys.argv[2]), log_level='warning')"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# The child is started by a small fresh interpreter, which reports the child's peak RSS: a child
# forked straight from this (large) process would report this process's RSS as its own peak, since
# Linux carries the pre-exec high-water mark into ru_maxrss (that is how `--help` once read 169 MiB).
_LAUNCHER = (
    "import os, resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); sys.stdout.flush();"
    " os.write(1, b'\\nMAXRSS_KIB=%d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)"
)


def run_child(cmd: list[str], cwd: Path | None = None) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of one child process; exits on failure."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, *cmd], cwd=cwd, capture_output=True)
    elapsed = time.perf_counter() - start
    out = proc.stdout + proc.stderr
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd[:6])}... failed ({proc.returncode}):\n{out.decode(errors='replace')[-2000:]}")
    maxrss_kib = int(proc.stdout.rsplit(b"MAXRSS_KIB=", 1)[1].split()[0])
    return elapsed, maxrss_kib / 1024


ISS = [sys.executable, "-c", "from iss_plugin.cli import main; main()"]


def sync(config: Path, url: str, version: str) -> tuple[float, float]:
    """`iss content-import sync` in its own process: (seconds, peak RSS MiB)."""
    args = ["--config", str(config), "content-import", "sync", "--from", url]
    return run_child([*ISS, *args, "--organization", ORG, "--content-view", "base", "--version", version])


def pull_here(dst, url: str, version: str) -> float:
    """The same pull in this process (no interpreter start): seconds."""
    from iss_plugin.adapters.bundles.pull import StreamClient
    from iss_plugin.services import pulling

    start = time.perf_counter()
    with StreamClient(url, dst.signer, dst.server_id) as client:
        result = pulling.pull_content_view(
            dst.uow(),
            pulling.PullRequest(ORG, "base", VersionNumber.parse(version)),
            open_stream=client.open,
            work_dir=dst.settings.imports_path,
            display=url,
            actor=ACTOR,
        )
    assert result["state"] == "imported", result
    return time.perf_counter() - start


def curl_floor(files: list[Path], served: Path, port: int, into: Path, update: bool) -> float:
    """curl the files (one process, one connection) into `into`, then createrepo_c [--update] there."""
    config = into.parent / "curl.conf"  # thousands of URLs: a config file, not the command line
    with open(config, "w") as fh:
        for f in files:
            fh.write(f'url = "http://127.0.0.1:{port}/{f.relative_to(served)}"\noutput = "{into / f.name}"\n')
    start = time.perf_counter()
    subprocess.run(["curl", "-sS", "--fail", "-K", str(config)], check=True)
    repo = [CREATEREPO_C, "-q", "--update", str(into)] if update else [CREATEREPO_C, "-q", str(into)]
    subprocess.run(repo, check=True)
    return time.perf_counter() - start


def warm(src, version: str, base: str | None) -> float:
    """Plan (and drop) the stream once, untimed in the table: the first plan of a version builds the
    store's metadata index, which every path then reuses; without this the first path timed pays it."""
    from iss_plugin.services import streaming

    start = time.perf_counter()
    planned = streaming.plan_stream(
        src.uow(),
        streaming.StreamRequest(ORG, content_view="base", version=VersionNumber.parse(version), base=base),
        signer=src.signer,
        server_id=src.server_id,
        staging_root=src.settings.data_dir / "staging",
    )
    if planned is not None:
        planned.close()
    return time.perf_counter() - start


def bundle_path(src, dst, tmp: Path, version: str, base: str | None) -> float:
    request = exporting.ExportRequest(
        ORG,
        "content_view_version",
        incremental=base is not None,
        content_view="base",
        version=VersionNumber.parse(version),
        from_version=base,
        fmt="tgz",
    )
    start = time.perf_counter()
    out = exporting.export_bundle(
        src.uow(),
        request,
        out_dir=tmp / "bundles",
        signer=src.signer,
        server_id=src.server_id,
        actor=ACTOR,
        staging_root=src.settings.data_dir / "staging",
    )
    import_into(dst, ORG, Path(out["path"]))
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packages", type=int, default=2000)
    ap.add_argument("--change-pct", type=float, default=1.0)
    ap.add_argument("--payload", type=int, default=20000)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="iss-online-"))
    server = http = None
    try:
        with ProcessPoolExecutor(2) as pool:
            rpms = build_packages(tmp / "rpms", "pkg", args.packages, args.payload, pool)
            changed = max(1, round(args.packages * args.change_pct / 100))
            new = build_packages(tmp / "rpms-new", "new", changed, args.payload, pool)
        src = make_server(tmp, "source")
        dst, dst_b = make_server(tmp, "destination"), make_server(tmp, "destination-b")
        dst_c = make_server(tmp, "destination-c")
        catalog.create_organization(src.uow(), "ACME Corp", ORG, ACTOR)
        catalog.create_product(src.uow(), ORG, "ACME Tools", CUSTOM_PRODUCT, False, None, ACTOR)
        catalog.create_repository(src.uow(), ORG, CUSTOM_PRODUCT, REPO, REPO, None, "yum", ACTOR)
        catalog.upload_packages(src.uow(), ORG, f"{CUSTOM_PRODUCT}/{REPO}", rpms, ACTOR, src.server_id)
        content_views.create_content_view(src.uow(), ORG, "Base", "base", True, [f"{CUSTOM_PRODUCT}/{REPO}"], ACTOR)
        content_views.publish(src.uow(), ORG, "base", None, ACTOR, src.server_id)
        for d in (dst, dst_b, dst_c):
            prepare_destination(d, src, tmp / d.server_id, ACTOR)
            subscriptions.add_destination(src.uow(), d.server_id, d.server_id, d.signer.public_pem, ACTOR)
            subscriptions.subscribe(src.uow(), d.server_id, ORG, "base", None, ACTOR)
        config = tmp / "destination.toml"
        config.write_text(f'data_dir = "{dst_c.settings.data_dir}"\nserver_id = "{dst_c.server_id}"\n')
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
        print(f"{args.packages} packages, {size / 2**20:.1f} MiB; {changed} changed ({args.change_pct}%)")

        _, rss_idle = run_child([*ISS, "--config", str(config), "--help"])
        print(f"first plan of 1.0 (metadata index built, untimed below): {warm(src, '1.0', None):.2f}s")
        pull_full = pull_here(dst, url, "1.0")
        cli_full, rss_full = sync(config, url, "1.0")
        floor_dir = tmp / "floor"
        floor_dir.mkdir()
        floor_full = curl_floor(rpms, tmp, http_port, floor_dir, update=False)
        disk_full = bundle_path(src, dst_b, tmp, "1.0", None)
        src_rss_full = peak_rss_mb(server.pid)

        catalog.upload_packages(src.uow(), ORG, f"{CUSTOM_PRODUCT}/{REPO}", new, ACTOR, src.server_id)
        content_views.publish(src.uow(), ORG, "base", None, ACTOR, src.server_id)
        print(f"first plan of 2.0 over 1.0 (untimed below): {warm(src, '2.0', '1.0'):.2f}s")
        pull_inc = pull_here(dst, url, "2.0")
        cli_inc, rss_inc = sync(config, url, "2.0")
        floor_inc = curl_floor(new, tmp, http_port, floor_dir, update=True)
        disk_inc = bundle_path(src, dst_b, tmp, "2.0", "1.0")
        src_rss = peak_rss_mb(server.pid)

        print(f"{'':24}{'online pull':>12}{'curl floor':>12}{'ratio':>8}{'bundle on disk':>16}")
        for what, pull, floor, disk, goal in (
            ("complete", pull_full, floor_full, disk_full, 1.5),
            ("incremental", pull_inc, floor_inc, disk_inc, 1.3),
        ):
            ratio = pull / floor
            missed = "  GOAL MISSED" if ratio > goal else ""
            print(f"{what:24}{pull:11.2f}s{floor:11.2f}s{ratio:7.2f}x{disk:15.2f}s  (goal <= {goal}x){missed}")
        print(f"iss content-import sync as a process: {cli_full:.2f}s complete, {cli_inc:.2f}s incremental")
        print(f"peak RSS: destination pull {rss_full:.1f} MiB (complete), {rss_inc:.1f} MiB (incremental);")
        print(f"          the same `iss` process doing nothing (--help): {rss_idle:.1f} MiB")
        print(f"          source server {src_rss_full:.1f} MiB after complete, {src_rss:.1f} MiB at the end")
        worst = max(rss_full, rss_inc, src_rss_full, src_rss) * 2**20 / 1e6
        verdict = "met" if worst < 150 else "MISSED"
        print(f"          the larger side {worst:.1f} MB (goal: under 150 MB on both sides: {verdict})")
        return 0
    finally:
        for p in (server, http):
            if p is not None:
                p.terminate()
                p.wait(10)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
