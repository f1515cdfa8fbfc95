"""Test and demo metadata beyond packages: updateinfo.xml (written with createrepo_c's UpdateInfo),
comps.xml and modules.yaml, and adding them to a yum tree's repomd.xml as modifyrepo_c does.
Deterministic, no network.

    advisory("ISS-2026:0001", ["foo-1.0-1.noarch.rpm"])        -> FixtureAdvisory
    add_repo_metadata(repo_dir, updateinfo=updateinfo_xml([...]), comps=comps_xml([...]),
                      modules=modules_yaml([...]))
"""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ISSUED = dt.datetime(2026, 1, 1, 12, 0, 0)


@dataclass(frozen=True)
class FixtureAdvisory:
    id: str
    packages: tuple[str, ...]  # RPM file names: <name>-<version>-<release>.<arch>.rpm
    title: str = "iss test advisory"
    type: str = "security"
    severity: str = "Important"
    description: str = "Fixes a test problem."
    references: tuple[tuple[str, str], ...] = ()  # (href, id)


def advisory(advisory_id: str, packages: Sequence[str | Path], **kwargs: str) -> FixtureAdvisory:
    refs = ((f"https://bugs.example.invalid/{advisory_id}", advisory_id),)
    return FixtureAdvisory(advisory_id, tuple(Path(p).name for p in packages), references=refs, **kwargs)


def split_filename(filename: str) -> tuple[str, str, str, str]:
    """name, version, release, arch of <name>-<version>-<release>.<arch>.rpm."""
    stem, arch = filename.removesuffix(".rpm").rsplit(".", 1)
    name, version, release = stem.rsplit("-", 2)
    return name, version, release, arch


def updateinfo_xml(advisories: Sequence[FixtureAdvisory]) -> bytes:
    import createrepo_c as cr

    info = cr.UpdateInfo()
    for a in advisories:
        rec = cr.UpdateRecord()
        rec.id, rec.title, rec.type, rec.severity = a.id, a.title, a.type, a.severity
        rec.status, rec.version, rec.release, rec.fromstr = "final", "1", "iss", "iss@example.invalid"
        rec.issued_date, rec.updated_date = ISSUED, ISSUED
        rec.summary, rec.description = a.title, a.description
        for href, ref_id in a.references:
            ref = cr.UpdateReference()
            ref.href, ref.id, ref.type, ref.title = href, ref_id, "bugzilla", a.title
            rec.append_reference(ref)
        col = cr.UpdateCollection()
        col.shortname, col.name = "iss", "iss fixtures"
        for filename in a.packages:
            pkg = cr.UpdateCollectionPackage()
            pkg.name, pkg.version, pkg.release, pkg.arch = split_filename(filename)
            pkg.epoch, pkg.filename = "0", filename
            col.append(pkg)
        rec.append_collection(col)
        info.append(rec)
    return str(info.xml_dump()).encode()


@dataclass(frozen=True)
class FixtureGroup:
    id: str
    packages: tuple[str, ...]  # package names
    name: str = ""


def comps_xml(groups: Sequence[FixtureGroup], category: str | None = None) -> bytes:
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<comps>\n']
    for g in groups:
        reqs = "".join(f'      <packagereq type="mandatory">{p}</packagereq>\n' for p in g.packages)
        parts.append(
            f"  <group>\n    <id>{g.id}</id>\n    <name>{g.name or g.id}</name>\n"
            f"    <description>iss test group {g.id}</description>\n    <default>false</default>\n"
            f"    <uservisible>true</uservisible>\n    <packagelist>\n{reqs}    </packagelist>\n  </group>\n"
        )
    if category:
        ids = "".join(f"      <groupid>{g.id}</groupid>\n" for g in groups)
        parts.append(
            f"  <category>\n    <id>{category}</id>\n    <name>{category}</name>\n"
            f"    <grouplist>\n{ids}    </grouplist>\n  </category>\n"
        )
    parts.append("</comps>\n")
    return "".join(parts).encode()


@dataclass(frozen=True)
class FixtureModule:
    name: str
    stream: str
    rpms: tuple[str, ...]  # RPM file names of its artifacts
    version: int = 20260101
    context: str = "c0ffee42"
    arch: str = "noarch"
    profiles: dict[str, tuple[str, ...]] = field(default_factory=dict)


def modules_yaml(modules: Sequence[FixtureModule], *, defaults: bool = True) -> bytes:
    import yaml

    docs: list[dict[str, object]] = []
    for m in modules:
        artifacts = []
        for filename in m.rpms:
            name, version, release, arch = split_filename(filename)
            artifacts.append(f"{name}-0:{version}-{release}.{arch}")
        names = sorted({split_filename(f)[0] for f in m.rpms})
        data = {
            "name": m.name,
            "stream": m.stream,
            "version": m.version,
            "context": m.context,
            "arch": m.arch,
            "summary": f"iss test module {m.name}",
            "description": f"iss test module {m.name}:{m.stream}",
            "license": {"module": ["MIT"]},
            "profiles": {k: {"rpms": list(v)} for k, v in (m.profiles or {"default": tuple(names)}).items()},
            "artifacts": {"rpms": artifacts},
        }
        docs.append({"document": "modulemd", "version": 2, "data": data})
        if defaults:
            default = {"module": m.name, "stream": m.stream, "profiles": {m.stream: ["default"]}}
            docs.append({"document": "modulemd-defaults", "version": 1, "data": default})
    return yaml.safe_dump_all(docs, explicit_start=True, explicit_end=True, sort_keys=False).encode()


def add_repo_metadata(
    repo_dir: Path | str, *, updateinfo: bytes | None = None, comps: bytes | None = None, modules: bytes | None = None
) -> Path:
    """Add updateinfo (gz), group (comps.xml) and modules (gz) records to repo_dir/repodata/repomd.xml."""
    import createrepo_c as cr

    repodata = Path(repo_dir) / "repodata"
    repomd = cr.Repomd(str(repodata / "repomd.xml"))
    for kind, name, data, compress in (
        ("updateinfo", "updateinfo.xml.gz", updateinfo, True),
        ("group", "comps.xml", comps, False),
        ("modules", "modules.yaml.gz", modules, True),
    ):
        if data is None:
            continue
        path = repodata / name
        path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
        rec = cr.RepomdRecord(kind, str(path))
        rec.fill(cr.SHA256)
        rec.rename_file()
        repomd.set_record(rec)
    (repodata / "repomd.xml").write_text(repomd.xml_dump())
    return Path(repo_dir)
