"""adapters.signatures with the real tools: gpg reads keys, rpmkeys checks packages signed
in-process (fixtures.make_signing_key + sign_rpms)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from iss_plugin.adapters import signatures
from iss_plugin.adapters.fixtures import SigningKey, build_rpm, build_rpms, make_signing_key, sign_rpms


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return make_signing_key("iss tests <tests@example.invalid>")


@pytest.fixture(scope="module")
def other() -> SigningKey:
    return make_signing_key("not the product <other@example.invalid>")


def test_a_public_key_gives_its_fingerprint(key):
    assert signatures.validate_public_key(key.public) == (key.fingerprint,)


def test_two_keys_in_one_file_give_both_fingerprints(key, other):
    assert signatures.validate_public_key(key.public + other.public) == tuple(
        sorted((key.fingerprint, other.fingerprint))
    )


@pytest.mark.parametrize(
    "text, needle",
    [
        ("hello", "no BEGIN PGP PUBLIC KEY BLOCK"),
        ("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot base64 at all\n-----END PGP PUBLIC KEY BLOCK-----\n", "gpg"),
    ],
    ids=["text", "garbage-armor"],
)
def test_what_is_not_a_key_is_refused(text, needle):
    with pytest.raises(signatures.NotAPublicKey, match=needle):
        signatures.validate_public_key(text)


def test_a_secret_key_is_refused(key):
    with pytest.raises(signatures.NotAPublicKey):
        signatures.validate_public_key(key.secret)
    with pytest.raises(signatures.NotAPublicKey, match="secret key"):
        signatures.validate_public_key(key.public + key.secret.replace("PRIVATE", "PUBLIC"))


def test_signed_packages_pass_and_each_bad_one_is_named_with_its_reason(tmp_path: Path, key, other):
    good = build_rpms(tmp_path, 3, prefix="good")
    sign_rpms(good, key)
    unsigned = build_rpm(tmp_path, "unsigned")
    wrong = build_rpm(tmp_path, "wrong")
    sign_rpms([wrong], other)
    header = build_rpm(tmp_path, "header")
    sign_rpms([header], key)
    data = bytearray(header.read_bytes())
    data[data.find(b"iss test package")] ^= 0x20
    header.write_bytes(bytes(data))
    payload = build_rpm(tmp_path, "payload")
    sign_rpms([payload], key)
    data = bytearray(payload.read_bytes())
    data[-10] ^= 0x01
    payload.write_bytes(bytes(data))
    junk = tmp_path / "junk-1-1.noarch.rpm"
    junk.write_bytes(b"not an rpm")
    shutil.copy(good[0], tmp_path / "name with spaces.rpm")

    names = [p.name for p in good] + ["name with spaces.rpm"]
    assert signatures.find_bad_signatures(tmp_path, names, key.public) == []
    bad = signatures.find_bad_signatures(
        tmp_path, [*names, unsigned.name, wrong.name, header.name, payload.name, junk.name], key.public
    )
    by_file = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in bad}
    assert set(by_file) == {unsigned.name, wrong.name, header.name, payload.name, junk.name}
    assert by_file[unsigned.name].startswith("not signed")
    assert (
        other.fingerprint[-8:].lower() in by_file[wrong.name]
        and "not with the product's GPG key" in by_file[wrong.name]
    )
    assert "altered" in by_file[header.name]
    assert "altered" in by_file[payload.name]
    assert "not a readable RPM" in by_file[junk.name]


def test_many_files_go_in_batches(tmp_path: Path, key, monkeypatch):
    monkeypatch.setattr(signatures, "BATCH", 7)
    files = build_rpms(tmp_path, 30, prefix="many", payload_size=100)
    sign_rpms(files[:-1], key)
    assert signatures.find_bad_signatures(tmp_path, [f.name for f in files], key.public) == [
        f"{files[-1].name}: not signed (the product has a GPG key: its packages must be signed with it)"
    ]
