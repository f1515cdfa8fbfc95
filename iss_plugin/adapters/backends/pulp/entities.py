"""Pulp's answers read as iss values: the fields the backend asks for, checksums, times, packages."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from iss_plugin.adapters.backends.pulp.client import Entity
from iss_plugin.domain.errors import BackendError
from iss_plugin.domain.packages import Package, standard_location

PACKAGE_FIELDS = [
    "pulp_href",
    "name",
    "epoch",
    "version",
    "release",
    "arch",
    "pkgId",
    "checksum_type",
    "sha256",
    "size_package",
    "location_href",
]
SET_FIELDS = ["pulp_href", "pkgId", "checksum_type", "sha256", "location_href"]
HREF_BATCH = 40  # content hrefs per `pulp_href__in` query (same limit)
IN_BATCH = 50  # checksums per `pkgId__in` query: gunicorn refuses request lines over 4094 bytes

T = TypeVar("T")


def utc(text: str) -> datetime:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def sha_of(entity: Entity) -> str:
    sha: str | None = entity.get("sha256")
    if not sha and (entity.get("checksum_type") or "").lower() == "sha256":
        sha = entity.get("pkgId")
    if not sha:
        raise BackendError(f"Pulp package {entity.get('pulp_href')} has no sha256 (on-demand content is not supported)")
    return sha.lower()


def package_of(e: Entity) -> Package:
    filename = (e.get("location_href") or "").rsplit("/", 1)[-1]
    return Package(
        name=e["name"],
        epoch=str(e.get("epoch") or "0"),
        version=e["version"],
        release=e["release"],
        arch=e["arch"],
        sha256=sha_of(e),
        size=int(e.get("size_package") or 0),
        location=standard_location(filename),
    )


def href_of(entity: Entity) -> str:
    href: str = entity["pulp_href"]
    return href


def first_created(task: Entity) -> str:
    """The href of the first resource a finished task created."""
    href: str = task["created_resources"][0]
    return href


def version_number(href: str) -> int:
    return int(href.rstrip("/").rsplit("/", 1)[-1])


def batched(seq: Sequence[T], n: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]
