"""OpenPGP through the tools that own it: gpg reads a public key, rpmkeys checks RPM signatures.

No OpenPGP is parsed here: `gpg --import-options show-only` (in a throwaway GNUPGHOME) says what a
key file holds, and `rpmkeys --checksig` (librpm, what dnf uses) checks package files against a
throwaway rpm database holding only the product's key. Many files go to one rpmkeys call."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BATCH = 250  # files per rpmkeys call: few processes, short command lines
THREADS = 2


class NotAPublicKey(ValueError):
    """The text is not an OpenPGP public key (or holds a secret key)."""


def public_key_fingerprints(armored: str) -> tuple[str, ...]:
    """The primary key fingerprints of an ASCII-armored public key; NotAPublicKey otherwise."""
    if "-----BEGIN PGP PUBLIC KEY BLOCK-----" not in armored:
        raise NotAPublicKey("not an ASCII-armored OpenPGP public key (no BEGIN PGP PUBLIC KEY BLOCK line)")
    with tempfile.TemporaryDirectory(prefix="iss-gpg-") as home:
        done = subprocess.run(
            ["gpg", "--batch", "--no-tty", "--with-colons", "--import-options", "show-only", "--import"],
            input=armored.encode(),
            capture_output=True,
            env={**os.environ, "GNUPGHOME": home},
            check=False,
            timeout=60,
        )
    rows = [line.split(":") for line in done.stdout.decode(errors="replace").splitlines()]
    if any(r[0] in ("sec", "ssb") for r in rows):
        raise NotAPublicKey("the file holds a secret key: give the public key only (gpg --armor --export)")
    fingerprints = [r[9] for prev, r in zip([[""], *rows], rows, strict=False) if prev[0] == "pub" and r[0] == "fpr"]
    if done.returncode != 0 or not fingerprints:
        reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no public key found"]
        raise NotAPublicKey(f"gpg could not read it as a public key ({reason[0]})")
    return tuple(sorted(f.upper() for f in fingerprints))


def validate_public_key(armored: str) -> tuple[str, ...]:
    """Fingerprints of a key gpg reads as a public key and rpm can import; NotAPublicKey otherwise."""
    fingerprints = public_key_fingerprints(armored)
    with tempfile.TemporaryDirectory(prefix="iss-rpmdb-") as dbpath:
        key_file = Path(dbpath) / "product.asc"
        key_file.write_text(armored)
        done = _rpmkeys(dbpath, Path(dbpath), ["--import", str(key_file)])
    if done.returncode != 0:
        raise NotAPublicKey(f"rpm cannot import it: {done.stderr.decode(errors='replace').strip()}")
    return fingerprints


def find_bad_signatures(root: Path, files: Sequence[str], armored_key: str) -> list[str]:
    """'<file>: <reason>' for every file under root (relative paths) that is not validly signed by
    the key; [] when all are."""
    if not files:
        return []
    with tempfile.TemporaryDirectory(prefix="iss-rpmdb-") as dbpath:
        key_file = Path(dbpath) / "product.asc"
        key_file.write_text(armored_key)
        _rpmkeys(dbpath, root, ["--import", str(key_file)], check=True)
        batches = [files[i : i + BATCH] for i in range(0, len(files), BATCH)]
        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(lambda batch: _check_batch(dbpath, root, batch), batches))
    return [problem for problems in results for problem in problems]


def _check_batch(dbpath: str, root: Path, files: Sequence[str]) -> list[str]:
    done = _rpmkeys(dbpath, root, ["--define", "_pkgverify_level all", "--checksig", "-v", "--", *files])
    blocks = dict(_blocks(done.stdout.decode(errors="replace"), set(files)))
    errors = done.stderr.decode(errors="replace")
    problems = []
    for name in files:
        reason = _verdict(blocks.get(name, []))
        if reason is not None:
            detail = next((e for e in errors.splitlines() if name in e), "")
            problems.append(f"{name}: {reason}" + (f" ({detail.strip()})" if detail else ""))
    return problems


def _blocks(stdout: str, names: set[str]) -> Iterator[tuple[str, list[str]]]:
    """rpmkeys -Kv prints each file as '<name>:' followed by indented result lines."""
    name: str | None = None
    lines: list[str] = []
    for line in stdout.splitlines():
        if not line[:1].isspace() and line.endswith(":") and line[:-1] in names:
            if name is not None:
                yield name, lines
            name, lines = line[:-1], []
        elif name is not None:
            lines.append(line.strip())
    if name is not None:
        yield name, lines


def _verdict(lines: list[str]) -> str | None:
    """None when signed by the key and intact; otherwise why not."""
    if not lines:
        return "not a readable RPM package"
    for line in lines:
        if line.endswith(": NOKEY"):
            key_id = line.split("key ID ")[-1].split(":")[0]
            return f"signed with key ID {key_id}, not with the product's GPG key"
        if "Signature" in line and ": BAD" in line:
            return "bad signature: the package was altered after it was signed"
        if ": BAD" in line:
            return f"the package was altered ({line.split(':')[0]} does not match)"
        if not (line.endswith((": OK", ": NOTFOUND"))):
            return f"rpm says {line!r}"
    if not any("Signature, key ID" in line and line.endswith(": OK") for line in lines):
        return "not signed (the product has a GPG key: its packages must be signed with it)"
    return None


def _rpmkeys(dbpath: str, root: Path, args: list[str], *, check: bool = False) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run(
        ["rpmkeys", "--dbpath", dbpath, *args], cwd=root, capture_output=True, check=False, timeout=600
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"rpmkeys {args[0]} failed: {done.stderr.decode(errors='replace').strip()}")
    return done
