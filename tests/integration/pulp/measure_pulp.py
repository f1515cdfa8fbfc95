"""Timings of the Pulp backend on the two Pulps of deploy/pulp/pulpctl (a measurement, not a test).

    .venv/bin/python -m tests.integration.pulp.measure_pulp [--packages 1000] [--change 0.01]

Prints: upload of N packages, full export + import, incremental export of a 1% change (new
packages and removals) + its import, and for every Pulp task the client's wait against the time
Pulp took from the task's creation to its end (is task polling a large share?)."""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from iss_plugin.adapters.backends.base import ImportExpectation
from iss_plugin.adapters.fixtures import build_rpms, file_sha256
from tests.integration.pulp.support import new_prefix, purge


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packages", type=int, default=1000)
    ap.add_argument("--change", type=float, default=0.01)
    args = ap.parse_args()
    from iss_plugin.adapters.backends.pulp_instances import find_instance

    src = find_instance(1).backend(repo_prefix=new_prefix())
    dst = find_instance(2).backend(repo_prefix=src.repo_prefix)
    repo = "ACME/bench/measure"
    n, k = args.packages, max(1, int(args.packages * args.change))
    work = Path(tempfile.mkdtemp(prefix="iss-pulp-measure-"))
    rows: list[tuple[str, float]] = []

    def timed(what: str, fn):
        t = time.perf_counter()
        out = fn()
        rows.append((what, time.perf_counter() - t))
        print(f"{what:<48} {rows[-1][1]:8.2f} s", flush=True)
        return out

    try:
        for b in (src, dst):
            b.ensure_repository(repo)
        tag = src.repo_prefix.strip("/")  # packages no earlier run uploaded: Pulp holds none of them
        base_files = build_rpms(work / "base", n, prefix=f"m{tag}-")
        new_files = build_rpms(work / "new", k, prefix=f"m{tag}-", start=n)
        v1 = timed(f"upload {n} packages (add_packages)", lambda: src.add_packages(repo, base_files))
        timed(f"upload the same {n} again (no-op)", lambda: src.add_packages(repo, base_files))
        timed("list_versions", lambda: src.list_versions(repo))
        timed(f"list_packages ({n})", lambda: src.list_packages(repo, v1))
        info = {v.number: v for v in src.list_versions(repo)}
        timed(f"export full ({n})", lambda: src.export_version(repo, v1, None, work / "full"))
        dv1 = timed(
            f"import full ({n}) on Pulp 2",
            lambda: dst.import_tree(
                repo, work / "full", ImportExpectation(None, (), info[v1].digest, info[v1].package_count)
            ),
        )
        src.add_packages(repo, new_files)
        removed = [file_sha256(f) for f in base_files[: k // 2]]
        v3 = src.remove_packages(repo, removed)
        info = {v.number: v for v in src.list_versions(repo)}
        tree = timed(
            f"export incremental (+{k} -{len(removed)})", lambda: src.export_version(repo, v3, v1, work / "inc")
        )
        print(f"  incremental tree: {tree.new_packages} package files, {len(tree.files)} files")
        expect = ImportExpectation(dv1, tuple(removed), info[v3].digest, info[v3].package_count)
        dst.pulp.task_log.clear()
        timed("import incremental on Pulp 2", lambda: dst.import_tree(repo, work / "inc", expect))
        timed("import incremental again (no-op)", lambda: dst.import_tree(repo, work / "inc", expect))
        for name, b in (("Pulp 1", src), ("Pulp 2 (incremental import)", dst)):
            waited = sum(w for _, w, _ in b.pulp.task_log)
            ran = sum(r or 0 for _, _, r in b.pulp.task_log)
            print(
                f"{name}: {len(b.pulp.task_log)} tasks, client waited {waited:.2f} s, Pulp took {ran:.2f} s "
                f"(polling overhead {waited - ran:+.2f} s)"
            )
            for doing, w, r in b.pulp.task_log:
                print(f"    {w:6.2f} s waited, {r or 0:6.2f} s in Pulp: {doing}")
    finally:
        purge(src)
        purge(dst)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
