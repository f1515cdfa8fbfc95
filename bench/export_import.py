"""Export/import benchmark: the performance goals of issue 2, side by side in one run.

    .venv/bin/python bench/export_import.py [--packages 5000] [--change 50] [--size-kb 20] [--repeat 3]
                                            [--dir DIR] [--shm /dev/shm] [--profile] [--quick]

Builds deterministic RPMs (iss_plugin.adapters.fixtures), then a source and a destination server
(embedded default: SQLite + local store, in temporary directories) per scenario, and measures:

1. incremental export (dir) + import of CHANGE new packages into a repository of PACKAGES vs the
   same CHANGE packages into a repository of CHANGE: the cost follows the change (goal <= 1.5x);
2. the same incremental vs the physical floor: copy the new package files into a yum tree and
   `createrepo_c --update` it (goal <= 5x);
3. complete export (dir) on the same filesystem vs `cp -al` + metadata generation, two floors:
   createrepo_c --update reusing the previous metadata and a cold createrepo_c; the goal (<= 1.2x)
   uses whichever was cheaper in this run (the stricter comparison). Complete export (dir) to
   another filesystem (no hardlinks possible; or hardlink_exports=False when --shm is not one) vs
   `tar -c` of the same bytes copied there as a directory (`tar -c | tar -x`, the tar copy of a
   tree: 5,000 files made, like the export), goal <= 1.3x. For information: `cp -r` there; the same
   export vs `tar -c` into ONE archive file there (one file made instead of 5,000; within 1.3x in
   some runs, not reliably); `--format tgz` there vs `tar -c` (a gzip member also needs a CRC-32 of every
   byte, which zlib computes at about half of tar's speed) and vs `tar -c | gzip -1` (the same
   format from standard tools);
4. peak RSS of the real `iss` CLI exporting and importing PACKAGES packages, each in a child
   process of its own (rusage of that process alone), goal <= 150 MB.

Setup (building, uploading, a complete and an incremental export + import, so that the
destination is in steady state with two publications) is not timed; every timed run starts from a
fresh clone (`cp -al` + a real copy of the database) of the same prepared state, so repeats do the
same work. Medians of --repeat runs, wall time (the goals) and CPU time (user + sys of the process
and its children: steadier when other work shares the machine). Prints a table; never asserts on
time and exits 0 (a missed goal prints "GOAL MISSED"). --profile adds cProfile reports: what grows
with the repository (large minus small incremental) and the export without hardlinks. Not a test.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import platform
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ORG = "ACME"
PRODUCT = "bench"
REPO = "repo"
CV = "cv"
ACTOR = "bench"
MB = 1_000_000
CREATEREPO = [
    "createrepo_c",
    "--no-database",
    "--general-compress-type=gz",
    "--quiet",
]  # what iss writes: gz xml, no sqlite


# --- small helpers ------------------------------------------------------------------------------


def sh(*cmd: str | Path, cwd: Path | None = None) -> None:
    subprocess.run([str(c) for c in cmd], check=True, cwd=cwd)


@dataclass(frozen=True)
class Sample:
    """Wall seconds (what the goals are about) and CPU seconds (this process and its waited-for
    children, user + sys: much less disturbed by other work on a shared machine)."""

    wall: float
    cpu: float

    def __add__(self, other: Sample) -> Sample:
        return Sample(self.wall + other.wall, self.cpu + other.cpu)

    def __str__(self) -> str:
        return f"{self.wall:.3f}"


def _cpu() -> float:
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def timed(fn, profile: cProfile.Profile | None = None) -> Sample:
    """fn() measured after flushing dirty pages (the clones' and earlier runs' writes) and a GC."""
    os.sync()
    gc.collect()
    if profile:
        profile.enable()
    c, t = _cpu(), time.perf_counter()
    try:
        fn()
    finally:
        wall, cpu = time.perf_counter() - t, _cpu() - c
        if profile:
            profile.disable()
    return Sample(wall, cpu)


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def median(xs: list[Sample]) -> Sample:
    return Sample(statistics.median(x.wall for x in xs), statistics.median(x.cpu for x in xs))


def clone(src: Path, dst: Path) -> Path:
    """A copy of a server's data directory that costs almost nothing: hardlinks for everything
    (the store, caches and publications are only ever replaced by rename, never written in place),
    a real copy of the SQLite database (written in place)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    sh("cp", "-al", src, dst)
    for db in dst.rglob("iss.db*"):
        tmp = db.with_name(db.name + ".copy")
        shutil.copyfile(db, tmp)
        os.replace(tmp, db)
    return dst


def _build_chunk(directory: str, prefix: str, start: int, count: int, payload: int, version: str) -> list[str]:
    from iss_plugin.adapters.fixtures import build_rpms

    return [
        str(p) for p in build_rpms(directory, count, prefix=prefix, start=start, payload_size=payload, version=version)
    ]


def build_packages(
    directory: Path,
    prefix: str,
    count: int,
    payload: int,
    pool: ProcessPoolExecutor,
    version: str = "1.0",
    start: int = 0,
) -> list[Path]:
    """`count` RPMs numbered from `start`, built in the pool's processes."""
    step = max(1, -(-count // (4 * (os.cpu_count() or 1))))
    futures = [
        pool.submit(_build_chunk, str(directory), prefix, s, min(step, start + count - s), payload, version)
        for s in range(start, start + count, step)
    ]
    return [Path(p) for f in futures for p in f.result()]


# --- one source + one destination -----------------------------------------------------------------


def make_app(data_dir: Path, server_id: str, *, init: bool = False):
    from iss_plugin.bootstrap import App
    from iss_plugin.services.server_setup import initialize
    from iss_plugin.settings import load_settings

    settings = load_settings(None, data_dir=str(data_dir), server_id=server_id)
    if init:
        initialize(settings)
    return App(settings)


def export(
    app, *, incremental: bool, version: str, out: Path, from_version: str | None = None, fmt: str = "dir"
) -> dict:
    from iss_plugin.domain.versions import VersionNumber
    from iss_plugin.services import exporting

    req = exporting.ExportRequest(
        organization=ORG,
        scope="content_view_version",
        incremental=incremental,
        content_view=CV,
        version=VersionNumber.parse(version),
        from_version=from_version,
        fmt=fmt,
        path=out,
    )
    return exporting.export_bundle(
        app.uow(),
        req,
        out_dir=out,
        signer=app.signer,
        server_id=app.server_id,
        actor=ACTOR,
        staging_root=app.settings.data_dir / "staging",
    )


def import_(app, path: str | Path) -> dict:
    from iss_plugin.services import importing

    req = importing.ImportRequest(organization=ORG, path=Path(path), scope="content_view_version")
    return importing.import_bundle(app.uow(), req, work_dir=app.settings.imports_path, actor=ACTOR)


def warm(app) -> None:
    """Engine, connection pool and signing key loaded before a timed run (the same for every size)."""
    from iss_plugin.services import content_views

    content_views.list_versions(app.uow(), ORG, CV)
    app.signer  # noqa: B018


@dataclass
class Pair:
    """A prepared scenario in steady state: the source has CV 1.0 (base minus one package), 2.0 (base)
    and 3.0 (base + change); the destination imported 1.0 (complete) and 2.0 (incremental), so it
    holds two publications, as after any earlier incremental. The timed incremental is 2.0 -> 3.0."""

    root: Path

    @property
    def src(self) -> Path:
        return self.root / "source"

    @property
    def dst(self) -> Path:
        return self.root / "destination"

    @property
    def dst_empty(self) -> Path:
        return self.root / "destination-empty"


FULL, BASE, TARGET = "1.0", "2.0", "3.0"


def prepare_pair(root: Path, base: list[Path], change: list[Path], say) -> Pair:
    from iss_plugin.services import catalog, content_views

    pair = Pair(root)
    src = make_app(pair.src, "source", init=True)
    dst = make_app(pair.dst, "destination", init=True)
    repo = f"{PRODUCT}/{REPO}"
    try:
        catalog.create_organization(src.uow(), "ACME Corp", ORG, ACTOR)
        catalog.create_product(src.uow(), ORG, "Bench", PRODUCT, False, None, ACTOR)
        catalog.create_repository(src.uow(), ORG, PRODUCT, "Repo", REPO, None, "yum", ACTOR)
        t = time.perf_counter()
        catalog.upload_packages(src.uow(), ORG, repo, base[:-1], ACTOR, src.server_id)
        say(f"    upload {len(base) - 1} packages {time.perf_counter() - t:.2f} s")
        content_views.create_content_view(src.uow(), ORG, "CV", CV, True, [repo], ACTOR)
        content_views.publish(src.uow(), ORG, CV, FULL, ACTOR, src.server_id)
        catalog.create_organization(dst.uow(), "ACME Corp", ORG, ACTOR)
        catalog.add_trusted_source(dst.uow(), "source", src.signer.public_pem, [ORG], ACTOR)
    finally:
        dst.close()
    clone(pair.dst, pair.dst_empty)  # for the RSS of a complete import through the CLI
    dst = make_app(pair.dst, "destination")
    try:
        t = time.perf_counter()
        b = export(src, incremental=False, version=FULL, out=pair.src / "exports")
        t_exp = time.perf_counter() - t
        t = time.perf_counter()
        import_(dst, b["path"])
        say(f"    complete export {t_exp:.2f} s + import {time.perf_counter() - t:.2f} s of {FULL} (setup, not timed)")
        catalog.upload_packages(src.uow(), ORG, repo, base[-1:], ACTOR, src.server_id)
        content_views.publish(src.uow(), ORG, CV, BASE, ACTOR, src.server_id)
        b = export(src, incremental=True, version=BASE, out=pair.src / "exports", from_version=FULL)
        import_(dst, b["path"])
        catalog.upload_packages(src.uow(), ORG, repo, change, ACTOR, src.server_id)
        content_views.publish(src.uow(), ORG, CV, TARGET, ACTOR, src.server_id)
    finally:
        src.close()
        dst.close()
    return pair


def run_incremental(pair: Pair, work: Path, profile: cProfile.Profile | None = None) -> tuple[Sample, Sample]:
    """Incremental BASE -> TARGET: export (dir, same filesystem) then import, on fresh clones. Seconds of each."""
    src = make_app(clone(pair.src, work / "source"), "source")
    dst = make_app(clone(pair.dst, work / "destination"), "destination")
    out = work / "out"
    try:
        warm(src)
        warm(dst)
        box: dict = {}
        t_exp = timed(
            lambda: box.update(b=export(src, incremental=True, version=TARGET, out=out, from_version=BASE)), profile
        )
        t_imp = timed(lambda: box.update(r=import_(dst, box["b"]["path"])), profile)
        if box["r"]["state"] != "imported":
            raise SystemExit(f"incremental import did not import: {box['r']}")
        return t_exp, t_imp
    finally:
        src.close()
        dst.close()
        shutil.rmtree(work)


def run_complete(
    pair: Pair, work: Path, out: Path, *, cold: bool = False, profile: cProfile.Profile | None = None, fmt: str = "dir"
) -> tuple[Sample, Path]:
    """Complete export of BASE (the base packages, dir) into `out` from a fresh clone of the source.
    cold: without the index cache (metadata compressed from the database rows)."""
    src = make_app(clone(pair.src, work / "source"), "source")
    try:
        if cold:
            shutil.rmtree(work / "source" / "store" / "index-cache", ignore_errors=True)
        warm(src)
        box: dict = {}
        t = timed(lambda: box.update(b=export(src, incremental=False, version=BASE, out=out, fmt=fmt)), profile)
        return t, Path(box["b"]["path"])
    finally:
        src.close()


# --- the physical floors --------------------------------------------------------------------------


def yum_tree(directory: Path, rpms: list[Path]) -> Path:
    """Packages/<x>/<file> hardlinked from the built RPMs (the layout iss writes)."""
    from iss_plugin.domain.packages import standard_location

    for p in rpms:
        target = directory / standard_location(p.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(p, target)
    return directory


def floor_incremental(prepared: Path, change: list[Path], work: Path) -> Sample:
    """Copy the new package files into a tree whose repodata was made for the base, then
    createrepo_c --update: what any incremental must do at least."""
    from iss_plugin.domain.packages import standard_location

    tree = clone(prepared, work)

    def run() -> None:
        for p in change:
            target = tree / standard_location(p.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, target)
        sh(*CREATEREPO, "--update", tree)

    t = timed(run)
    shutil.rmtree(tree)
    return t


def floor_complete(pkg_tree: Path, old_repodata: Path, work: Path, *, update: bool) -> Sample:
    """`cp -al` of the package files + metadata: createrepo_c --update reusing the previous
    metadata (update=True, warm) or createrepo_c from the files (cold)."""
    out = work / "tree"
    out.mkdir(parents=True)
    warm_args = ["--update", f"--update-md-path={old_repodata}"] if update else []

    def run() -> None:
        sh("cp", "-al", pkg_tree / "Packages", out / "Packages")
        sh(*CREATEREPO, *warm_args, out)

    t = timed(run)
    shutil.rmtree(work)
    return t


def floor_tar(tree: Path, target: Path) -> Sample:
    """tar -c of a tree into one file at target (another filesystem): the bytes, with no metadata work."""
    t = timed(lambda: sh("tar", "-cf", target, "-C", tree, "."))
    target.unlink()
    return t


def floor_tar_gzip(tree: Path, target: Path) -> Sample:
    """tar -c | gzip -1 of a tree into one file at target: the same format from standard tools (for
    information: the cheapest gzip level still deflates, iss stores RPMs in stored blocks)."""

    def run() -> None:
        with open(target, "wb") as out:
            tar = subprocess.Popen(["tar", "-cf", "-", "-C", str(tree), "."], stdout=subprocess.PIPE)
            subprocess.run(["gzip", "-1"], stdin=tar.stdout, stdout=out, check=True)
            tar.stdout.close()
            if tar.wait():
                raise subprocess.CalledProcessError(tar.returncode, "tar")

    t = timed(run)
    target.unlink()
    return t


def floor_tar_copy(tree: Path, target: Path) -> Sample:
    """tar -c | tar -x of a tree into a new directory at target: the same bytes written there as a
    directory, with tar (the reference of the no-hardlink directory export)."""

    def run() -> None:
        target.mkdir()
        tar = subprocess.Popen(["tar", "-cf", "-", "-C", str(tree), "."], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-xf", "-", "-C", str(target)], stdin=tar.stdout, check=True)
        tar.stdout.close()
        if tar.wait():
            raise subprocess.CalledProcessError(tar.returncode, "tar")

    t = timed(run)
    shutil.rmtree(target)
    return t


def floor_cp_r(tree: Path, target: Path) -> Sample:
    """cp -r of a tree to target: the same bytes as separate files (for information)."""
    t = timed(lambda: sh("cp", "-r", tree, target))
    shutil.rmtree(target)
    return t


# --- peak RSS through the real CLI ----------------------------------------------------------------


def iss_cli() -> list[str]:
    script = Path(sys.executable).parent / "iss"
    return [str(script)] if script.exists() else [sys.executable, "-m", "iss_plugin.cli.main"]


# A child's ru_maxrss includes the address space it had before exec: with fork or vfork from this
# (large) bench process, that is the bench's own RSS. So a small launcher process forks the measured
# command and reports the command's own rusage.
_LAUNCHER = """
import json, os, sys, time
t = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump({"seconds": time.perf_counter() - t, "maxrss_kib": usage.ru_maxrss,
               "exit": os.waitstatus_to_exitcode(status)}, f)
"""


def run_child(cmd: list[str]) -> tuple[float, float, str]:
    """Seconds and peak RSS (MiB) of one command, in a process of its own (see _LAUNCHER)."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r", suffix=".json") as report,
    ):
        subprocess.run([sys.executable, "-c", _LAUNCHER, report.name, *cmd], stdout=out, stderr=err, check=True)
        result = json.load(report)
        out.seek(0)
        err.seek(0)
        text = out.read().decode()
        if result["exit"]:
            raise SystemExit(f"{' '.join(cmd)} exited {result['exit']}:\n{text}\n{err.read().decode()}")
        return result["seconds"], result["maxrss_kib"] / 1024, text


def config_for(data_dir: Path, server_id: str) -> Path:
    cfg = data_dir.parent / f"{data_dir.name}.toml"
    cfg.write_text(f'data_dir = "{data_dir}"\nserver_id = "{server_id}"\n')
    return cfg


def rss_runs(pair: Pair, work: Path) -> dict[str, tuple[float, float]]:
    base = iss_cli()
    src = clone(pair.src, work / "source")
    dst = clone(pair.dst_empty, work / "destination")
    out: dict[str, tuple[float, float]] = {}
    cfg_src, cfg_dst = config_for(src, "source"), config_for(dst, "destination")
    t, rss, _ = run_child([*base, "--config", str(cfg_src), "--output", "json", "keys", "show"])
    out["baseline (iss keys show)"] = (t, rss)
    t, rss, text = run_child(
        [
            *base,
            "--config",
            str(cfg_src),
            "--output",
            "json",
            "content-export",
            "complete",
            "version",
            "--organization",
            ORG,
            "--content-view",
            CV,
            "--version",
            BASE,
            "--path",
            str(work / "exports"),
        ]
    )
    out["export"] = (t, rss)
    bundle = json.loads(text)["path"]
    t, rss, text = run_child(
        [
            *base,
            "--config",
            str(cfg_dst),
            "--output",
            "json",
            "content-import",
            "version",
            "--organization",
            ORG,
            "--path",
            bundle,
        ]
    )
    if json.loads(text)["state"] != "imported":
        raise SystemExit(f"CLI import did not import: {text}")
    out["import"] = (t, rss)
    shutil.rmtree(work)
    return out


# --- report -----------------------------------------------------------------------------------------


@dataclass
class Row:
    figure: str
    iss: Sample | float
    ref: Sample | None
    goal: float
    unit: str = "x"  # "x": iss/ref (wall) <= goal; "MB": iss <= goal
    info: bool = False  # printed, not a goal

    @property
    def value(self) -> float:
        return self.iss.wall / self.ref.wall if self.unit == "x" else self.iss

    @property
    def cpu_ratio(self) -> float | None:
        return self.iss.cpu / self.ref.cpu if self.unit == "x" and self.ref.cpu > 0 else None

    @property
    def met(self) -> bool:
        return self.value <= self.goal


def print_table(rows: list[Row], say) -> None:
    say(f"\n{'figure':66s} {'iss s':>8s} {'ref s':>8s} {'ratio':>7s} {'goal':>7s}  {'met?':4s} {'cpu ratio':>9s}")
    for r in rows:
        if r.unit == "x":
            iss, ref, value = f"{r.iss.wall:8.3f}", f"{r.ref.wall:8.3f}", f"{r.value:6.2f}x"
            goal, cpu = f"{r.goal:6.1f}x", f"{r.cpu_ratio:8.2f}x" if r.cpu_ratio is not None else ""
        else:
            iss, ref, value, goal, cpu = f"{r.iss:8.1f}", f"{'-':>8s}", f"{'':7s}", f"{r.goal:5.0f}MB", ""
        met = "yes" if r.met else ("no" if r.info else "NO")
        say(f"{r.figure:66s} {iss} {ref} {value} {goal}  {met:4s} {cpu}")
    say(
        "(wall seconds, medians; goals are on wall time; cpu ratio = the same ratio in CPU seconds (user+sys of\n"
        " this process and its children), less disturbed by other load; rows marked (info) are not goals; RSS in MiB)"
    )
    for r in rows:
        if not r.met and not r.info:
            shown = f"{r.value:.2f}x" if r.unit == "x" else f"{r.value:.1f} MiB"
            say(f"GOAL MISSED: {r.figure}: {shown} > {r.goal:g}{'x' if r.unit == 'x' else ' MB'}")


def _stats(prof: cProfile.Profile) -> dict[tuple, tuple]:
    """(file, line, function) -> (calls, own seconds, cumulative seconds), without the bench's frames."""
    return {
        k: (v[1], v[2], v[3])
        for k, v in pstats.Stats(prof).stats.items()
        if not k[0].endswith("export_import.py") and k[2] not in ("<built-in method gc.collect>",)
    }


def _name(key: tuple) -> str:
    file, line, func = key
    return f"{Path(file).name}:{line}({func})" if line else func


def profile_report(title: str, prof: cProfile.Profile, lines: int = 22) -> None:
    stats = _stats(prof)
    for label, col in (("cumulative", 2), ("own time", 1)):
        print(f"\n--- profile: {title}, top {lines} by {label} ---")
        print(f"{'calls':>8s} {'own s':>8s} {'cum s':>8s}  function")
        for key, (calls, own, cum) in sorted(stats.items(), key=lambda kv: -kv[1][col])[:lines]:
            print(f"{calls:8d} {own:8.3f} {cum:8.3f}  {_name(key)}")


def profile_difference(title: str, big: cProfile.Profile, little: cProfile.Profile, lines: int = 22) -> None:
    """What grows with the repository: cumulative seconds in the large run minus the small run."""
    a, b = _stats(big), _stats(little)
    rows = []
    for key, (calls, own, cum) in a.items():
        calls2, own2, cum2 = b.get(key, (0, 0.0, 0.0))
        rows.append((cum - cum2, own - own2, calls, calls2, key))
    print(f"\n--- profile: {title}: large minus small, top {lines} by cumulative difference ---")
    print(f"{'calls L':>8s} {'calls S':>8s} {'own +s':>8s} {'cum +s':>8s}  function")
    for dcum, down, calls, calls2, key in sorted(rows, key=lambda r: -r[0])[:lines]:
        print(f"{calls:8d} {calls2:8d} {down:8.3f} {dcum:8.3f}  {_name(key)}")


def run_profiles(large: Pair, small: Pair, root: Path, shm_root: Path | None, n: int, c: int) -> None:
    """cProfile of the runs behind the figures (slower than the timed runs: read ratios, not seconds)."""
    big, little = cProfile.Profile(), cProfile.Profile()
    run_incremental(large, root / "run", profile=big)
    run_incremental(small, root / "run", profile=little)
    profile_difference(f"incremental +{c} export + import, repo of {n} vs repo of {c}", big, little)
    profile_report(f"incremental +{c} into {n}: export + import", big, 15)
    prof = cProfile.Profile()
    out = (shm_root or root) / "profile-out"
    run_complete(large, root / "run", out, profile=prof)
    shutil.rmtree(root / "run")
    shutil.rmtree(out)
    profile_report(
        f"complete export of {n} to {'another filesystem (copies)' if shm_root else 'the same filesystem'}", prof
    )
    prof = cProfile.Profile()
    run_complete(large, root / "run", out, profile=prof, fmt="tgz")
    shutil.rmtree(root / "run")
    shutil.rmtree(out)
    profile_report(
        f"complete export of {n} --format tgz to {'another filesystem' if shm_root else 'the same filesystem'}", prof
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--packages", type=int, default=5000)
    ap.add_argument("--change", type=int, default=50)
    ap.add_argument("--size-kb", type=float, default=20, help="payload of each RPM (KB)")
    ap.add_argument("--repeat", type=int, default=3, help="median of this many runs")
    ap.add_argument("--dir", help="where to work (default: the system temp dir)")
    ap.add_argument("--shm", default="/dev/shm", help="another filesystem for the export without hardlinks")
    ap.add_argument(
        "--profile", action="store_true", help="print cProfile of the large incremental and complete export"
    )
    ap.add_argument("--quick", action="store_true", help="small sizes, one run: a smoke test")
    args = ap.parse_args()
    if args.quick:
        args.packages, args.change, args.size_kb, args.repeat = 300, 10, 4, 1

    n, c, payload = args.packages, args.change, int(args.size_kb * 1000)
    root = Path(tempfile.mkdtemp(prefix="iss-bench-ei-", dir=args.dir))
    shm_root = None
    started = time.perf_counter()

    def say(msg: str) -> None:
        print(msg, flush=True)

    try:
        from importlib.metadata import version as pkg_version

        cr_version = subprocess.run(["createrepo_c", "--version"], capture_output=True, text=True).stdout.split()[1]
        say(
            f"machine: {platform.node()}, nproc {os.cpu_count()}, {platform.machine()}, Python {platform.python_version()}, "
            f"SQLAlchemy {pkg_version('sqlalchemy')}, createrepo_c {cr_version}, load average {_load()}"
        )
        say(f"sizes: {n} packages + {c} new, payload {payload} B each; median of {args.repeat}; work dir {root}")

        # -- packages --------------------------------------------------------------------------------
        with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
            t = time.perf_counter()
            base = build_packages(root / "rpms" / "base", "pkg", n, payload, pool)
            change = build_packages(root / "rpms" / "change", "upd", c, payload, pool)
        rpm_bytes = sum(p.stat().st_size for p in base)
        say(
            f"built {n + c} RPMs ({rpm_bytes / n / 1000:.1f} KB each, {rpm_bytes / MB:.0f} MB) "
            f"in {time.perf_counter() - t:.1f} s"
        )

        # -- scenarios -----------------------------------------------------------------------------
        say(f"prepare large: {n} packages, then +{c}")
        large = prepare_pair(root / "large", base, change, say)
        say(f"prepare small: {c} packages, then the same +{c}")
        small = prepare_pair(root / "small", base[:c], change, say)

        # the floor's trees: base packages with repodata made for them (createrepo_c, cold)
        floor_base = yum_tree(root / "floor-base", base)
        t_setup = timed(lambda: sh(*CREATEREPO, floor_base))
        say(f"floor tree: {n} packages, createrepo_c (cold) {t_setup} s (setup)")

        # -- figures 1 and 2: incremental ------------------------------------------------------------
        say(f"\nfigure 1+2: incremental export (dir) + import, {BASE} -> {TARGET}")
        inc: dict[str, list] = {"large": [], "small": [], "floor": []}
        for i in range(args.repeat):
            e, m = run_incremental(large, root / "run")
            e2, m2 = run_incremental(small, root / "run")
            f = floor_incremental(floor_base, change, root / "floor-run")
            inc["large"].append((e, m))
            inc["small"].append((e2, m2))
            inc["floor"].append(f)
            say(
                f"  run {i + 1}: repo of {n}: export {e} + import {m} s | repo of {c}: export {e2} + import {m2} s | "
                f"floor (cp {c} + createrepo_c --update) {f} s"
            )
        large_total = median([e + m for e, m in inc["large"]])
        small_total = median([e + m for e, m in inc["small"]])
        floor_total = median(inc["floor"])
        say(
            f"  medians: repo of {n}: export {median([e for e, _ in inc['large']])} s, import "
            f"{median([m for _, m in inc['large']])} s; repo of {c}: export {median([e for e, _ in inc['small']])} s, "
            f"import {median([m for _, m in inc['small']])} s"
        )

        # -- figure 3: complete export ---------------------------------------------------------------
        say(f"\nfigure 3: complete export (dir) of {n} packages")
        comp: dict[str, list] = {
            "iss": [],
            "warm": [],
            "cold": [],
            "iss_other": [],
            "tar": [],
            "cp_r": [],
            "iss_tgz": [],
            "tar_gzip": [],
            "tar_copy": [],
        }
        shm_ok = Path(args.shm).is_dir() and os.stat(args.shm).st_dev != os.stat(root).st_dev
        if shm_ok:
            shm_root = Path(tempfile.mkdtemp(prefix="iss-bench-ei-", dir=args.shm))
            other = f"another filesystem ({args.shm})"
        else:
            other = "hardlink_exports=False"
            say(f"  {args.shm} is not another filesystem: the no-hardlink export uses {other} instead")
        elsewhere = shm_root or root
        # untimed: in a VM the first ~100 MB written to a tmpfs are several times slower (pages
        # touched for the first time), which would fall on whichever figure runs first
        floor_tar(base[0].parent, elsewhere / "warm.tar")
        for i in range(args.repeat):
            out = root / "complete-out"
            t_iss, bundle = run_complete(large, root / "run", out)
            shutil.rmtree(root / "run")
            t_warm = floor_complete(floor_base, floor_base / "repodata", root / "floor-run", update=True)
            t_cold = floor_complete(floor_base, floor_base / "repodata", root / "floor-run", update=False)
            # no hardlinks, every byte copied; reference: tar -c of the same bytes to the same place
            if shm_ok:
                t_other, other_bundle = run_complete(large, root / "run2", shm_root / "out")
                shutil.rmtree(root / "run2")
            else:
                t_other, other_bundle = run_nohardlink(large, root / "run2", root / "nohl-out")
            shutil.rmtree(other_bundle.parent)
            # the same bytes as one archive (--format tgz: package files stream from the store, only
            # the archive is written there); reference: tar -c of the same tree to the same place
            t_tgz, tgz = run_complete(large, root / "run3", elsewhere / "tgz-out", fmt="tgz")
            shutil.rmtree(root / "run3")
            shutil.rmtree(tgz.parent)
            t_tar = floor_tar(bundle, elsewhere / "ref.tar")
            t_tar_gzip = floor_tar_gzip(bundle, elsewhere / "ref.tar.gz")
            t_cp = floor_cp_r(bundle, elsewhere / "ref-cp")
            t_tar_copy = floor_tar_copy(bundle, elsewhere / "ref-tar-copy")
            shutil.rmtree(out)
            for key, value in (
                ("iss", t_iss),
                ("warm", t_warm),
                ("cold", t_cold),
                ("iss_other", t_other),
                ("tar", t_tar),
                ("cp_r", t_cp),
                ("iss_tgz", t_tgz),
                ("tar_gzip", t_tar_gzip),
                ("tar_copy", t_tar_copy),
            ):
                comp[key].append(value)
            say(
                f"  run {i + 1}: iss {t_iss} s | cp -al + createrepo_c --update {t_warm} s | cp -al + createrepo_c "
                f"cold {t_cold} s | iss, {other}: {t_other} s | iss tgz there {t_tgz} s | tar -c there {t_tar} s | "
                f"tar -c | gzip -1 there {t_tar_gzip} s | cp -r there {t_cp} s | tar -c | tar -x there {t_tar_copy} s"
            )
        t_iss_cold, _ = run_complete(large, root / "run", root / "complete-out", cold=True)
        shutil.rmtree(root / "run")
        shutil.rmtree(root / "complete-out")
        say(f"  iss with no index cache (cold, one run) {t_iss_cold} s")

        # -- figure 4: peak RSS ------------------------------------------------------------------------
        say(f"\nfigure 4: peak RSS of the iss CLI (child processes) on {n} packages")
        rss = rss_runs(large, root / "rss")
        for what, (t, r) in rss.items():
            say(f"  {what:28s} {r:7.1f} MiB  ({t:.2f} s)")

        # -- table -------------------------------------------------------------------------------------
        warm_floor, cold_floor = median(comp["warm"]), median(comp["cold"])
        cheap, dear = ("--update", "cold") if warm_floor.wall <= cold_floor.wall else ("cold", "--update")
        iss_complete = median(comp["iss"])
        print_table(
            [
                Row(f"1 incremental +{c}: repo of {n} vs repo of {c}", large_total, small_total, 1.5),
                Row(f"2 incremental +{c} into {n} vs cp + createrepo_c --update", large_total, floor_total, 5.0),
                Row(
                    f"3 complete {n} vs cp -al + createrepo_c {cheap} (cheaper floor)",
                    iss_complete,
                    min(warm_floor, cold_floor, key=lambda x: x.wall),
                    1.2,
                ),
                Row(
                    f"3 complete {n} vs cp -al + createrepo_c {dear} (info)",
                    iss_complete,
                    max(warm_floor, cold_floor, key=lambda x: x.wall),
                    1.2,
                    info=True,
                ),
                Row(
                    f"3 complete {n} no index cache vs cp -al + createrepo_c cold (info)",
                    t_iss_cold,
                    cold_floor,
                    1.2,
                    info=True,
                ),
                Row(
                    f"3 complete {n} dir without hardlinks vs tar -c | tar -x there",
                    median(comp["iss_other"]),
                    median(comp["tar_copy"]),
                    1.3,
                ),
                Row(
                    f"3 complete {n} dir without hardlinks vs cp -r there (info)",
                    median(comp["iss_other"]),
                    median(comp["cp_r"]),
                    1.3,
                    info=True,
                ),
                Row(
                    f"3 complete {n} dir without hardlinks vs tar -c into one archive there (info: {n} files vs one)",
                    median(comp["iss_other"]),
                    median(comp["tar"]),
                    1.3,
                    info=True,
                ),
                Row(
                    f"3 complete {n} --format tgz there vs tar -c there (info: + gzip CRC-32)",
                    median(comp["iss_tgz"]),
                    median(comp["tar"]),
                    1.3,
                    info=True,
                ),
                Row(
                    f"3 complete {n} --format tgz vs tar -c | gzip -1 there (info: the same format)",
                    median(comp["iss_tgz"]),
                    median(comp["tar_gzip"]),
                    1.3,
                    info=True,
                ),
                Row(f"4 peak RSS export {n} (MiB)", rss["export"][1], None, 150, "MB"),
                Row(f"4 peak RSS import {n} (MiB)", rss["import"][1], None, 150, "MB"),
            ],
            say,
        )

        if args.profile:
            run_profiles(large, small, root, shm_root, n, c)
        say(
            f"\ntotal bench time {time.perf_counter() - started:.0f} s; load average now {_load()} "
            "(other work on the machine makes single runs noisy: compare ratios, use --repeat)"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if shm_root is not None:
            shutil.rmtree(shm_root, ignore_errors=True)


def run_nohardlink(pair: Pair, work: Path, out: Path) -> tuple[Sample, Path]:
    """Complete export with a backend that copies instead of hardlinking (same filesystem)."""
    from iss_plugin.adapters.backends.local import LocalBackend
    from iss_plugin.bootstrap import App

    class CopyingApp(App):
        def backend_for(self, session):
            return LocalBackend(session, self.settings.store_path, self.settings.published_path, hardlink_exports=False)

    plain = make_app(clone(pair.src, work / "source"), "source")
    app = CopyingApp(plain.settings)
    try:
        warm(app)
        t = timed(lambda: export(app, incremental=False, version=BASE, out=out))
        return t, out
    finally:
        app.close()
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
