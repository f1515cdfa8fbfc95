"""The local store's metadata units (migration 0008): advisories, comps entries, modulemd documents.

A unit is stored once by its digest (domain.content_units); a repository's versions hold units
through Pulp-style membership ranges [version_added, version_removed), like packages."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base


class StoreUnit(Base):
    __tablename__ = "store_units"
    id: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(String(80), unique=True)  # covers kind and body
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(Text)  # advisory id, group id, name:stream:version:context:arch, ...
    body: Mapped[str] = mapped_column(Text)  # canonical XML element or YAML document
    packages: Mapped[str] = mapped_column(Text, default="")  # NEVRAs it names, one per line


class StoreRepositoryUnit(Base):
    __tablename__ = "store_repository_units"
    __table_args__ = (Index("ix_store_units_repo", "repository_id", "version_removed"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("store_repositories.id", ondelete="CASCADE"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("store_units.id"))
    version_added: Mapped[int] = mapped_column(Integer)
    version_removed: Mapped[int | None] = mapped_column(Integer, nullable=True)
