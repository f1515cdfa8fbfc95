"""Advisories, groups and modules from source Pulp to destination Pulp (issue 10, point 2), through
the real CLI: the source synchronizes them from an upstream yum tree and takes an uploaded advisory,
a complete and then an incremental bundle carry them, the destination's Pulp holds exactly the
source's units (the version digests, which cover them, are equal) and Debian's dnf reads them from
the destination's published repository (Pulp 2's content app)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from iss_plugin.adapters.fixture_metadata import (
    FixtureGroup,
    FixtureModule,
    add_repo_metadata,
    advisory,
    comps_xml,
    modules_yaml,
    updateinfo_xml,
)
from iss_plugin.adapters.fixtures import build_rpm, build_rpms, write_yum_repo
from tests.integration.pulp.support import purge
from tests.integration.pulp.test_cli_flow_on_pulp import PulpIss
from tests.integration.test_dnf_reads_published import dnf_binary

pytestmark = pytest.mark.pulp

ORG, PATH = "ACME", "tools/utils"
KEY = f"{ORG}/{PATH}"


def upstream(tmp_path: Path) -> Path:
    files = build_rpms(tmp_path / "rpms", 3, prefix="pulptool")
    tree = write_yum_repo(tmp_path / "upstream", files)
    add_repo_metadata(
        tree,
        updateinfo=updateinfo_xml([advisory("ISS-2026:0001", [files[0].name])]),
        comps=comps_xml([FixtureGroup("iss-tools", ("pulptool0000", "pulptool0001"), name="ISS Tools")], "iss-cat"),
        modules=modules_yaml([FixtureModule("isstool", "1.0", tuple(f.name for f in files[:2]))]),
    )
    return tree


def dnf(url: str, work: Path, *args: str) -> str:
    for d in ("cache", "persist", "log", "repos.d", "root"):
        (work / d).mkdir(parents=True, exist_ok=True)
    cmd = [
        dnf_binary(), "-q", "-y", "--releasever=1", "--nogpgcheck",
        f"--repofrompath=iss,{url}", "--repo=iss",
        f"--installroot={work / 'root'}", f"--setopt=cachedir={work / 'cache'}",
        f"--setopt=persistdir={work / 'persist'}", f"--setopt=logdir={work / 'log'}",
        f"--setopt=reposdir={work / 'repos.d'}", "--setopt=metadata_expire=0",
        "--setopt=module_platform_id=platform:el9",
        *args,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"{' '.join(cmd)}\nexit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture
def servers(tmp_path, prefix):
    src = PulpIss("source", tmp_path / "source", 1, prefix)
    dst = PulpIss("destination", tmp_path / "destination", 2, prefix)
    try:
        yield src, dst
    finally:
        purge(src.backend())
        purge(dst.backend())


def _export(src: PulpIss, kind: str, version: str) -> dict:
    return src.json(
        "content-export", kind, "version", "--organization", ORG, "--content-view", "base", "--version", version
    )


def _import(dst: PulpIss, path: str) -> dict:
    return dst.json("content-import", "version", "--organization", ORG, "--path", path)


def test_an_advisory_a_group_and_a_module_travel_from_pulp_to_pulp_and_dnf_reads_them(servers, tmp_path):
    src, dst = servers
    for s in (src, dst):
        s.run("init")
        s.run("organization", "create", "--name", "ACME Corp", "--label", ORG)
    src.run("product", "create", "--organization", ORG, "--name", "Tools", "--label", "tools")
    src.run("repository", "create", "--organization", ORG, "--product", "tools", "--name", "utils")
    tree = upstream(tmp_path)
    src.run("repository", "synchronize", "--organization", ORG, "--repository", PATH, "--url", tree.as_uri())
    src.run(
        "content-view", "create", "--organization", ORG, "--name", "Base", "--label", "base", "--blessed",
        "--repository", PATH,
    )  # fmt: skip
    src.run("content-view", "publish", "--organization", ORG, "--content-view", "base")
    key = tmp_path / "source.pub"
    key.write_text(src.json("keys", "show")["public_key"])
    dst.run("trust", "add", "--name", "source", "--public-key", str(key), "--organization", ORG)

    assert _import(dst, _export(src, "complete", "1.0")["path"])["state"] == "imported"
    assert dst.pins("1.0") == src.pins("1.0")  # the digests cover the units
    units = {"advisory": 1, "category": 1, "group": 1, "modulemd": 1, "modulemd_defaults": 1}
    assert dst.json("repository", "info", "--organization", ORG, "--repository", PATH)["units"] == units

    # an update: a newer package and its advisory, uploaded on the source, travel incrementally
    newer = build_rpm(tmp_path / "newer", "pulptool0000", version="2.0")
    notice = tmp_path / "updateinfo.xml"
    notice.write_bytes(updateinfo_xml([advisory("ISS-2026:0100", [newer.name], title="pulptool 2.0")]))
    uploaded = src.json("repository", "upload", "--organization", ORG, "--repository", PATH, str(newer), str(notice))
    assert uploaded["units"] == {"advisory": 1}
    src.run("content-view", "publish", "--organization", ORG, "--content-view", "base")
    incr = _export(src, "incremental", "2.0")
    assert incr["kind"] == "incremental" and incr["repositories"][PATH]["new_packages"] == 1
    assert _import(dst, incr["path"])["state"] == "imported"
    assert dst.pins("2.0") == src.pins("2.0")
    src_backend, dst_backend = src.backend(), dst.backend()
    src_units = src_backend.list_units(KEY, src_backend.latest_version(KEY))
    assert dst_backend.list_units(KEY, dst_backend.latest_version(KEY)) == src_units
    assert {(u.kind, u.key) for u in src_units} >= {
        ("advisory", "ISS-2026:0001"),
        ("advisory", "ISS-2026:0100"),
        ("group", "iss-tools"),
        ("modulemd", "isstool:1.0:20260101:c0ffee42:noarch"),
    }

    url = dst.json("repository", "info", "--organization", ORG, "--repository", PATH)["published_at"]
    assert url and url.startswith("http"), url
    work = tmp_path / "dnf"
    dnf(url, work, "install", "pulptool0000-1.0-1.noarch")
    assert "ISS-2026:0100" in dnf(url, work, "updateinfo", "list", "--available")
    assert "ISS-2026:0001" in dnf(url, work, "updateinfo", "list", "--all")
    assert "ISS Tools" in dnf(url, work, "group", "list")
    modules = dnf(url, work, "module", "list")
    assert any(line.split()[:2] == ["isstool", "1.0"] for line in modules.splitlines() if line.strip()), modules
