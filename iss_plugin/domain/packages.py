"""Packages as values, and the package set digest that both sides compare."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Package:
    name: str
    epoch: str
    version: str
    release: str
    arch: str
    sha256: str
    size: int
    location: str  # relative href inside a yum tree, e.g. Packages/f/foo-1.0-1.noarch.rpm

    @property
    def nevra(self) -> str:
        epoch = f"{self.epoch}:" if self.epoch not in ("", "0", None) else ""
        return f"{self.name}-{epoch}{self.version}-{self.release}.{self.arch}"

    @property
    def filename(self) -> str:
        return self.location.rsplit("/", 1)[-1]


def package_set_digest(sha256s: Iterable[str]) -> str:
    """sha256 over the sorted, de-duplicated package checksums, one per line.

    Version numbers differ between servers; this digest is what says two versions hold the same
    packages."""
    h = hashlib.sha256()
    for s in sorted({s.lower() for s in sha256s}):
        h.update(s.encode("ascii"))
        h.update(b"\n")
    return "sha256:" + h.hexdigest()


def standard_location(filename: str) -> str:
    """Where a package file lives in an iss yum tree: Packages/<first letter>/<file>."""
    first = filename[0].lower() if filename else "_"
    return f"Packages/{first}/{filename}"
