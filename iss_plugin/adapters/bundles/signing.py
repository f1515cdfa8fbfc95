"""Ed25519 keys: the source server signs each bundle's manifest.json, destinations verify it.

Files in the keys directory (``settings.keys_path``), written by ``iss init``:

    ed25519.key   the private key, PKCS#8 PEM, mode 0600 (never leaves the server)
    ed25519.pub   the public key, SubjectPublicKeyInfo PEM (what `iss trust add` takes elsewhere)

A key is named by its fingerprint ``sha256:<hex of the raw 32-byte public key>``; a signature
file holds the base64 text of the raw 64-byte Ed25519 signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from iss_plugin.domain.errors import ConfigError, UsageError

PRIVATE_KEY_NAME = "ed25519.key"
PUBLIC_KEY_NAME = "ed25519.pub"
SIGNATURE_BYTES = 64


@dataclass(frozen=True)
class TrustedKey:
    """A source's public key as a destination trusts it, and the organizations it may feed."""

    name: str
    public_pem: str
    fingerprint: str
    organizations: tuple[str, ...] = ()

    def may_feed(self, organization: str) -> bool:
        return organization in self.organizations


class Signer:
    """The server's private key. Signs bytes; knows its public half and fingerprint."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        public = private_key.public_key()
        self.public_pem: str = _public_pem(public)
        self.fingerprint: str = _fingerprint(public)

    @classmethod
    def generate(cls) -> Signer:
        """A fresh key that lives only in memory (tests, throwaway demos)."""
        return cls(Ed25519PrivateKey.generate())

    def sign(self, data: bytes) -> bytes:
        """base64 text (ASCII bytes) of the raw 64-byte Ed25519 signature of `data`."""
        return base64.b64encode(self._key.sign(data))

    def private_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def __repr__(self) -> str:
        return f"Signer({self.fingerprint})"


def generate_keypair(keys_dir: Path) -> Signer:
    """Create the server's key pair in `keys_dir`. Refuses to overwrite an existing key."""
    keys_dir = Path(keys_dir)
    private_path, public_path = keys_dir / PRIVATE_KEY_NAME, keys_dir / PUBLIC_KEY_NAME
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise UsageError(
                f"{path} already exists: refusing to overwrite a signing key "
                "(destinations trust it; move it away yourself if you really mean to replace it)"
            )
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    signer = Signer.generate()
    _write_new(private_path, signer.private_pem(), 0o600)
    try:
        _write_new(public_path, signer.public_pem.encode("ascii"), 0o644)
    except BaseException:
        private_path.unlink(missing_ok=True)
        raise
    return signer


def load_signer(keys_dir: Path) -> Signer:
    """The server's key from `keys_dir`; ConfigError naming the file when it is missing or bad."""
    private_path = Path(keys_dir) / PRIVATE_KEY_NAME
    try:
        data = private_path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"no signing key: {private_path} is missing; run `iss init` first") from None
    except OSError as e:
        raise ConfigError(f"cannot read the signing key {private_path}: {e.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, binascii.Error) as e:
        raise ConfigError(f"{private_path} is not an unencrypted PEM private key: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{private_path} is not an Ed25519 private key")
    signer = Signer(key)
    public_path = Path(keys_dir) / PUBLIC_KEY_NAME
    if public_path.exists():
        try:
            stored = fingerprint_of(public_path.read_text())
        except UsageError as e:
            raise ConfigError(f"{public_path}: {e.message}") from None
        if stored != signer.fingerprint:
            raise ConfigError(
                f"{public_path} ({stored}) is not the public half of {private_path} ({signer.fingerprint})"
            )
    return signer


def load_public_key(pem_text: str | bytes) -> Ed25519PublicKey:
    """Parse a PEM public key; UsageError unless it is an Ed25519 public key."""
    data = pem_text.encode("ascii", "replace") if isinstance(pem_text, str) else bytes(pem_text)
    try:
        key = serialization.load_pem_public_key(data.strip() + b"\n")
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        raise UsageError(
            "not a PEM public key: expected the contents of a source's ed25519.pub ('-----BEGIN PUBLIC KEY-----' ...)"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError(
            f"not an Ed25519 public key (got {type(key).__name__.removeprefix('_')}); iss keys are Ed25519"
        )
    return key


def read_public_key_file(path: Path) -> str:
    """The PEM text of the Ed25519 public key in `path`; UsageError naming the file when it cannot
    be read or is not one (binary, not UTF-8, not PEM, another key type)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory: give the PEM public key file (ed25519.pub)") from None
    except OSError as e:
        raise UsageError(f"cannot read the public key file {path}: {e.strerror}") from None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise UsageError(
            f"{path} is not a PEM public key (it is not text): give the contents of the other "
            "server's ed25519.pub (`iss keys show` there)"
        ) from None
    try:
        fingerprint_of(text)
    except UsageError as e:
        raise UsageError(f"{path}: {e.message}") from None
    return text


def fingerprint_of(pem_text: str | bytes) -> str:
    """`sha256:<hex>` of the raw public key in `pem_text` (UsageError on garbage)."""
    return _fingerprint(load_public_key(pem_text))


def verify(pem_text: str | bytes, data: bytes, signature: bytes | str) -> bool:
    """True when `signature` (base64 text, surrounding whitespace ignored) signs `data` under the key."""
    key = load_public_key(pem_text)
    if isinstance(signature, str):
        signature = signature.encode("ascii", "replace")
    try:
        raw = base64.b64decode(bytes(signature).strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(raw) != SIGNATURE_BYTES:
        return False
    try:
        key.verify(raw, data)
    except InvalidSignature:
        return False
    return True


def _public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(
        "ascii"
    )


def _fingerprint(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create `path` exclusively with `mode` (no window where a private key is world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have removed bits from `mode`; set exactly
        with os.fdopen(fd, "wb", closefd=False) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        os.close(fd)
