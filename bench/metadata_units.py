"""Advisories, groups and modules in incrementals: issue 10's performance goal, side by side in one run.

    .venv/bin/python bench/metadata_units.py [--packages 5000] [--advisories 500] [--new-advisories 5]
                                             [--size-kb 20] [--repeat 3] [--dir DIR] [--quick]

An incremental export (dir) + import of 1% new packages (CHANGE = PACKAGES / 100) with NEW new
advisories, into a repository of PACKAGES packages with ADVISORIES advisories (plus one comps group
and one module), vs the same change into a repository of CHANGE packages with ADVISORIES / 100
advisories. Goal: at most 1.5x. For reference, the large repository without any metadata units.

Every scenario is prepared untimed (source: upload packages + updateinfo.xml + comps.xml +
modules.yaml, publish 1.0, then the change and its advisories, publish 2.0; destination: 1.0
imported), and each timed run starts from fresh clones (bench/export_import.py's `clone`).
Medians of --repeat runs; wall and CPU seconds. Prints a table, never asserts, exits 0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import export_import as ei

REPO = f"{ei.PRODUCT}/{ei.REPO}"


@dataclass(frozen=True)
class Scenario:
    name: str
    packages: int
    advisories: int
    new_advisories: int
    units: bool = True


def metadata_files(directory: Path, rpms: list[Path], advisories: int, first: int, units: bool) -> list[Path]:
    """updateinfo.xml with `advisories` advisories (numbered from `first`, each naming one of the
    packages), and with units=True on the first call also comps.xml and modules.yaml."""
    from iss_plugin.adapters.fixture_metadata import (
        FixtureGroup,
        FixtureModule,
        advisory,
        comps_xml,
        modules_yaml,
        updateinfo_xml,
    )

    directory.mkdir(parents=True, exist_ok=True)
    out = []
    if advisories:
        info = [advisory(f"BENCH-2026:{first + i:05d}", [rpms[i % len(rpms)].name]) for i in range(advisories)]
        out.append(directory / "updateinfo.xml")
        out[-1].write_bytes(updateinfo_xml(info))
    if units and first == 0:
        names = tuple(p.name.rsplit("-", 2)[0] for p in rpms[:20])
        (directory / "comps.xml").write_bytes(comps_xml([FixtureGroup("bench-core", names)], category="bench"))
        module = FixtureModule("benchmod", "1.0", tuple(p.name for p in rpms[:20]))
        (directory / "modules.yaml").write_bytes(modules_yaml([module]))
        out += [directory / "comps.xml", directory / "modules.yaml"]
    return out


def prepare(root: Path, s: Scenario, base: list[Path], change: list[Path], say: Callable[[str], None]) -> ei.Pair:
    from iss_plugin.services import catalog, content_views

    pair = ei.Pair(root)
    src = ei.make_app(pair.src, "source", init=True)
    dst = ei.make_app(pair.dst, "destination", init=True)
    try:
        catalog.create_organization(src.uow(), "ACME Corp", ei.ORG, ei.ACTOR)
        catalog.create_product(src.uow(), ei.ORG, "Bench", ei.PRODUCT, False, None, ei.ACTOR)
        catalog.create_repository(src.uow(), ei.ORG, ei.PRODUCT, "Repo", ei.REPO, None, "yum", ei.ACTOR)
        first = metadata_files(root / "md1", base, s.advisories, 0, s.units)
        t = time.perf_counter()
        catalog.upload_packages(src.uow(), ei.ORG, REPO, [*base, *first], ei.ACTOR, src.server_id)
        say(f"    {s.name}: upload {len(base)} packages + {s.advisories} advisories {time.perf_counter() - t:.2f} s")
        content_views.create_content_view(src.uow(), ei.ORG, "CV", ei.CV, True, [REPO], ei.ACTOR)
        content_views.publish(src.uow(), ei.ORG, ei.CV, "1.0", ei.ACTOR, src.server_id)
        catalog.create_organization(dst.uow(), "ACME Corp", ei.ORG, ei.ACTOR)
        catalog.add_trusted_source(dst.uow(), "source", src.signer.public_pem, [ei.ORG], ei.ACTOR)
        b = ei.export(src, incremental=False, version="1.0", out=pair.src / "exports")
        ei.import_(dst, b["path"])
        second = metadata_files(root / "md2", change, s.new_advisories, s.advisories, s.units)
        catalog.upload_packages(src.uow(), ei.ORG, REPO, [*change, *second], ei.ACTOR, src.server_id)
        content_views.publish(src.uow(), ei.ORG, ei.CV, "2.0", ei.ACTOR, src.server_id)
    finally:
        src.close()
        dst.close()
    return pair


def run(pair: ei.Pair, work: Path) -> tuple[ei.Sample, ei.Sample]:
    src = ei.make_app(ei.clone(pair.src, work / "source"), "source")
    dst = ei.make_app(ei.clone(pair.dst, work / "destination"), "destination")
    try:
        ei.warm(src)
        ei.warm(dst)
        box: dict[str, dict[str, object]] = {}
        t_exp = ei.timed(
            lambda: box.update(b=ei.export(src, incremental=True, version="2.0", out=work / "out", from_version="1.0"))
        )
        t_imp = ei.timed(lambda: box.update(r=ei.import_(dst, str(box["b"]["path"]))))
        if box["r"]["state"] != "imported":
            raise SystemExit(f"incremental import did not import: {box['r']}")
        return t_exp, t_imp
    finally:
        src.close()
        dst.close()
        shutil.rmtree(work)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packages", type=int, default=5000)
    ap.add_argument("--advisories", type=int, default=500)
    ap.add_argument("--new-advisories", type=int, default=5)
    ap.add_argument("--size-kb", type=float, default=20, help="payload of each RPM (KB)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", help="where to work (default: the system temp dir)")
    ap.add_argument("--quick", action="store_true", help="small sizes, one run: a smoke test")
    args = ap.parse_args()
    if args.quick:
        args.packages, args.advisories, args.repeat = 500, 50, 1
    n, change_n = args.packages, max(1, args.packages // 100)
    scenarios = [
        Scenario("large", n, args.advisories, args.new_advisories),
        Scenario("small", change_n, max(1, args.advisories // 100), args.new_advisories),
        Scenario("large, no units", n, 0, 0, units=False),
    ]
    root = Path(tempfile.mkdtemp(prefix="iss-bench-units-", dir=args.dir))
    say = print
    try:
        say(f"iss metadata-units benchmark: {n} packages, change {change_n}, load {ei._load()}")
        payload = int(args.size_kb * 1024)
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            base = ei.build_packages(root / "rpms" / "base", "pkg", n, payload, pool)
            change = ei.build_packages(root / "rpms" / "change", "upd", change_n, payload, pool)
        results = {}
        for s in scenarios:
            pair = prepare(root / s.name.replace(" ", "-").replace(",", ""), s, base[: s.packages], change, say)
            samples = [run(pair, root / "work") for _ in range(args.repeat)]
            exp = ei.median([a for a, _ in samples])
            imp = ei.median([b for _, b in samples])
            results[s.name] = (exp, imp, exp + imp)
        say("")
        say(f"{'scenario':<18} {'packages':>8} {'adv':>5} {'export s':>9} {'import s':>9} {'total s':>8} {'cpu s':>7}")
        for s in scenarios:
            exp, imp, tot = results[s.name]
            say(
                f"{s.name:<18} {s.packages:>8} {s.advisories:>5} {exp.wall:>9.3f} {imp.wall:>9.3f} {tot.wall:>8.3f} {tot.cpu:>7.3f}"
            )
        large, small, plain = (results[s.name][2] for s in scenarios)
        ratio = large.wall / small.wall
        say("")
        say(
            f"incremental (+{change_n} packages, +{args.new_advisories} advisories) into {n} packages / "
            f"{args.advisories} advisories vs into {change_n} / {scenarios[1].advisories}: "
            f"{ratio:.2f}x wall, {large.cpu / small.cpu:.2f}x cpu (goal <= 1.5x)"
            + ("" if ratio <= 1.5 else "  GOAL MISSED")
        )
        say(f"the large repository with units vs without any: {large.wall / plain.wall:.2f}x wall (information)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
