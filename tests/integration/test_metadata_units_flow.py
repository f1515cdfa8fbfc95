"""Advisories, groups and modules through the whole flow, driven by the iss CLI: a source
synchronizes them from an upstream yum repository and takes uploads, a bundle carries them, the
destination imports and publishes them, and Debian's dnf reads them there. Bad inputs are refused
with their reason and change nothing."""

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
from tests.e2e.servers import Server

from .test_dnf_reads_published import dnf_binary

ORG, PRODUCT, REPO = "ACME", "tools", "utils"
PATH = f"{PRODUCT}/{REPO}"


def upstream(tmp_path: Path, advisories: list) -> tuple[Path, list[Path]]:
    files = build_rpms(tmp_path / "rpms", 3, prefix="toolpkg")
    tree = write_yum_repo(tmp_path / "upstream", files)
    add_repo_metadata(
        tree,
        updateinfo=updateinfo_xml(advisories),
        comps=comps_xml([FixtureGroup("iss-tools", ("toolpkg0000", "toolpkg0001"), name="ISS Tools")], "iss-cat"),
        modules=modules_yaml([FixtureModule("isstool", "1.0", tuple(f.name for f in files[:2]))]),
    )
    return tree, files


def first_advisories() -> list:
    return [
        advisory("ISS-2026:0001", ["toolpkg0000-1.0-1.noarch.rpm"]),
        advisory("ISS-2026:0002", ["ghostpkg-1.0-1.noarch.rpm"]),  # names a package nobody holds
    ]


def server(tmp_path: Path, name: str) -> Server:
    s = Server(name, tmp_path / name)
    s.write_config()
    s.run("init")
    s.run("organization", "create", "--name", "ACME Corp", "--label", ORG)
    return s


@pytest.fixture
def pair(tmp_path):
    source = server(tmp_path, "source")
    source.run("product", "create", "--organization", ORG, "--name", "Tools", "--label", PRODUCT)
    tree, files = upstream(tmp_path, first_advisories())
    source.run("repository", "create", "--organization", ORG, "--product", PRODUCT, "--name", REPO)
    source.run("repository", "synchronize", "--organization", ORG, "--repository", PATH, "--url", tree.as_uri())
    source.run(
        "content-view", "create", "--organization", ORG, "--name", "Base", "--label", "base", "--blessed",
        "--repository", PATH,
    )  # fmt: skip
    dest = server(tmp_path, "destination")
    key = tmp_path / "source.pub"
    key.write_text(source.json("keys", "show")["public_key"])
    dest.run("trust", "add", "--name", "source", "--public-key", str(key), "--organization", ORG)
    return source, dest, tree, files


def publish(source: Server) -> dict:
    return source.json("content-view", "publish", "--organization", ORG, "--content-view", "base")


def export(source: Server, kind: str, version: str) -> dict:
    return source.json(
        "content-export", kind, "version", "--organization", ORG, "--content-view", "base", "--version", version
    )


def import_(dest: Server, path: str, *extra: str, expect: int = 0) -> dict:
    return dest.json("content-import", "version", "--organization", ORG, "--path", path, *extra, expect=expect)


class Dnf:
    """Debian's dnf against one published repository, in an isolated installroot and cache."""

    def __init__(self, repo: Path, work: Path):
        self.binary = dnf_binary()
        self.repo = repo
        self.work = work
        for d in ("cache", "persist", "log", "repos.d", "root"):
            (work / d).mkdir(parents=True, exist_ok=True)

    def run(self, *args: str) -> str:
        cmd = [
            self.binary, "-q", "-y", "--releasever=1", "--nogpgcheck",
            f"--repofrompath=iss,{self.repo.resolve().as_uri()}", "--repo=iss",
            f"--installroot={self.work / 'root'}", f"--setopt=cachedir={self.work / 'cache'}",
            f"--setopt=persistdir={self.work / 'persist'}", f"--setopt=logdir={self.work / 'log'}",
            f"--setopt=reposdir={self.work / 'repos.d'}", "--setopt=metadata_expire=0",
            "--setopt=module_platform_id=platform:el9",
            *args,
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, f"{' '.join(cmd)}\nexit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout


def test_advisories_groups_and_modules_travel_and_dnf_reads_them(pair, tmp_path):
    source, dest, _, _ = pair
    published = publish(source)
    assert any("ISS-2026:0002" in w and "ghostpkg" in w for w in published["warnings"])
    full = export(source, "complete", "1.0")
    dry = import_(dest, full["path"], "--dry-run")
    assert dry["state"] == "dry_run"
    assert any("ISS-2026:0002" in w and "ghostpkg-1.0-1.noarch" in w for w in dry["warnings"])
    assert import_(dest, full["path"])["state"] == "imported"

    # an update: a newer package and its advisory, uploaded on the source, travel incrementally
    newer = build_rpm(tmp_path / "newer", "toolpkg0000", version="2.0")
    notice = tmp_path / "updateinfo.xml"
    notice.write_bytes(updateinfo_xml([advisory("ISS-2026:0100", [newer.name], title="toolpkg 2.0")]))
    uploaded = source.json("repository", "upload", "--organization", ORG, "--repository", PATH, str(newer), str(notice))
    assert uploaded["units"] == {"advisory": 1}
    publish(source)
    incr = export(source, "incremental", "2.0")
    manifest_units = _manifest(incr["path"])["repositories"][0]["units"]
    assert manifest_units["added"] == {"advisory": 1}
    assert manifest_units["counts"]["advisory"] == 3 and manifest_units["counts"]["modulemd"] == 1
    assert incr["repositories"][PATH]["new_packages"] == 1  # only the new package file travels
    assert import_(dest, incr["path"])["state"] == "imported"
    assert _pin(dest, "2.0") == _pin(source, "2.0")
    info = dest.json("repository", "info", "--organization", ORG, "--repository", PATH)
    assert info["units"] == {"advisory": 3, "category": 1, "group": 1, "modulemd": 1, "modulemd_defaults": 1}

    repo = dest.data / "published" / ORG / PRODUCT / REPO
    dnf = Dnf(repo, tmp_path / "dnf")
    dnf.run("install", "toolpkg0000-1.0-1.noarch")
    assert "ISS-2026:0100" in dnf.run("updateinfo", "list", "--available")
    assert "ISS-2026:0001" in dnf.run("updateinfo", "list", "--all")
    assert "ISS Tools" in dnf.run("group", "list")
    modules = dnf.run("module", "list")
    assert any(line.split()[:2] == ["isstool", "1.0"] for line in modules.splitlines() if line.strip())


def test_an_import_that_would_drop_an_advisory_is_refused_and_changes_nothing(pair, tmp_path):
    source, dest, tree, _ = pair
    publish(source)
    assert import_(dest, export(source, "complete", "1.0")["path"])["state"] == "imported"
    # upstream withdraws ISS-2026:0001; the source mirrors that, the destination must not lose it
    add_repo_metadata(tree, updateinfo=updateinfo_xml(first_advisories()[1:]))
    source.run("repository", "synchronize", "--organization", ORG, "--repository", PATH, "--url", tree.as_uri())
    publish(source)
    bundle = export(source, "incremental", "2.0")["path"]
    before = dest.state()
    for extra in ((), ("--dry-run",)):
        out = dest.run("--output", "json", "content-import", "version", "--organization", ORG, "--path", bundle,
                       *extra, expect=3)  # fmt: skip
        assert "advisory ISS-2026:0001 is held here and missing from the bundle" in out.output
    assert dest.state() == before


def test_an_upload_that_changes_an_advisory_is_refused_and_changes_nothing(pair, tmp_path):
    source, _, _, files = pair
    before = source.json("repository", "info", "--organization", ORG, "--repository", PATH)
    state = source.state()
    changed = tmp_path / "changed-updateinfo.xml"
    changed.write_bytes(updateinfo_xml([advisory("ISS-2026:0001", [files[1].name], title="another text")]))
    out = source.run("repository", "upload", "--organization", ORG, "--repository", PATH, str(changed), expect=3)
    assert "advisory ISS-2026:0001: sha256:" in out.output and " and sha256:" in out.output
    assert source.json("repository", "info", "--organization", ORG, "--repository", PATH) == before
    assert source.state() == state


def test_an_upload_of_a_broken_metadata_file_is_refused_and_changes_nothing(pair, tmp_path):
    source, _, _, _ = pair
    state = source.state()
    broken = tmp_path / "modules.yaml"
    broken.write_text("---\ndocument: modulemd\nversion: 2\ndata:\n  name: half\n...\n")
    out = source.run("repository", "upload", "--organization", ORG, "--repository", PATH, str(broken), expect=3)
    assert "data lacks stream, version, context, arch" in out.output
    assert source.state() == state


def _manifest(path: str) -> dict:
    import json

    return json.loads((Path(path) / "manifest.json").read_text())


def _pin(server: Server, version: str) -> tuple[int, str]:
    versions = server.json("content-view", "version", "list", "--organization", ORG, "--content-view", "base")
    [repo] = next(v for v in versions if v["version"] == version)["repositories"]
    return repo["package_count"], repo["package_set_digest"]


def test_a_bundle_with_one_advisory_id_twice_is_refused_and_changes_nothing(pair, tmp_path):
    """A (re-signed) bundle whose updateinfo holds ISS-2026:0001 twice with different content."""
    import hashlib
    import json
    import shutil

    from iss_plugin.adapters.bundles.signing import load_signer

    source, dest, _, _ = pair
    publish(source)
    bundle = tmp_path / "evil"
    shutil.copytree(export(source, "complete", "1.0")["path"], bundle)
    tree = bundle / "repos" / PRODUCT / REPO
    for old in (tree / "repodata").glob("*updateinfo*"):
        old.unlink()
    twice = [*first_advisories(), advisory("ISS-2026:0001", ["toolpkg0001-1.0-1.noarch.rpm"], title="other")]
    add_repo_metadata(tree, updateinfo=updateinfo_xml(twice))
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"] = [
        {"path": p.relative_to(bundle).as_posix(), "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
         "size": p.stat().st_size}
        for p in sorted(bundle.rglob("*")) if p.is_file() and not p.name.startswith("manifest.json")
    ]  # fmt: skip
    body = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    (bundle / "manifest.json").write_bytes(body)
    (bundle / "manifest.json.sig").write_bytes(load_signer(source.data / "keys").sign(body))
    before = dest.state()
    out = dest.run("content-import", "version", "--organization", ORG, "--path", str(bundle), expect=3).output
    assert "advisory ISS-2026:0001: sha256:" in out and " and sha256:" in out
    assert "the manifest promises units" in out  # every problem at once
    assert dest.state() == before
