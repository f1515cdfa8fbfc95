"""Test and demo content: valid RPM packages built in-process with rpm-rs, and yum trees made with
createrepo_c's own writer. Deterministic: the same arguments give byte-identical files.

    build_rpm(dir, "foo", version="1.0")          -> dir/foo-1.0-1.noarch.rpm
    build_rpms(dir, 1000, prefix="pkg")            -> [dir/pkg0000-1.0-1.noarch.rpm, ...]
    write_yum_repo(dir, rpm_paths)                 -> dir with Packages/ and repodata/
    sign_rpms(paths, make_signing_key())           -> the files signed in place with a throwaway key
    add_repo_metadata(dir, updateinfo=updateinfo_xml([advisory(...)]), comps=comps_xml([...]),
                      modules=modules_yaml([...]))  -> advisories, groups, modules (fixture_metadata)
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, Unpack

SOURCE_DATE = 1_700_000_000  # fixed build time: reproducible packages

_COMPRESSION = {"none": "NONE", "gzip": "Gzip", "xz": "Xz", "zstd": "Zstd"}


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("\0".join(map(str, parts)).encode()).digest()[:8], "big")


class RpmOptions(TypedDict, total=False):
    """build_rpm's options after release, as build_rpms passes them on."""

    arch: str
    payload_size: int
    seed: int | None
    epoch: int | None
    summary: str | None
    requires: Iterable[str]
    provides: Iterable[str]
    compression: str
    filename: str | None


def build_rpm(
    directory: Path | str,
    name: str,
    version: str = "1.0",
    release: str = "1",
    arch: str = "noarch",
    payload_size: int = 20_000,
    seed: int | None = None,
    *,
    epoch: int | None = None,
    summary: str | None = None,
    requires: Iterable[str] = (),
    provides: Iterable[str] = (),
    compression: str = "none",
    filename: str | None = None,
) -> Path:
    """Build one RPM (format v4) holding /usr/share/<name>/data.bin of payload_size pseudo-random bytes.

    compression: the payload compressor ("none" is fastest; the payload is random, it would not
    shrink anyway; "gzip", "xz", "zstd" for realism). filename: the file name to write instead of
    the canonical <name>-<version>-<release>.<arch>.rpm."""
    import rpm_rs

    if compression not in _COMPRESSION:
        raise ValueError(f"compression must be one of {sorted(_COMPRESSION)}, not {compression!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if seed is None:
        seed = _seed(name, epoch, version, release, arch, payload_size)
    config = rpm_rs.BuildConfig(
        format=rpm_rs.RpmFormat.V4,
        compression=getattr(rpm_rs.CompressionType, _COMPRESSION[compression]),
        source_date=SOURCE_DATE,
        reserved_space=0,
    )
    builder = rpm_rs.PackageBuilder(name, version, "MIT", arch, summary or f"{name}: iss test package")
    builder.release(release)
    builder.using_config(config)
    builder.description(f"Test package {name} built by iss_plugin.adapters.fixtures (seed {seed}).")
    builder.build_host("iss-fixtures")
    builder.vendor("iss")
    if epoch is not None:
        builder.epoch(int(epoch))
    for dep in requires:
        builder.requires(dep)
    for cap in provides:
        builder.provides(cap)
    builder.add_changelog_entry(
        "iss fixtures <iss@example.invalid>", f"- build {name}-{version}-{release}", SOURCE_DATE
    )
    payload = random.Random(seed).randbytes(payload_size)
    builder.with_file_contents(payload, rpm_rs.FileOptions.new(f"/usr/share/{name}/data.bin"))
    package = builder.build()
    path = directory / (filename or f"{name}-{version}-{release}.{arch}.rpm")
    package.write_file(str(path))
    return path


def build_rpms(
    directory: Path | str,
    count: int,
    prefix: str = "pkg",
    version: str = "1.0",
    release: str = "1",
    *,
    start: int = 0,
    **kwargs: Unpack[RpmOptions],
) -> list[Path]:
    """count packages named <prefix><nnnn> (from start), all with the same version and release."""
    width = max(4, len(str(start + count - 1)))
    return [
        build_rpm(directory, f"{prefix}{i:0{width}d}", version, release, **kwargs) for i in range(start, start + count)
    ]


def write_yum_repo(
    directory: Path | str,
    rpm_paths: Sequence[Path | str],
    *,
    compression: str = "gz",
    flat: bool = False,
) -> Path:
    """A yum tree made with createrepo_c's own writer: the packages copied under Packages/<x>/ (or
    at the top with flat=True) and repodata/ with primary, filelists and other (compression gz,
    xz, zstd or bz2). Returns the directory. Replaces an existing repodata/."""
    import createrepo_c as cr

    from iss_plugin.adapters.content_types.yum import write_repodata
    from iss_plugin.domain.packages import standard_location

    comp = {"gz": cr.GZ_COMPRESSION, "xz": cr.XZ_COMPRESSION, "zstd": cr.ZSTD_COMPRESSION, "bz2": cr.BZ2_COMPRESSION}[
        compression
    ]
    directory = Path(directory)
    repodata = directory / "repodata"
    if repodata.exists():
        shutil.rmtree(repodata)
    repodata.mkdir(parents=True)
    packages = []
    for src in map(Path, rpm_paths):
        href = src.name if flat else standard_location(src.name)
        target = directory / href
        if target.resolve() != src.resolve():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
        packages.append(cr.package_from_rpm(str(target), cr.SHA256, href, None, 10))
    write_repodata(repodata, packages, comp)
    return directory


def file_sha256(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


from iss_plugin.adapters.fixture_metadata import (  # noqa: E402  (the metadata writers, one import away)
    FixtureGroup,
    FixtureModule,
    add_repo_metadata,
    advisory,
    comps_xml,
    modules_yaml,
    updateinfo_xml,
)

__all__ = [
    "SOURCE_DATE",
    "FixtureGroup",
    "FixtureModule",
    "SigningKey",
    "add_repo_metadata",
    "advisory",
    "build_rpm",
    "build_rpms",
    "comps_xml",
    "file_sha256",
    "make_signing_key",
    "modules_yaml",
    "sign_rpms",
    "updateinfo_xml",
    "write_yum_repo",
]


# --- signed packages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    """A throwaway OpenPGP key without a passphrase: ASCII-armored public and secret halves."""

    public: str
    secret: str
    fingerprint: str


def make_signing_key(uid: str = "iss fixtures <iss@example.invalid>") -> SigningKey:
    """A new Ed25519 signing key made by gpg in a temporary GNUPGHOME (no network, no passphrase)."""
    with tempfile.TemporaryDirectory(prefix="iss-gnupg-") as home:
        env = {**os.environ, "GNUPGHOME": home}

        def gpg(*args: str) -> str:
            done = subprocess.run(["gpg", "--batch", "--no-tty", *args], env=env, capture_output=True, check=True)
            return done.stdout.decode()

        try:
            gpg("--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
            public = gpg("--armor", "--export", uid)
            secret = gpg("--armor", "--export-secret-keys", uid)
            fingerprint = next(
                line.split(":")[9]
                for line in gpg("--with-colons", "--list-keys", uid).splitlines()
                if line[:4] == "fpr:"
            )
        finally:
            subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True, check=False)
    return SigningKey(public, secret, fingerprint)


def sign_rpms(paths: Iterable[Path | str], key: SigningKey) -> None:
    """Sign package files in place (rpm-rs's Signer: a v4 header signature, as rpmsign makes)."""
    import rpm_rs

    signer = rpm_rs.Signer(key.secret.encode())
    for path in paths:
        package = rpm_rs.Package.open(str(path))
        package.sign(signer, timestamp=SOURCE_DATE)
        package.write_file(str(path))
