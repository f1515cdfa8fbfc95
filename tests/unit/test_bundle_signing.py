"""Ed25519 signing and verification, in memory."""

import base64
import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from iss_plugin.adapters.bundles.signing import Signer, TrustedKey, fingerprint_of, load_public_key, verify
from iss_plugin.domain.errors import UsageError


def test_sign_and_verify():
    s = Signer.generate()
    sig = s.sign(b"manifest bytes")
    assert len(base64.b64decode(sig)) == 64
    assert verify(s.public_pem, b"manifest bytes", sig)
    assert verify(s.public_pem, b"manifest bytes", sig + b"\n")  # a trailing newline in the .sig file
    assert verify(s.public_pem, b"manifest bytes", sig.decode())


def test_tampering_and_wrong_keys_fail():
    s, other = Signer.generate(), Signer.generate()
    sig = s.sign(b"data")
    assert not verify(s.public_pem, b"data!", sig)
    assert not verify(other.public_pem, b"data", sig)
    raw = bytearray(base64.b64decode(sig))
    raw[0] ^= 1
    assert not verify(s.public_pem, b"data", base64.b64encode(bytes(raw)))
    for garbage in (b"", b"!!!", b"AAAA", base64.b64encode(b"x" * 63), base64.b64encode(b"x" * 65)):
        assert not verify(s.public_pem, b"data", garbage)


def test_fingerprint_is_sha256_of_the_raw_public_key():
    s = Signer.generate()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", s.fingerprint)
    assert fingerprint_of(s.public_pem) == s.fingerprint
    assert fingerprint_of(s.public_pem.encode()) == s.fingerprint
    assert fingerprint_of("\n  " + s.public_pem + "\n\n") == s.fingerprint
    assert Signer.generate().fingerprint != s.fingerprint


@pytest.mark.parametrize(
    "text", ["", "hello", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "\x00\xff"]
)
def test_garbage_public_keys_are_usage_errors(text):
    with pytest.raises(UsageError, match="not a PEM public key"):
        load_public_key(text)
    with pytest.raises(UsageError):
        fingerprint_of(text)


def test_other_key_types_are_refused():
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(UsageError, match="not an Ed25519 public key"):
        load_public_key(pem)


def test_trusted_key_feeds_only_its_organizations():
    s = Signer.generate()
    k = TrustedKey("src", s.public_pem, s.fingerprint, ("ACME", "LAB"))
    assert k.may_feed("ACME") and k.may_feed("LAB") and not k.may_feed("acme") and not k.may_feed("QA")
