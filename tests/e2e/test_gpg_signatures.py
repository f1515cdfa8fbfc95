"""Product GPG keys through the CLI: set on the source, carried by the bundle, created on the
destination's product; every imported package of a keyed product must be signed by its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from iss_plugin.adapters.fixtures import SigningKey, build_rpm, build_rpms, make_signing_key, sign_rpms

from .conftest import CUSTOM, make_destination
from .servers import Server


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return make_signing_key("iss tools <tools@example.invalid>")


@pytest.fixture(scope="module")
def other_key() -> SigningKey:
    return make_signing_key("someone else <else@example.invalid>")


def key_file(tmp_path: Path, key: SigningKey, name: str = "tools.asc") -> Path:
    path = tmp_path / name
    path.write_text(key.public)
    return path


def export_repository(source: Server, tmp_path: Path, key: SigningKey, extra: list[Path]) -> Path:
    """tools/utils on the source: 3 packages signed with key plus `extra`, exported in full."""
    source.run(
        "product",
        "set-gpg-key",
        "--organization",
        "ACME",
        "--product",
        CUSTOM,
        "--key-file",
        str(key_file(tmp_path, key)),
    )
    source.run("repository", "create", "--organization", "ACME", "--product", CUSTOM, "--name", "utils")
    signed = build_rpms(tmp_path / "rpms", 3, prefix="signed")
    sign_rpms(signed, key)
    source.run(
        "repository", "upload", "--organization", "ACME", "--repository", f"{CUSTOM}/utils", *map(str, signed + extra)
    )
    out = source.json(
        "content-export", "complete", "repository", "--organization", "ACME", "--product", CUSTOM,
        "--repository", "utils", "--format", "tgz",
    )  # fmt: skip
    return Path(out["path"])


def import_repository(dest: Server, bundle: Path, expect: int):
    return dest.run("content-import", "repository", "--organization", "ACME", "--path", str(bundle), expect=expect)


def test_signed_import_creates_the_key_on_the_destination(source, tmp_path, key):
    bundle = export_repository(source, tmp_path, key, [])
    dest = make_destination(tmp_path, source)
    import_repository(dest, bundle, 0)
    info = dest.json("product", "info", "--organization", "ACME", "--product", CUSTOM)
    assert info["gpg_key"] == key.fingerprint
    listed = {p["label"]: p for p in dest.json("product", "list", "--organization", "ACME")}
    assert listed[CUSTOM]["gpg_key"] == key.fingerprint
    assert dest.json("repository", "info", "--organization", "ACME", "--repository", f"{CUSTOM}/utils")


def tampered(directory: Path, key: SigningKey) -> Path:
    path = build_rpm(directory, "tampered")
    sign_rpms([path], key)
    data = bytearray(path.read_bytes())
    at = data.find(b"iss test package")  # the summary, inside the signed header
    data[at] ^= 0x20
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("kind", ["unsigned", "wrong-key", "tampered"])
def test_badly_signed_package_refused_with_its_name(source, tmp_path, key, other_key, kind):
    bad_dir = tmp_path / "bad"
    if kind == "unsigned":
        bad, reason = build_rpm(bad_dir, "unsigned"), "not signed"
    elif kind == "wrong-key":
        bad = build_rpm(bad_dir, "wrongkey")
        sign_rpms([bad], other_key)
        reason = "not with the product's GPG key"
    else:
        bad, reason = tampered(bad_dir, key), "altered"
    bundle = export_repository(source, tmp_path, key, [bad])
    dest = make_destination(tmp_path, source)
    before = dest.state()
    r = import_repository(dest, bundle, 3)
    assert bad.name in r.output and reason in r.output, r.output
    assert "signed0" not in r.output.split("nothing was imported", 1)[1], "a good package was named"
    dry = dest.run(
        "content-import", "repository", "--organization", "ACME", "--path", str(bundle), "--dry-run", expect=3
    )
    assert bad.name in dry.output, dry.output
    assert dest.state() == before, "a refused import changed the destination"


def test_different_key_on_the_destination_refused(source, tmp_path, key, other_key):
    bundle = export_repository(source, tmp_path, key, [])
    dest = make_destination(tmp_path, source)
    dest.run("product", "create", "--organization", "ACME", "--name", "Tools", "--label", CUSTOM)
    dest.run(
        "product", "set-gpg-key", "--organization", "ACME", "--product", CUSTOM,
        "--key-file", str(key_file(tmp_path, other_key, "other.asc")),
    )  # fmt: skip
    before = dest.state()
    r = import_repository(dest, bundle, 3)
    assert "GPG key" in r.output and key.fingerprint in r.output and other_key.fingerprint in r.output, r.output
    assert dest.state() == before
    # the admin accepts the source's key here: then the same bundle imports
    dest.run(
        "product",
        "set-gpg-key",
        "--organization",
        "ACME",
        "--product",
        CUSTOM,
        "--key-file",
        str(key_file(tmp_path, key)),
    )
    import_repository(dest, bundle, 0)


def test_destination_key_applies_to_a_bundle_without_one(source, tmp_path, key, other_key):
    source.run("repository", "create", "--organization", "ACME", "--product", CUSTOM, "--name", "utils")
    files = build_rpms(tmp_path / "rpms", 2, prefix="plain")
    source.run("repository", "upload", "--organization", "ACME", "--repository", f"{CUSTOM}/utils", *map(str, files))
    out = source.json(
        "content-export", "complete", "repository", "--organization", "ACME", "--product", CUSTOM,
        "--repository", "utils", "--format", "tgz",
    )  # fmt: skip
    dest = make_destination(tmp_path, source)
    dest.run("product", "create", "--organization", "ACME", "--name", "Tools", "--label", CUSTOM)
    dest.run(
        "product",
        "set-gpg-key",
        "--organization",
        "ACME",
        "--product",
        CUSTOM,
        "--key-file",
        str(key_file(tmp_path, key)),
    )
    r = import_repository(dest, Path(out["path"]), 3)
    assert "plain0000-1.0-1.noarch.rpm: not signed" in r.output, r.output


def test_set_gpg_key_refuses_what_is_not_a_public_key(source, tmp_path, key):
    before = source.state()
    for text, needle in (("hello", "not a usable GPG public key"), (key.secret, "not a usable GPG public key")):
        bad = tmp_path / "bad.asc"
        bad.write_text(text)
        r = source.run(
            "product", "set-gpg-key", "--organization", "ACME", "--product", CUSTOM, "--key-file", str(bad), expect=2
        )
        assert needle in r.output and str(bad) in r.output, r.output
    r = source.run("product", "set-gpg-key", "--organization", "ACME", "--product", CUSTOM, expect=2)
    assert "--key-file" in r.output
    assert source.state() == before
    source.run(
        "product",
        "set-gpg-key",
        "--organization",
        "ACME",
        "--product",
        CUSTOM,
        "--key-file",
        str(key_file(tmp_path, key)),
    )
    assert source.json("product", "info", "--organization", "ACME", "--product", CUSTOM)["gpg_key"] == key.fingerprint
    source.run("product", "set-gpg-key", "--organization", "ACME", "--product", CUSTOM, "--remove")
    assert source.json("product", "info", "--organization", "ACME", "--product", CUSTOM)["gpg_key"] is None


def test_an_unusable_key_in_a_signed_manifest_is_refused(source, tmp_path, key):
    """A source whose database holds a broken key (set behind iss's back) exports it; the
    destination reads it with gpg and refuses the bundle."""
    from sqlalchemy import update

    from iss_plugin.adapters.db.models import Product
    from iss_plugin.bootstrap import App
    from iss_plugin.settings import load_settings

    bundle_key = export_repository(source, tmp_path, key, [])  # a good export first: the repository exists
    app = App(load_settings(source.config))
    try:
        with app.session_factory() as s:
            broken = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbm90IGEga2V5\n-----END PGP PUBLIC KEY BLOCK-----\n"
            s.execute(update(Product).where(Product.label == CUSTOM).values(gpg_key=broken))
            s.commit()
    finally:
        app.close()
    out = source.json(
        "content-export", "complete", "repository", "--organization", "ACME", "--product", CUSTOM,
        "--repository", "utils", "--format", "tgz",
    )  # fmt: skip
    assert Path(out["path"]) != bundle_key
    dest = make_destination(tmp_path, source)
    before = dest.state()
    r = import_repository(dest, Path(out["path"]), 3)
    assert f"GPG key for product '{CUSTOM}' is unusable" in r.output, r.output
    assert dest.state() == before
