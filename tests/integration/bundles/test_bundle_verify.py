"""verify_bundle: the signature first (trusted for the organization), then the schema, then every
file. Each refusal is a clear error, and nothing outside the reader's temporary directory changes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from iss_plugin.adapters.bundles.reader import TrustedKey, open_bundle, verify_bundle
from iss_plugin.adapters.bundles.signing import Signer
from iss_plugin.domain.errors import BundleIntegrityError, SchemaViolation, UntrustedSource

from .conftest import ORG, build, rewrite_tar, snapshot

RPM = "repos/tools/utils/Packages/u/utils-pkg2-1.0-1.noarch.rpm"


def refused_on_verify(sandbox: Path, bundle: Path, trusted, error=BundleIntegrityError, organization=ORG):
    before = snapshot(sandbox)
    with open_bundle(bundle, sandbox / "work") as opened:
        temp = opened.temp_dir
        with pytest.raises(error) as e:
            verify_bundle(opened, trusted, organization)
    assert temp is None or not temp.exists()
    assert snapshot(sandbox) == before, "a refused bundle changed the file system"
    assert e.value.exit_code == 3
    return e.value


def edit_tgz(src: Path, dst: Path, *, manifest=None, sign_with: Signer | None = None, files=None, drop=()) -> Path:
    """Rewrite a bundle: change manifest.json (dict -> dict), re-sign it, change file bytes."""
    state = {}

    def edit(name, data):
        if name == "manifest.json" and manifest:
            data = json.dumps(manifest(json.loads(data)), sort_keys=True, indent=2).encode()
            state["manifest"] = data
        elif name == "manifest.json.sig" and sign_with:
            data = sign_with.sign(state["manifest"])
        elif files and name in files:
            data = files[name](data)
        return data

    return rewrite_tar(src, dst, edit=edit, drop=drop)


@pytest.fixture
def good(sandbox, signer) -> Path:
    return build(sandbox / "out", signer, "tgz")[0].path


def test_untrusted_key(sandbox, signer, good):
    stranger = Signer.generate()
    e = refused_on_verify(
        sandbox, good, [TrustedKey("other", stranger.public_pem, stranger.fingerprint, (ORG,))], UntrustedSource
    )
    assert e.message == (
        f"bundle signed by key {signer.fingerprint} which is not trusted for organization ACME; "
        "add it with `iss trust add`"
    )
    assert e.problems == [] and e.reason == "untrusted"


def test_key_trusted_for_another_organization_only(sandbox, signer, good):
    keys = [TrustedKey("source", signer.public_pem, signer.fingerprint, ("LAB", "QA"))]
    e = refused_on_verify(sandbox, good, keys, UntrustedSource)
    assert e.message.startswith(f"bundle signed by key {signer.fingerprint} which is not trusted for organization ACME")
    assert e.problems == ["key 'source' is trusted only for: LAB, QA"]


def test_stored_fingerprint_that_does_not_match_its_key_is_not_trusted(sandbox, signer, good):
    other = Signer.generate()
    keys = [TrustedKey("source", other.public_pem, signer.fingerprint, (ORG,))]  # PEM of another key
    refused_on_verify(sandbox, good, keys, UntrustedSource)


def test_manifest_edited_after_signing(sandbox, signer, trusted, good):
    def bump(d):
        d["content_view"]["version"] = "7.0"
        return d

    evil = edit_tgz(good, sandbox / "edited.tar.gz", manifest=bump)
    e = refused_on_verify(sandbox, evil, trusted)
    assert e.message == (
        "manifest.json was changed after it was signed: its signature does not verify with the "
        f"trusted key 'source' ({signer.fingerprint}); nothing was imported"
    )


def test_manifest_signed_by_another_key_claiming_the_trusted_fingerprint(sandbox, trusted, good):
    def bump(d):
        d["files"] = d["files"][1:]
        return d

    evil = edit_tgz(good, sandbox / "resigned.tar.gz", manifest=bump, sign_with=Signer.generate())
    assert "changed after it was signed" in refused_on_verify(sandbox, evil, trusted).message


def test_garbage_signature(sandbox, trusted, good):
    evil = edit_tgz(good, sandbox / "sig.tar.gz", files={"manifest.json.sig": lambda d: b"not base64 at all!!\n"})
    assert "changed after it was signed" in refused_on_verify(sandbox, evil, trusted).message


def test_missing_signature_and_manifest(sandbox, trusted, good):
    e = refused_on_verify(sandbox, rewrite_tar(good, sandbox / "nosig.tar.gz", drop={"manifest.json.sig"}), trusted)
    assert e.message == f"{sandbox / 'nosig.tar.gz'} is not an iss bundle: manifest.json.sig is missing"
    both = rewrite_tar(good, sandbox / "none.tar.gz", drop={"manifest.json", "manifest.json.sig"})
    assert refused_on_verify(sandbox, both, trusted).message.endswith("manifest.json and manifest.json.sig are missing")


def test_manifest_that_is_not_json(sandbox, trusted, good):
    evil = edit_tgz(good, sandbox / "notjson.tar.gz", files={"manifest.json": lambda d: b"{not json"})
    assert refused_on_verify(sandbox, evil, trusted).message.startswith("manifest.json is not valid JSON: ")


def test_rpm_bytes_altered(sandbox, trusted, good):
    flipped = {}

    def flip(data):
        flipped["data"] = data[:-1] + bytes([data[-1] ^ 0xFF])
        flipped["old"] = hashlib.sha256(data).hexdigest()
        return flipped["data"]

    evil = edit_tgz(good, sandbox / "altered.tar.gz", files={RPM: flip})
    e = refused_on_verify(sandbox, evil, trusted)
    new = hashlib.sha256(flipped["data"]).hexdigest()
    assert e.message == "bundle altered.tar.gz failed its integrity check; nothing was imported"
    assert e.problems == [f"{RPM}: sha256 {new} does not match the manifest ({flipped['old']}): the file was altered"]


def test_missing_truncated_and_unlisted_files_all_reported(sandbox, signer, trusted):
    out, _ = build(sandbox / "out", signer, "dir")
    (out.path / "products.csv").unlink()
    data = (out.path / RPM).read_bytes()
    (out.path / RPM).write_bytes(data[:100])
    (out.path / "repos/tools/utils/Packages/u/smuggled.rpm").write_bytes(b"extra")
    e = refused_on_verify(sandbox, out.path, trusted)
    assert e.problems == [
        "products.csv: listed in the manifest but missing from the bundle",
        "repos/tools/utils/Packages/u/smuggled.rpm: in the bundle but not listed in the manifest",
        f"{RPM}: 100 bytes, the manifest says {len(data)}",
    ]


def test_manifest_failing_its_schema_lists_every_problem(sandbox, signer, trusted, good):
    def break_it(d):
        d["kind"] = "sideways"
        d["files"][0]["path"] = "../../etc/passwd"
        d["repositories"][0]["target"]["package_set_digest"] = "md5:abc"
        d["surprise"] = True
        return d

    evil = edit_tgz(good, sandbox / "schema.tar.gz", manifest=break_it, sign_with=signer)
    e = refused_on_verify(sandbox, evil, trusted, SchemaViolation)
    assert e.message == "manifest.json does not follow schemas/bundle/manifest.v1.json; nothing was imported"
    assert e.reason == "schema"
    text = "\n".join(e.problems)
    assert "(top): Additional properties are not allowed ('surprise' was unexpected)" in e.problems
    assert "kind: 'sideways' is not one of ['full', 'incremental']" in e.problems
    assert "files/0/path: '../../etc/passwd'" in text
    assert "repositories/0/target/package_set_digest: 'md5:abc'" in text


def test_a_bad_files_entry_deep_in_a_big_manifest_is_refused_with_its_path(sandbox, signer, trusted, good):
    def bury(d):  # files[] entries are checked one at a time: the 2,500th is still reported
        d["files"] += [
            {"path": f"repos/tools/utils/Packages/p/p{i}.rpm", "sha256": f"{i:064x}", "size": i} for i in range(3000)
        ]
        d["files"][2500]["sha256"] = "not-a-digest"
        return d

    evil = edit_tgz(good, sandbox / "deep.tar.gz", manifest=bury, sign_with=signer)
    e = refused_on_verify(sandbox, evil, trusted, SchemaViolation)
    assert e.problems == [r"files/2500/sha256: 'not-a-digest' does not match '^(?!.*\\n)[0-9a-f]{64}$'"]


def test_manifest_whose_parts_do_not_agree(sandbox, signer, trusted, good):
    def orphan(d):
        d["repositories"][1]["product"] = "ghost"
        d["files"].append({"path": "elsewhere/x.rpm", "sha256": "0" * 64, "size": 1})
        return d

    evil = edit_tgz(good, sandbox / "orphan.tar.gz", manifest=orphan, sign_with=signer)
    e = refused_on_verify(sandbox, evil, trusted, SchemaViolation)
    assert e.problems == [
        "repositories/1: product 'ghost' is not in products",
        "repositories/1: path is 'repos/tools/utils', expected 'repos/ghost/utils'",
        "files: 'elsewhere/x.rpm' is neither products.csv nor inside a listed repository",
    ]


def test_duplicate_keys_in_the_manifest(sandbox, signer, trusted):
    out, _ = build(sandbox / "out", signer, "dir")
    raw = (out.path / "manifest.json").read_bytes()
    assert b'"kind":"full"' in raw
    raw = raw.replace(b'"kind":"full"', b'"kind":"full","kind":"incremental"')
    (out.path / "manifest.json").write_bytes(raw)
    (out.path / "manifest.json.sig").write_bytes(signer.sign(raw))
    e = refused_on_verify(sandbox, out.path, trusted, SchemaViolation)
    assert e.problems[0] == "(top): key 'kind' appears more than once in an object"


def test_a_good_bundle_verifies_in_every_format_and_leaves_nothing(sandbox, signer, trusted):
    for fmt in ("dir", "tgz", "iso"):
        out, contents = build(sandbox / f"out-{fmt}", signer, fmt)
        with open_bundle(out.path, sandbox / "work") as opened:
            m = verify_bundle(opened, trusted, ORG)
            assert len(m.files) == len(contents)
        assert os.listdir(sandbox / "work") == []
    shutil.rmtree(sandbox / "out-dir")


def test_open_with_trust_stops_at_the_signature_before_reading_the_rest(sandbox, signer, good):
    """iss writes manifest.json and its signature first: an untrusted bundle is refused without
    reading (or extracting) the rest; here the rest is even cut off, and that is never noticed."""
    cut = sandbox / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    stranger = Signer.generate()
    before = snapshot(sandbox)
    with pytest.raises(UntrustedSource, match="not trusted for organization ACME"):
        open_bundle(
            cut,
            sandbox / "work",
            trusted=[TrustedKey("x", stranger.public_pem, stranger.fingerprint, (ORG,))],
            organization=ORG,
        )
    assert snapshot(sandbox) == before


@pytest.mark.parametrize("fmt", ["dir", "tgz", "iso"])
def test_open_with_trust_refuses_an_edited_manifest_before_extracting(sandbox, signer, trusted, fmt):
    out, _ = build(sandbox / "out", signer, "dir")
    raw = json.loads((out.path / "manifest.json").read_text())
    raw["organization"] = "EVIL"
    (out.path / "manifest.json").write_text(json.dumps(raw, sort_keys=True, indent=2))
    bundle = out.path
    if fmt != "dir":
        from iss_plugin.adapters.bundles.stream import Entry, tar_gz_stream

        entries = [
            Entry(p, (out.path / p).stat().st_size, source=out.path / p)
            for p in [
                "manifest.json",
                "manifest.json.sig",
                *sorted(
                    str(f.relative_to(out.path))
                    for f in out.path.rglob("*")
                    if f.is_file() and f.name not in ("manifest.json", "manifest.json.sig")
                ),
            ]
        ]
        if fmt == "tgz":
            bundle = sandbox / "edited.tar.gz"
            bundle.write_bytes(b"".join(tar_gz_stream(entries)))
        else:
            from iss_plugin.adapters.bundles.iso import write_iso

            bundle = sandbox / "edited.iso"
            with open(bundle, "wb") as fh:
                write_iso(entries, fh, volume_id="X")
        shutil.rmtree(out.path)
    before = snapshot(sandbox)
    with pytest.raises(BundleIntegrityError, match="changed after it was signed"):
        open_bundle(bundle, sandbox / "work", trusted=trusted, organization=ORG)
    assert snapshot(sandbox) == before


def test_open_with_trust_lets_a_good_bundle_through(sandbox, signer, trusted):
    for fmt in ("dir", "tgz", "iso"):
        out, contents = build(sandbox / f"ok-{fmt}", signer, fmt)
        with open_bundle(out.path, sandbox / "work", trusted=trusted, organization=ORG) as opened:
            assert len(verify_bundle(opened, trusted, ORG).files) == len(contents)
