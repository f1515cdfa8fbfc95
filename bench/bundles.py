"""Bundle writer/reader benchmark: finalize and open+verify against tar(1) on the same bytes.

    .venv/bin/python bench/bundles.py [--files 5000] [--size 20480] [--runs 3] [--dir /dev/shm]

Stages N random files (incompressible, like RPMs) as an export would, then measures, side by
side in one run: `tar -cf`, `tar -czf` (gzip -6), `tar -c | gzip -1`, and finalize_bundle as a
directory, tar.gz, ISO and chunked tar.gz; then open_bundle + verify_bundle for each. Every
operation runs in a fresh subprocess so its peak RSS is its own (jsonschema is imported before
timing: a long-running worker pays that once; a one-shot CLI pays ~0.1 s more). Best of --runs
for wall and for CPU time (CPU time is steadier on a shared machine). Not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_source(root: Path, files: int, size: int) -> None:
    known = []
    for i in range(files):
        name = f"pkg{i:05d}-1.0-1.noarch.rpm"
        rel = f"repos/prod/repo/Packages/{'abcdefghijklmnopqrstuvwxyz'[i % 26]}/{name}"
        data = os.urandom(size)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        known.append([rel, hashlib.sha256(data).hexdigest(), size])
    (root / "repos/prod/repo/repodata").mkdir(parents=True)
    (root / "repos/prod/repo/repodata/repomd.xml").write_text("<repomd/>\n" * 200)
    (root / "products.csv").write_text("product_label,repository_label\nprod,repo\n")
    (root.parent / "known.json").write_text(json.dumps(known))


def worker(op: str, base: Path) -> dict:
    """One measured operation (in its own process)."""
    from iss_plugin.adapters.bundles import stream
    from iss_plugin.adapters.bundles.reader import TrustedKey, open_bundle, verify_bundle
    from iss_plugin.adapters.bundles.signing import load_signer
    from iss_plugin.adapters.bundles.writer import finalize_bundle
    from iss_plugin.domain.manifest import (
        BundleManifest,
        ContentViewRef,
        FileEntry,
        ProductEntry,
        RepositoryEntry,
        VersionRef,
    )

    signer = load_signer(base / "keys")
    out = base / "out"
    import schemas

    schemas.validator("bundle/manifest.v1.json")  # a worker process pays this import once, not per bundle
    if op.startswith("write-"):
        fmt = op.split("-", 1)[1]
        chunk = None
        if fmt == "tgz-chunks":
            fmt, chunk = "tgz", 32 * 1024 * 1024
        if fmt == "tgz-deflate1":  # what deflating the RPMs at level 1 would cost
            fmt, stream.PRECOMPRESSED = "tgz", ()
        staging = out / ".tmp-bench"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        subprocess.run(["cp", "-al", str(base / "src"), str(staging)], check=True)  # hard links: free
        known = [FileEntry(*k) for k in json.loads((base / "known.json").read_text())]
        manifest = BundleManifest(
            "bench-0001",
            "bench",
            "",
            "2024-05-02T10:15:30Z",
            "ACME",
            "content_view_version",
            "full",
            ContentViewRef("cv", "CV", "1.0"),
            None,
            (ProductEntry("prod", "Prod", False),),
            (
                RepositoryEntry(
                    "repo",
                    "Repo",
                    "prod",
                    "repos/prod/repo",
                    "yum",
                    VersionRef(1, len(known), "sha256:" + "0" * 64),
                    None,
                    len(known),
                ),
            ),
            (),
        )
        t, c = time.perf_counter(), _cpu()
        o = finalize_bundle(
            staging,
            manifest,
            signer,
            known,
            out_dir=out,
            name="bundle",
            fmt=fmt,
            chunk_size=chunk,
            compresslevel=6 if op != "write-tgz-deflate1" else 1,
        )
        elapsed, cpu = time.perf_counter() - t, _cpu() - c
        keep = base / f"keep-{op}"
        shutil.rmtree(keep, ignore_errors=True)
        out.rename(keep)
        return {"seconds": elapsed, "cpu": cpu, "size": o.size, "path": str(keep / o.path.name)}
    if op.startswith("read-"):
        path = Path(sys.argv[-1])
        trusted = [TrustedKey("bench", signer.public_pem, signer.fingerprint, ("ACME",))]
        work = base / "work"
        work.mkdir(exist_ok=True)
        t, c = time.perf_counter(), _cpu()
        with open_bundle(path, work) as opened:
            t_open = time.perf_counter() - t
            verify_bundle(opened, trusted, "ACME")
        return {"seconds": time.perf_counter() - t, "cpu": _cpu() - c, "open": t_open}
    raise SystemExit(f"unknown op {op}")


def _cpu(who=resource.RUSAGE_SELF) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def run_worker(op: str, base: Path, *extra: str) -> dict:
    r = subprocess.run(
        [sys.executable, __file__, "--worker", op, "--base", str(base), *extra], capture_output=True, text=True
    )
    if r.returncode:
        raise SystemExit(r.stderr)
    return json.loads(r.stdout)


def run_shell(cmd: str, cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of every process in the pipeline)."""
    t, c = time.perf_counter(), _cpu(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, shell=True, cwd=cwd, check=True)
    return time.perf_counter() - t, _cpu(resource.RUSAGE_CHILDREN) - c


def best(results):
    """Best wall time of the runs, and best CPU time (the machine may be shared: CPU time is steadier)."""
    results = list(results)
    if isinstance(results[0], tuple):
        return min(r[0] for r in results), min(r[1] for r in results)
    return {**min(results, key=lambda r: r["seconds"]), "cpu": min(r["cpu"] for r in results)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--size", type=int, default=20480)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", help="where to work (default: the system temp dir; /dev/shm shows CPU cost alone)")
    ap.add_argument("--worker")
    ap.add_argument("--base")
    ap.add_argument("rest", nargs="*")
    args = ap.parse_args()
    if args.worker:
        result = worker(args.worker, Path(args.base))
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return

    from iss_plugin.adapters.bundles.signing import generate_keypair

    base = Path(tempfile.mkdtemp(prefix="iss-bench-bundles-", dir=args.dir))
    try:
        (base / "src").mkdir()
        make_source(base / "src", args.files, args.size)
        generate_keypair(base / "keys")
        total = args.files * args.size
        print(
            f"{args.files} files x {args.size} bytes = {total / 1e6:.1f} MB (random, like RPMs) in {base.parent}; "
            f"best of {args.runs}"
        )
        src = base / "src"
        shell = {
            "tar -cf": f"tar -cf {base}/t.tar .",
            "tar -czf (gzip -6)": f"tar -czf {base}/t.tgz .",
            "tar -c | gzip -1": f"tar -c . | gzip -1 > {base}/t1.tgz",
        }
        times: dict[str, tuple[float, float]] = {}
        for name, cmd in shell.items():
            times[name] = best(run_shell(cmd, src) for _ in range(args.runs))
            print(f"  {name:32s} {times[name][0]:7.3f} s wall {times[name][1]:7.3f} s CPU")
        written: dict[str, dict] = {}
        for op in ("write-dir", "write-tgz", "write-tgz-deflate1", "write-iso", "write-tgz-chunks"):
            r = written[op] = best(run_worker(op, base) for _ in range(args.runs))
            print(
                f"  finalize {op[6:]:23s} {r['seconds']:7.3f} s wall {r['cpu']:7.3f} s CPU  {r['size'] / 1e6:7.1f} MB"
                f"  peak RSS {r['peak_rss_mib']:5.1f} MiB"
            )
        tar_c, tar_1 = times["tar -cf"], times["tar -c | gzip -1"]
        tgz = written["write-tgz"]
        print("ratios (wall, CPU):")
        print(f"  finalize tgz / tar -cf             {tgz['seconds'] / tar_c[0]:5.2f}x {tgz['cpu'] / tar_c[1]:5.2f}x")
        print(f"  finalize tgz / tar -c | gzip -1    {tgz['seconds'] / tar_1[0]:5.2f}x {tgz['cpu'] / tar_1[1]:5.2f}x")
        print(
            f"  finalize tgz / tar -czf            {tgz['seconds'] / times['tar -czf (gzip -6)'][0]:5.2f}x "
            f"{tgz['cpu'] / times['tar -czf (gzip -6)'][1]:5.2f}x"
        )
        d1 = written["write-tgz-deflate1"]
        print(
            f"  RPMs deflated at level 1 / stored  {d1['seconds'] / tgz['seconds']:5.2f}x {d1['cpu'] / tgz['cpu']:5.2f}x"
        )
        d = written["write-dir"]
        print(f"  finalize dir / tar -cf             {d['seconds'] / tar_c[0]:5.2f}x {d['cpu'] / tar_c[1]:5.2f}x")
        for op in ("write-dir", "write-tgz", "write-iso", "write-tgz-chunks"):
            r = best(run_worker("read-" + op[6:], base, written[op]["path"]) for _ in range(args.runs))
            print(
                f"  open+verify {op[6:]:20s} {r['seconds']:7.3f} s wall {r['cpu']:7.3f} s CPU  (open {r['open']:.3f} s)"
                f"  peak RSS {r['peak_rss_mib']:5.1f} MiB"
            )
        t_sha = best(
            run_shell("find . -type f -print0 | xargs -0 sha256sum > /dev/null", src) for _ in range(args.runs)
        )
        t_x = best(
            run_shell(f"rm -rf {base}/x && mkdir {base}/x && tar -xzf {written['write-tgz']['path']} -C {base}/x", src)
            for _ in range(args.runs)
        )
        print(
            f"  reference: sha256sum of every file {t_sha[0]:.3f} s wall {t_sha[1]:.3f} s CPU; "
            f"tar -xzf of the same tgz {t_x[0]:.3f} s wall {t_x[1]:.3f} s CPU"
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
