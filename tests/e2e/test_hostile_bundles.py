"""Every hostile bundle: a clear error, exit code 3, and nothing changed on the destination."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from .conftest import CUSTOM, RH, make_destination
from .servers import Server


def export_full(source: Server, fmt: str = "tgz", *extra: str) -> Path:
    out = source.json(
        "content-export",
        "complete",
        "version",
        "--organization",
        "ACME",
        "--content-view",
        "base",
        "--version",
        "1.0",
        "--format",
        fmt,
        *extra,
    )
    return Path(out["path"])


def refused(dest: Server, path: Path, *needles: str, org: str = "ACME", command: str = "version") -> str:
    before = dest.state()
    r = dest.run("content-import", command, "--organization", org, "--path", str(path), expect=3)
    for needle in needles:
        assert needle in r.output, r.output
    assert dest.state() == before, "a refused import changed the destination"
    return r.output


def rewrite_tar(
    src: Path, dst: Path, extra: list[tuple[tarfile.TarInfo, bytes | None]] = (), drop=(), edit=None
) -> Path:
    with tarfile.open(src, "r:gz") as tin, tarfile.open(dst, "w:gz") as tout:
        for m in tin.getmembers():
            if m.name in drop:
                continue
            data = tin.extractfile(m).read() if m.isfile() else None
            if edit and m.isfile():
                data = edit(m.name, data)
                m.size = len(data)
            tout.addfile(m, io.BytesIO(data) if data is not None else None)
        for info, data in extra:
            tout.addfile(info, io.BytesIO(data) if data is not None else None)
    return dst


def member(
    name: str, kind=tarfile.REGTYPE, data: bytes | None = b"x", linkname: str = ""
) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = len(data) if (data is not None and kind == tarfile.REGTYPE) else 0
    return info, data if kind == tarfile.REGTYPE else None


@pytest.mark.parametrize(
    "bad, needle",
    [
        (member("../escape.txt"), "../escape.txt"),
        (member("/etc/iss-evil"), "/etc/iss-evil"),
        (member("repos/link", tarfile.SYMTYPE, linkname="/etc/passwd"), "repos/link"),
        (member("repos/hard", tarfile.LNKTYPE, linkname="manifest.json"), "repos/hard"),
        (member("repos/dev", tarfile.CHRTYPE), "repos/dev"),
    ],
    ids=["dotdot", "absolute", "symlink", "hardlink", "device"],
)
def test_unsafe_tar_members_are_refused(tmp_path, published_source, destination, bad, needle):
    good = export_full(published_source)
    evil = rewrite_tar(good, tmp_path / "evil.tar.gz", extra=[bad])
    refused(destination, evil, needle)
    # "../escape.txt" would land next to the extraction directory (under the destination's imports
    # dir), not in tmp_path: look everywhere under the destination's root and the test's directory.
    escaped = sorted(
        {p for base in (destination.data, destination.data.parent, tmp_path) for p in base.rglob("escape.txt")}
    )
    assert escaped == [], f"a tar member escaped the extraction directory: {escaped}"
    assert not Path("/etc/iss-evil").exists()


def test_manifest_signed_by_an_untrusted_key(tmp_path, published_source):
    stranger = Server("stranger", tmp_path / "stranger")
    stranger.write_config()
    stranger.run("init")
    dest = make_destination(tmp_path, stranger)  # trusts only the stranger
    refused(dest, export_full(published_source), "not trusted for organization ACME")


def test_manifest_edited_after_signing(tmp_path, published_source, destination):
    def edit(name, data):
        if name == "manifest.json":
            d = json.loads(data)
            d["content_view"]["version"] = "7.0"
            return json.dumps(d, sort_keys=True, indent=2).encode()
        return data

    evil = rewrite_tar(export_full(published_source), tmp_path / "edited.tar.gz", edit=edit)
    refused(destination, evil, "changed after it was signed")


def test_rpm_bytes_altered(tmp_path, published_source, destination):
    def edit(name, data):
        return data[:-1] + bytes([data[-1] ^ 0xFF]) if name.endswith(".rpm") else data

    evil = rewrite_tar(export_full(published_source), tmp_path / "altered.tar.gz", edit=edit)
    refused(destination, evil, ".rpm")


def test_missing_and_reordered_chunks(tmp_path, published_source, destination):
    first = export_full(published_source, "tgz", "--chunk-size-mb", "0.05", "--path", str(tmp_path / "media"))
    chunks = sorted(first.parent.glob(first.name[:-4] + ".[0-9][0-9][0-9]"))
    assert len(chunks) >= 2
    reordered = tmp_path / "reordered"
    shutil.copytree(first.parent, reordered)
    a, b = reordered / chunks[0].name, reordered / chunks[1].name
    tmp = a.with_suffix(".swap")
    a.rename(tmp), b.rename(a), tmp.rename(b)
    refused(destination, reordered / first.name, chunks[0].name)
    chunks[1].unlink()
    refused(destination, first, chunks[1].name)


def test_truncated_tar_gz(tmp_path, published_source, destination):
    good = export_full(published_source)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    refused(destination, cut, "truncated")


def test_manifest_that_fails_its_schema(tmp_path, published_source, destination):
    from iss_plugin.adapters.bundles.signing import load_signer

    signer = load_signer(published_source.data / "keys")
    src_dir = export_full(published_source, "dir")
    bad = tmp_path / "bad-schema"
    shutil.copytree(src_dir, bad)
    d = json.loads((bad / "manifest.json").read_text())
    d["kind"] = "sideways"
    body = json.dumps(d, sort_keys=True, indent=2).encode()
    (bad / "manifest.json").write_bytes(body)
    (bad / "manifest.json.sig").write_bytes(signer.sign(body))
    refused(destination, bad, "kind", "schema")


def test_incremental_without_its_base(tmp_path, published_source, destination, rpms):
    source = published_source
    export_full(source)  # 1.0 exported but never imported
    source.run(
        "repository",
        "upload",
        "--organization",
        "ACME",
        "--repository",
        f"{CUSTOM}/utils",
        *map(str, rpms("x", 1, "x")),
    )
    source.run("content-view", "publish", "--organization", "ACME", "--content-view", "base")
    incr = source.json("content-export", "incremental", "version", "--organization", "ACME", "--content-view", "base")
    out = refused(destination, Path(incr["path"]), "base")
    assert "version 1.0" in out


def test_redhat_repository_into_custom_product(tmp_path, published_source, destination):
    destination.run("organization", "create", "--name", "Lab", "--label", "LAB")
    destination.run("product", "create", "--organization", "LAB", "--name", "rebuild", "--label", RH)
    key = tmp_path / "k.pub"
    key.write_text(published_source.json("keys", "show")["public_key"])
    destination.run("trust", "add", "--name", "source", "--public-key", str(key), "--map", "ACME=LAB")
    refused(destination, export_full(published_source), "Red Hat content", "custom product", org="LAB")


def test_custom_repository_into_redhat_product(tmp_path, published_source, destination):
    manifest = tmp_path / "m2.json"
    manifest.write_text(
        '{"manifest_id": "m-2", "organization": "ACME", "products": '
        f'[{{"label": "{CUSTOM}", "name": "Tools (RH)", "content_id": "rh-9"}}]}}'
    )
    destination.run("manifest", "import", str(manifest))
    refused(destination, export_full(published_source), "custom content cannot go into the Red Hat product")


def test_redhat_repository_without_entitlement(tmp_path, published_source):
    dest = Server("unentitled", tmp_path / "unentitled")
    dest.write_config()
    dest.run("init")
    dest.run("organization", "create", "--name", "ACME", "--label", "ACME")
    key = tmp_path / "k.pub"
    key.write_text(published_source.json("keys", "show")["public_key"])
    dest.run("trust", "add", "--name", "source", "--public-key", str(key), "--organization", "ACME")
    refused(dest, export_full(published_source), "not entitled")


def test_import_only_conflict(tmp_path, published_source, destination):
    destination.run("content-view", "create", "--organization", "ACME", "--name", "Base", "--label", "base")
    refused(destination, export_full(published_source), "not import-only")


def test_dry_run_reports_file_and_rule_problems_together(tmp_path, published_source, destination):
    destination.run("content-view", "create", "--organization", "ACME", "--name", "Base", "--label", "base")

    def edit(name, data):
        return data[:-1] + bytes([data[-1] ^ 0xFF]) if name.endswith(".rpm") else data

    evil = rewrite_tar(export_full(published_source), tmp_path / "both.tar.gz", edit=edit)
    before = destination.state()
    r = destination.run(
        "content-import", "version", "--organization", "ACME", "--path", str(evil), "--dry-run", expect=3
    )
    assert ".rpm" in r.output and "not import-only" in r.output
    assert destination.state() == before
