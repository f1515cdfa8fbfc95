"""Pulp benchmark: iss's incremental propagation on two Pulps against Pulp's own PulpExporter/PulpImporter.

    .venv/bin/python bench/pulp.py [--sizes 1000,5000] [--change 0.01|50] [--remove 0.005|25] [--size-kb 20]
                                   [--dir DIR] [--cold] [--profile] [--quick]

Needs the two Pulp servers of deploy/pulp (`deploy/pulp/pulpctl start --instances 2`). For every size N,
in ONE run (the performance section of issue 4):

(a) iss through the Pulp backend: a source iss on Pulp 1 and a destination iss on Pulp 2 (SQLite data
    dirs of their own, distinct `pulp.repo_prefix`). Setup, not timed: a repository of N packages
    (~20 KB RPMs from iss_plugin.adapters.fixtures), content view published 1.0, exported complete and
    imported; then the change (+1% new packages, -0.5% removed) and publish 2.0 (which makes the Pulp
    publication of the pinned version, as Katello publishes a content view version; printed in the
    setup line, not timed: Pulp's pair needs no publication, its exporter reads versions). TIMED: the incremental
    export 1.0 -> 2.0 on the source (services/exporting.export_bundle, format dir) and its import on the
    destination (services/importing.import_bundle: import, verification, publication on Pulp 2).
(b) Pulp's own pair for the same change, the same repository on Pulp 1: a PulpExporter (path under
    instance 1's exports dir) exports the version of 1.0 in full (setup), a PulpImporter on Pulp 2
    (repo_mapping onto a repository of its own) imports it (setup); TIMED: the incremental export
    (`versions` = the version of 2.0, `start_versions` = that of 1.0, full=False) and its import. The
    export files are hardlinked into instance 2's imports dir (setup, not timed: Pulp 2 may read only
    there). The result must hold the same package set as the source version (count and digest).

iss runs first, then Pulp's pair: Pulp 2 already holds the new packages when Pulp's import runs (iss's
import uploaded them), which can only help Pulp's pair. Tasks of both are awaited with the same polling
(from 50 ms, x1.5, at most 0.25 s: pulp/client.py POLL_*, the same constants), so pulp-glue's fixed 1 s poll is charged to
neither; Pulp's own task times (created -> finished) are printed next to the client's wall times.

iss's process-wide caches (version package sets, the login) are warm from the setup, as in a
long-running iss consumer; --cold clears the package-set caches before each timed step (what a fresh
`iss` CLI process pays, minus its login).

Prints per size: iss export, import, total; Pulp's export, import, total; the ratio (goal: iss <= 0.15x
of Pulp's pair at the largest size, 5,000 by default), and iss's import time at the largest size vs the
smallest (goal <= 1.5x: the import follows the change, not the repository; with a 1% change the change
itself is 5x larger at 5,000 than at 1,000: `--change 50 --remove 25` applies the same change at every
size and tells what follows the repository from what follows the change). Where the time goes: every
Pulp task of the timed steps (client wait and Pulp's own time); --profile adds a cProfile of iss's
timed steps. Figures from one run: never asserts on time, exits 0 (a missed goal prints "GOAL MISSED").
Everything it creates in Pulp (repositories, remotes, distributions, exporters, importers; under a
unique prefix) and on disk is removed at the end; content stays in Pulp as orphans, as after the tests.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import shutil
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export_import import ACTOR, CV, ORG, PRODUCT, REPO, _load, build_packages, export, import_

FULL, TARGET = "1.0", "2.0"
INCOMING = "#incoming"  # = iss_plugin.adapters.backends.pulp.INCOMING


def say(msg: str = "") -> None:
    print(msg, flush=True)


def _ts(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _span(tasks: list[dict]) -> float | None:
    """Pulp's own time for a set of tasks: first created -> last finished."""
    created = [_ts(t.get("pulp_created")) for t in tasks]
    finished = [_ts(t.get("finished_at")) for t in tasks]
    if not tasks or None in created or None in finished:
        return None
    return (max(finished) - min(created)).total_seconds()  # type: ignore[type-var]


def _task_line(t: dict) -> str:
    created, started, finished = _ts(t.get("pulp_created")), _ts(t.get("started_at")), _ts(t.get("finished_at"))
    queued = (started - created).total_seconds() if created and started else 0.0
    ran = (finished - started).total_seconds() if started and finished else 0.0
    return f"{ran:7.2f} s running ({queued:5.2f} s queued): {t.get('name', '?').rsplit('.', 1)[-1]}"


# --- packages (as bench/export_import.py builds them) ---------------------------------------------

# --- iss on a Pulp instance ------------------------------------------------------------------------


def make_app(instance, data_dir: Path, server_id: str, repo_prefix: str):
    from iss_plugin.bootstrap import App
    from iss_plugin.services.server_setup import initialize
    from iss_plugin.settings import load_settings

    pulp = {
        "url": instance.url,
        "username": instance.env.get("ISS_PULP__USERNAME", "admin"),
        "password_file": str(instance.password_file),
        "shared_export_dir": str(instance.export_dir),
        "shared_import_dir": str(instance.import_dir),
        "repo_prefix": repo_prefix,
    }
    if instance.env.get("ISS_PULP__CONTENT_ORIGIN"):
        pulp["content_origin"] = instance.env["ISS_PULP__CONTENT_ORIGIN"]
    settings = load_settings(None, data_dir=str(data_dir), server_id=server_id, backend="pulp", pulp=pulp)
    initialize(settings)
    return App(settings)


def pins(app, version: str) -> dict:
    from iss_plugin.services import content_views

    v = next(v for v in content_views.list_versions(app.uow(), ORG, CV) if v["version"] == version)
    [r] = v["repositories"]
    return r


def clear_set_caches() -> None:
    """What a fresh iss process would not have: the backend's package-set and file-name caches."""
    from iss_plugin.adapters.backends import pulp as pulp_backend

    with pulp_backend._SETS._lock:
        pulp_backend._SETS._d.clear()
    pulp_backend._FILENAMES.clear()


# --- Pulp's own pair, through pulp-glue ------------------------------------------------------------


def wait_group(session, group: dict, doing: str) -> list[dict]:
    """Wait for a task group with iss's polling (pulp-glue's wait_for_task_group polls once a second);
    returns the group's finished tasks. Raises on a failed or canceled task, with Pulp's error text."""
    from iss_plugin.adapters.backends.pulp.client import POLL_FACTOR, POLL_FIRST, POLL_MAX
    from iss_plugin.domain.errors import BackendError

    ctx = session.ctx
    delay, deadline = POLL_FIRST, time.monotonic() + session.conn.timeout_seconds
    # not all_tasks_dispatched: Pulp leaves it false after a PulpImporter import (seen with pulpcore 3.123);
    # the pulp_import task dispatches the per-repository tasks before it ends, so "nothing waiting or
    # running" is the end (pulp-glue's test too)
    while not group["tasks"] or group["waiting"] + group["running"] + group["canceling"] > 0:
        if time.monotonic() > deadline:
            raise BackendError(f"task group {group['pulp_href']} ({doing}) did not finish in time")
        time.sleep(delay)
        delay = min(delay * POLL_FACTOR, POLL_MAX)
        group = ctx.call("task_groups_read", parameters={"task_group_href": group["pulp_href"]})
    tasks = [ctx.call("tasks_read", parameters={"task_href": t["pulp_href"]}) for t in group["tasks"]]
    failed = [t for t in tasks if t["state"] != "completed"]
    if failed:
        errors = "; ".join(str((t.get("error") or {}).get("description") or t["state"]) for t in failed)
        raise BackendError(f"Pulp task group failed while {doing}: {errors}")
    return tasks


@dataclass
class PulpPair:
    """A PulpExporter on Pulp 1 for one repository, a PulpImporter on Pulp 2 mapping it onto a repository
    of its own; export files hardlinked from instance 1's exports dir into instance 2's imports dir."""

    src_session: object
    dst_session: object
    repo_name: str  # on Pulp 1
    dest_name: str  # on Pulp 2
    export_dir: Path  # under instance 1's exports dir
    import_dir: Path  # under instance 2's imports dir
    name: str
    exporter: object = None
    importer: object = None
    versions_href: str = ""

    def setup(self) -> None:
        from pulp_glue.core.context import PulpExporterContext, PulpImporterContext
        from pulp_glue.rpm.context import PulpRpmRepositoryContext

        src, dst = self.src_session.ctx, self.dst_session.ctx
        repo = PulpRpmRepositoryContext(src, entity={"name": self.repo_name})
        self.versions_href = repo.entity["versions_href"]
        self.export_dir.mkdir(parents=True, exist_ok=True)
        self.import_dir.mkdir(parents=True, exist_ok=True)
        self.exporter = PulpExporterContext(src)
        self.exporter.create(body={"name": self.name, "path": str(self.export_dir), "repositories": [repo.pulp_href]})
        PulpRpmRepositoryContext(dst).create(body={"name": self.dest_name})
        self.importer = PulpImporterContext(dst)
        self.importer.create(body={"name": self.name, "repo_mapping": {self.repo_name: self.dest_name}})

    def export(self, version: int, start: int | None) -> tuple[list[Path], float | None, dict]:
        """One export task; returns the files it wrote, Pulp's time for it and the finished task."""
        from pulp_glue.core.context import PulpExportContext

        body: dict = {"versions": [f"{self.versions_href}{version}/"]}
        if start is not None:
            body.update(start_versions=[f"{self.versions_href}{start}/"], full=False)
        exports = PulpExportContext(self.src_session.ctx)
        exports.exporter = self.exporter.entity
        task = exports.create(body=body, non_blocking=True)
        task = self.src_session.wait_task(
            task, f"PulpExporter export of version {version}" + (f" from {start}" if start is not None else "")
        )
        entity = self.src_session.ctx.call(
            "exporters_core_pulp_exports_read", parameters={"pulp_pulp_export_href": task["created_resources"][0]}
        )
        return [Path(p) for p in entity["output_file_info"]], _span([task]), task

    def link(self, files: list[Path]) -> Path:
        """Hardlink (copy across filesystems) the export files where Pulp 2 may read; the tarball's path."""
        tarball = None
        for f in files:
            target = self.import_dir / f.name
            try:
                os.link(f, target)
            except OSError:
                shutil.copyfile(f, target)
            if f.name.endswith(".tar.gz") or f.name.endswith(".tar"):
                tarball = target
        if tarball is None:
            raise SystemExit(f"PulpExporter wrote no tarball: {[f.name for f in files]}")
        return tarball

    def import_(self, tarball: Path) -> tuple[float | None, list[dict]]:
        group = self.dst_session.ctx.call(
            "importers_core_pulp_imports_create",
            non_blocking=True,
            parameters={"pulp_importer_href": self.importer.pulp_href},
            body={"path": str(tarball)},
        )
        tasks = wait_group(self.dst_session, group, f"PulpImporter import of {tarball.name}")
        return _span(tasks), tasks

    def cleanup(self) -> None:
        """The importer and the exporter (with its exports) and their files; the repository on Pulp 2 is
        deleted with iss's repositories (it is under a prefix of its own)."""
        for what, ctx in (("importer", self.importer), ("exporter", self.exporter)):
            if ctx is None:
                continue
            try:
                ctx.delete()
            except Exception as e:
                say(f"  (clean-up: could not delete the Pulp pair's {what}: {e})")
        shutil.rmtree(self.export_dir, ignore_errors=True)
        shutil.rmtree(self.import_dir, ignore_errors=True)


# --- one size ----------------------------------------------------------------------------------------


@dataclass
class Result:
    n: int
    added: int
    removed: int
    iss_export: float
    iss_import: float
    pair_export: float
    pair_import: float
    pair_export_pulp: float | None
    pair_import_pulp: float | None
    setup: dict[str, float]
    iss_tasks: list[tuple[str, str, float, float | None]]  # (server, doing, waited s, Pulp's s)
    pair_tasks: list[str]

    @property
    def iss_total(self) -> float:
        return self.iss_export + self.iss_import

    @property
    def pair_total(self) -> float:
        return self.pair_export + self.pair_import

    @property
    def import_version_tasks(self) -> float:
        """Waited on Pulp 2 for the tasks that make and publish the new version (modify or mirror sync,
        publication): Pulp's own work per version, which follows the repository's size."""
        return sum(
            w
            for server, doing, w, _ in self.iss_tasks
            if server == "Pulp 2"
            and (
                doing.startswith(("importing ", "publishing "))
                or (doing.startswith("syncing ") and INCOMING not in doing)
            )
        )


def run_size(n: int, args, tag: str, root: Path, pool: ProcessPoolExecutor, profiles: dict | None) -> Result:
    from iss_plugin.adapters.backends.pulp import PulpBackend
    from iss_plugin.adapters.backends.pulp_instances import find_instance
    from iss_plugin.services import catalog, content_views

    inst1, inst2 = find_instance(1), find_instance(2)
    k = max(1, round(n * args.change if args.change < 1 else args.change))
    r = round(n * args.remove if args.remove < 1 else args.remove)
    payload = int(args.size_kb * 1000)
    work = root / f"n{n}"
    prefix = f"b{tag}n{n}"  # in package names: packages no earlier run gave Pulp
    setup: dict[str, float] = {}

    t = time.perf_counter()
    base = build_packages(work / "rpms", f"{prefix}-", n, payload, pool)
    new = build_packages(work / "rpms", f"{prefix}-", k, payload, pool, start=n)
    say(
        f"  built {n} + {k} RPMs ({sum(p.stat().st_size for p in base) / n / 1000:.1f} KB each) "
        f"in {time.perf_counter() - t:.1f} s"
    )

    src_prefix, dst_prefix, pair_prefix = f"{prefix}-src/", f"{prefix}-dst/", f"{prefix}-pair/"
    src = make_app(inst1, work / "source", "source", src_prefix)
    dst = make_app(inst2, work / "destination", "destination", dst_prefix)
    src_b, dst_b = PulpBackend.from_settings(src.settings), PulpBackend.from_settings(dst.settings)
    pair_b = PulpBackend.from_settings(dst.settings, repo_prefix=pair_prefix)
    key = f"{ORG}/{PRODUCT}/{REPO}"
    pair = PulpPair(
        src_b.pulp,
        dst_b.pulp,
        src_b.pulp_name(key),
        pair_b.pulp_name(key),
        inst1.export_dir / f"iss-bench-{prefix}",
        inst2.import_dir / f"iss-bench-{prefix}",
        f"iss-bench-{prefix}",
    )
    try:
        # -- setup: the repository, 1.0, complete export + import (iss) -----------------------------------
        repo = f"{PRODUCT}/{REPO}"
        catalog.create_organization(src.uow(), "ACME Corp", ORG, ACTOR)
        catalog.create_product(src.uow(), ORG, "Bench", PRODUCT, False, None, ACTOR)
        catalog.create_repository(src.uow(), ORG, PRODUCT, "Repo", REPO, None, "yum", ACTOR)
        t = time.perf_counter()
        catalog.upload_packages(src.uow(), ORG, repo, base, ACTOR, src.server_id)
        setup["upload to Pulp 1"] = time.perf_counter() - t
        content_views.create_content_view(src.uow(), ORG, "CV", CV, True, [repo], ACTOR)
        content_views.publish(src.uow(), ORG, CV, None, ACTOR, src.server_id)
        catalog.create_organization(dst.uow(), "ACME Corp", ORG, ACTOR)
        catalog.add_trusted_source(dst.uow(), "source", src.signer.public_pem, [ORG], ACTOR)
        t = time.perf_counter()
        full = export(src, incremental=False, version=FULL, out=work / "exports")
        setup["iss complete export"] = time.perf_counter() - t
        t = time.perf_counter()
        got = import_(dst, full["path"])
        setup["iss complete import"] = time.perf_counter() - t
        if got["state"] != "imported":
            raise SystemExit(f"iss complete import did not import: {got}")

        # -- setup: Pulp's pair, full export + import of the same version -----------------------------------
        v_full = pins(src, FULL)["backend_version"]
        pair.setup()
        t = time.perf_counter()
        files, _, _ = pair.export(v_full, None)
        setup["Pulp complete export"] = time.perf_counter() - t
        t = time.perf_counter()
        pair.import_(pair.link(files))
        setup["Pulp complete import"] = time.perf_counter() - t
        check_pair(pair_b, key, pins(src, FULL), "complete")

        # -- the change: +k new, -r removed, publish 2.0 --------------------------------------------------
        t = time.perf_counter()
        catalog.upload_packages(src.uow(), ORG, repo, new, ACTOR, src.server_id)
        if r:
            nevras = sorted(catalog.repository_info(src.uow(), ORG, repo)["packages"])
            gone = [x for x in nevras if x.startswith(f"{prefix}-")][:r]
            catalog.remove_packages(src.uow(), ORG, repo, gone, ACTOR, src.server_id)
        setup["change"] = time.perf_counter() - t
        t = time.perf_counter()
        content_views.publish(src.uow(), ORG, CV, None, ACTOR, src.server_id)
        setup["publish 2.0 (with its Pulp publication)"] = time.perf_counter() - t
        target = pins(src, TARGET)
        v_target = target["backend_version"]
        say("  setup (not timed): " + ", ".join(f"{what} {s:.1f} s" for what, s in setup.items()))

        # -- TIMED (a): iss's incremental export + import ---------------------------------------------------
        out = work / "inc"
        for b in (src_b, dst_b):
            b.pulp.task_log.clear()
        box: dict = {}

        def timed(step: str, fn) -> float:
            if args.cold:
                clear_set_caches()
            prof = cProfile.Profile() if profiles is not None else None
            if prof:
                prof.enable()
            t = time.perf_counter()
            try:
                fn()
            finally:
                took = time.perf_counter() - t
                if prof:
                    prof.disable()
                    profiles[(n, step)] = prof
            return took

        iss_export = timed(
            "export", lambda: box.update(b=export(src, incremental=True, version=TARGET, out=out, from_version=FULL))
        )
        iss_import = timed("import", lambda: box.update(r=import_(dst, box["b"]["path"])))
        if box["r"]["state"] != "imported":
            raise SystemExit(f"iss incremental import did not import: {box['r']}")
        got = pins(dst, TARGET)
        if (got["package_count"], got["package_set_digest"]) != (target["package_count"], target["package_set_digest"]):
            raise SystemExit(f"iss's destination holds {got}, the source {target}")
        iss_tasks = [("Pulp 1", d, w, ran) for d, w, ran in src_b.pulp.task_log]
        iss_tasks += [("Pulp 2", d, w, ran) for d, w, ran in dst_b.pulp.task_log]
        say(
            f"  (a) iss incremental {FULL} -> {TARGET} (+{k} -{r}): export {iss_export:.2f} s + import "
            f"{iss_import:.2f} s = {iss_export + iss_import:.2f} s; destination: {got['package_count']} packages, "
            "digest equal to the source's"
        )

        # -- TIMED (b): Pulp's incremental export + import ----------------------------------------------------
        t = time.perf_counter()
        files, pulp_exp, exp_task = pair.export(v_target, v_full)
        pair_export = time.perf_counter() - t
        t = time.perf_counter()
        tarball = pair.link(files)
        link_s = time.perf_counter() - t
        t = time.perf_counter()
        pulp_imp, imp_tasks = pair.import_(tarball)
        pair_import = time.perf_counter() - t
        count = check_pair(pair_b, key, target, "incremental")
        size = sum(f.stat().st_size for f in files)
        say(
            f"  (b) Pulp's pair incremental: export {pair_export:.2f} s (Pulp {pulp_exp or 0:.2f} s, "
            f"{size / 1e6:.1f} MB) + import {pair_import:.2f} s (Pulp {pulp_imp or 0:.2f} s, {len(imp_tasks)} tasks) "
            f"= {pair_export + pair_import:.2f} s; {count} packages, digest equal to the source's "
            f"(hardlink into Pulp 2's imports, not timed: {link_s * 1000:.1f} ms)"
        )
        pair_tasks = [f"Pulp 1 export  {_task_line(exp_task)}"] + [
            f"Pulp 2 import  {_task_line(x)}" for x in sorted(imp_tasks, key=lambda x: x["pulp_created"])
        ]
        return Result(
            n, k, r, iss_export, iss_import, pair_export, pair_import, pulp_exp, pulp_imp, setup, iss_tasks, pair_tasks
        )
    finally:
        t = time.perf_counter()
        pair.cleanup()
        for b in (src_b, dst_b, pair_b):
            for repo_key in b.list_repositories():
                try:
                    b.delete_repository(repo_key)
                except Exception as e:
                    say(f"  (clean-up: could not delete {repo_key}: {e})")
        src.close()
        dst.close()
        shutil.rmtree(work, ignore_errors=True)
        say(f"  clean-up {time.perf_counter() - t:.1f} s")


def check_pair(pair_b, key: str, want: dict, what: str) -> int:
    """The Pulp pair's repository on Pulp 2 must hold exactly the source version's packages."""
    latest = pair_b.list_versions(key)[-1]
    if (latest.package_count, latest.digest) != (want["package_count"], want["package_set_digest"]):
        raise SystemExit(
            f"Pulp's {what} import made {latest.package_count} packages ({latest.digest}), the source "
            f"version holds {want['package_count']} ({want['package_set_digest']})"
        )
    return latest.package_count


# --- report -------------------------------------------------------------------------------------------


def report(results: list[Result], args, profiles: dict | None) -> None:
    say(
        f"\n{'packages':>8s} {'change':>9s} | {'iss export':>10s} {'import':>7s} {'total':>7s} | "
        f"{'Pulp export':>11s} {'import':>7s} {'total':>7s} | {'iss/Pulp':>8s}"
    )
    for x in results:
        say(
            f"{x.n:8d} {f'+{x.added} -{x.removed}':>9s} | {x.iss_export:10.2f} {x.iss_import:7.2f} {x.iss_total:7.2f} | "
            f"{x.pair_export:11.2f} {x.pair_import:7.2f} {x.pair_total:7.2f} | {x.iss_total / x.pair_total:7.3f}x"
        )
    say(
        "(wall seconds of the client, one run; Pulp's pair: PulpExporter incremental export + PulpImporter import;\n"
        " its tasks' own times are in the breakdown below)"
    )

    for x in results:
        say(
            f"\nwhere the time goes at {x.n} packages: iss ({len(x.iss_tasks)} Pulp tasks; client wait, Pulp's own "
            "time created -> finished)"
        )
        waited = {"Pulp 1": 0.0, "Pulp 2": 0.0}
        for server, doing, w, ran in x.iss_tasks:
            waited[server] += w
            say(f"    {server}: {w:6.2f} s waited, {ran or 0:6.2f} s in Pulp: {doing}")
        say(
            f"    export: {waited['Pulp 1']:.2f} s of {x.iss_export:.2f} s waiting for tasks, "
            f"{x.iss_export - waited['Pulp 1']:.2f} s elsewhere (API reads, files, manifest, database)"
        )
        say(
            f"    import: {waited['Pulp 2']:.2f} s of {x.iss_import:.2f} s waiting for tasks, "
            f"{x.iss_import - waited['Pulp 2']:.2f} s elsewhere (API reads, uploads, checks, database)"
        )
        say(f"  Pulp's pair ({len(x.pair_tasks)} tasks):")
        for line in x.pair_tasks:
            say(f"    {line}")

    goals = []
    big, small = max(results, key=lambda x: x.n), min(results, key=lambda x: x.n)
    ratio = big.iss_total / big.pair_total
    info = []  # (what, value, goal) printed but not judged
    (goals if big.n >= 5000 else info).append(
        (f"iss incremental (export + import) vs Pulp's pair at {big.n}", ratio, 0.15)
    )
    if big.n != small.n:
        goals.append(
            (
                f"iss incremental import time at {big.n} vs at {small.n} (follows the change)",
                big.iss_import / small.iss_import,
                1.5,
            )
        )
    say(f"\n{'goal':72s} {'ratio':>7s} {'goal':>6s}  met?")
    for what, value, goal in goals:
        say(f"{what:72s} {value:6.3f}x {goal:5.2f}x  {'yes' if value <= goal else 'NO'}")
    for what, value, goal in info:
        say(f"{'(info) ' + what:72s} {value:6.3f}x {goal:5.2f}x  {'yes' if value <= goal else 'no'}")
    if big.n != small.n:
        say(
            f"{'(info) iss incremental export at ' + str(big.n) + ' vs at ' + str(small.n):72s} "
            f"{big.iss_export / small.iss_export:6.3f}x"
        )
        say(
            f"{'(info) Pulp pair import at ' + str(big.n) + ' vs at ' + str(small.n):72s} "
            f"{big.pair_import / small.pair_import:6.3f}x"
        )
        say(
            f"{'(info) within iss import: Pulp making + publishing the version, ' + str(big.n) + ' vs ' + str(small.n):72s} "
            f"{big.import_version_tasks / small.import_version_tasks:6.3f}x  "
            f"({small.import_version_tasks:.2f} s -> {big.import_version_tasks:.2f} s)"
        )
        rest_big, rest_small = big.iss_import - big.import_version_tasks, small.iss_import - small.import_version_tasks
        say(
            f"{'(info) iss import without those two Pulp tasks, ' + str(big.n) + ' vs ' + str(small.n):72s} "
            f"{rest_big / rest_small:6.3f}x  ({rest_small:.2f} s -> {rest_big:.2f} s)"
        )
    else:
        say("(the import-scaling goal needs two sizes: --sizes 1000,5000)")
    if big.n < 5000:
        say(f"(the ratio goal is stated at 5,000 packages; this run's largest size is {big.n}: not judged)")
    for what, value, goal in goals:
        if value > goal:
            say(f"GOAL MISSED: {what}: {value:.3f}x > {goal:g}x")

    if profiles:
        profile_report(profiles, big.n, small.n)


def _stats(prof: cProfile.Profile) -> dict[tuple, tuple]:
    """(file, line, function) -> (calls, own s, cumulative s) of iss's and pulp-glue's frames (threads other
    than the main one, the upload workers, are not profiled: their time shows as the pool's wait)."""
    keep = ("iss_plugin", "pulp_glue", "concurrent")
    return {
        k: (v[1], v[2], v[3])
        for k, v in pstats.Stats(prof).stats.items()
        if any(part in k[0] for part in keep) or k[2] == "<built-in method time.sleep>"
    }


def _name(key: tuple) -> str:
    file, line, func = key
    return f"{Path(file).parent.name}/{Path(file).name}:{line}({func})" if line else func


def profile_report(profiles: dict, big: int, small: int, lines: int = 25) -> None:
    for step in ("export", "import"):
        stats = _stats(profiles[(big, step)])
        say(f"\n--- profile: iss's incremental {step} at {big} packages, top {lines} by cumulative ---")
        say(f"{'calls':>8s} {'own s':>8s} {'cum s':>8s}  function")
        for key, (calls, own, cum) in sorted(stats.items(), key=lambda kv: -kv[1][2])[:lines]:
            say(f"{calls:8d} {own:8.3f} {cum:8.3f}  {_name(key)}")
        if big == small:
            continue
        little = _stats(profiles[(small, step)])
        say(
            f"\n--- profile: what grows with the repository in the {step}: {big} minus {small}, "
            f"top {lines} by cumulative difference ---"
        )
        say(f"{'calls L':>8s} {'calls S':>8s} {'cum L':>8s} {'cum +s':>8s}  function")
        rows = [
            (cum - little.get(key, (0, 0.0, 0.0))[2], calls, little.get(key, (0, 0.0, 0.0))[0], cum, key)
            for key, (calls, own, cum) in stats.items()
        ]
        for dcum, calls, calls2, cum, key in sorted(rows, key=lambda r: -r[0])[:lines]:
            say(f"{calls:8d} {calls2:8d} {cum:8.3f} {dcum:8.3f}  {_name(key)}")


def _share(x: float) -> str:
    return f"{x:.1%}" if x < 1 else f"{x:g} packages"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,5000", help="repository sizes, comma-separated")
    ap.add_argument(
        "--change",
        type=float,
        default=0.01,
        help="new packages: a share of the repository (< 1) or a count (>= 1: the same at every size)",
    )
    ap.add_argument(
        "--remove",
        type=float,
        default=0.005,
        help="removed packages: a share of the repository (< 1) or a count (>= 1)",
    )
    ap.add_argument("--size-kb", type=float, default=20, help="payload of each RPM (KB)")
    ap.add_argument("--dir", help="where to work (default: the system temp dir)")
    ap.add_argument("--cold", action="store_true", help="clear iss's package-set caches before each timed step")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="cProfile of iss's timed steps (and what grows from the smallest size to the largest)",
    )
    ap.add_argument("--quick", action="store_true", help="one small size (200): a smoke test")
    args = ap.parse_args()
    sizes = [200] if args.quick else sorted({int(s) for s in args.sizes.split(",") if s.strip()})

    from importlib.metadata import version as pkg_version

    from iss_plugin.adapters.backends.pulp_instances import find_instance, reachable

    for number in (1, 2):
        try:
            problem = reachable(find_instance(number))
        except FileNotFoundError as e:
            problem = f"Pulp instance {number} was never started ({e.filename} is missing)"
        if problem:
            say(f"{problem}; start both with: deploy/pulp/pulpctl install && deploy/pulp/pulpctl start --instances 2")
            sys.exit(2)

    tag = uuid.uuid4().hex[:8]
    root = Path(tempfile.mkdtemp(prefix="iss-bench-pulp-", dir=args.dir))
    started = time.perf_counter()
    profiles: dict | None = {} if args.profile else None
    say(
        f"machine: {platform.node()}, nproc {os.cpu_count()}, Python {platform.python_version()}, "
        f"pulp-glue {pkg_version('pulp-glue')}, load average {_load()}"
    )
    say(
        f"Pulp 1 {find_instance(1).url}, Pulp 2 {find_instance(2).url}; sizes {sizes}, change +{_share(args.change)} "
        f"-{_share(args.remove)}, payload {args.size_kb:g} KB; run tag {tag}; work dir {root}"
        + ("; cold package-set caches" if args.cold else "")
    )
    results = []
    try:
        with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
            for n in sizes:
                say(f"\n{n} packages:")
                results.append(run_size(n, args, tag, root, pool, profiles))
        report(results, args, profiles)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    say(
        f"\ntotal bench time {time.perf_counter() - started:.0f} s; load average now {_load()} "
        "(other work on the machine makes single runs noisy)"
    )


if __name__ == "__main__":
    main()
