"""Signature check benchmark: adapters.signatures.find_bad_signatures over N signed packages, beside
the floor of one plain `rpmkeys --checksig` of the same files and `sha256sum` of them (the import
reads every file for its sha256 anyway).

    .venv/bin/python bench/signatures.py [--packages 1000] [--size 20000] [--runs 3]

Best of --runs, wall time. Not a test.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from iss_plugin.adapters.fixtures import build_rpms, make_signing_key, sign_rpms
from iss_plugin.adapters.signatures import find_bad_signatures


def best(runs: int, f: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packages", type=int, default=1000)
    ap.add_argument("--size", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        key = make_signing_key()
        files = build_rpms(root / "p", args.packages, payload_size=args.size)
        sign_rpms(files, key)
        names = [f.name for f in files]

        def ours() -> None:
            assert find_bad_signatures(root / "p", names, key.public) == []

        db = root / "db"
        db.mkdir()
        (root / "key.asc").write_text(key.public)
        subprocess.run(["rpmkeys", "--dbpath", str(db), "--import", str(root / "key.asc")], check=True)

        def floor() -> None:
            subprocess.run(
                ["rpmkeys", "--dbpath", str(db), "--checksig", *names], cwd=root / "p", check=True, capture_output=True
            )

        def sha() -> None:
            subprocess.run(["sha256sum", *names], cwd=root / "p", check=True, capture_output=True)

        t_ours, t_floor, t_sha = best(args.runs, ours), best(args.runs, floor), best(args.runs, sha)
        print(f"{args.packages} packages of {args.size} B payload")
        print(f"  find_bad_signatures (batches, 2 threads): {t_ours:.3f} s")
        print(f"  one rpmkeys --checksig of all files:     {t_floor:.3f} s  (ratio {t_ours / t_floor:.2f}x)")
        print(f"  sha256sum of the same files:             {t_sha:.3f} s")


if __name__ == "__main__":
    main()
