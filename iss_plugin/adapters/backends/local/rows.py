"""The store's tables as the local backend's queries see them, and the small helpers they share.

The hot queries use Core columns (P, C): they skip the ORM's row processing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TypeVar, cast

from sqlalchemy import Table

from iss_plugin.adapters.db.models import StorePackage, StoreRepositoryContent, StoreRepositoryVersion
from iss_plugin.domain.labels import check_label
from iss_plugin.domain.packages import Package

BATCH = 500  # rows per IN (...) list and per ingestion batch

V = StoreRepositoryVersion
# A declarative class's __table__ is a Table; SQLAlchemy's stubs only promise a FromClause.
CONTENT = cast(Table, StoreRepositoryContent.__table__)
PACKAGES = cast(Table, StorePackage.__table__)
P = PACKAGES.c
C = CONTENT.c

# (package id, sha256, location): a package as the version arithmetic sees it
Item = tuple[int, str, str]
PACKAGE_COLUMNS = (P.name, P.epoch, P.version, P.release, P.arch, P.sha256, P.size, P.location)  # = Package's fields

T = TypeVar("T")


def batched(seq: Sequence[T], n: int = BATCH) -> Iterator[Sequence[T]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def by_location(p: Package) -> tuple[str, str]:
    return p.location, p.sha256


def check_key(key: str) -> list[str]:
    parts = key.split("/")
    for part in parts:
        check_label(part, what=f"repository key part '{part}' of '{key}'")
    return parts


def safe_relpath(rel: str) -> bool:
    return not rel.startswith("/") and ".." not in rel.split("/") and "\\" not in rel and "\0" not in rel
