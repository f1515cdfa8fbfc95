"""Destination-side content management tables (migration 0006)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, utcnow


class RepositorySet(Base):
    """A Red Hat repository that arrived in an imported bundle, offered for enabling.

    Enabled means: a Repository row of the organization sits on `backend_key` (one truth, no flag to
    drift). Disabling deletes that row and keeps the store's content, so enabling brings it back."""

    __tablename__ = "repository_sets"
    __table_args__ = (UniqueConstraint("organization_id", "product_label", "repository_label"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    product_label: Mapped[str] = mapped_column(String(128))
    content_id: Mapped[str] = mapped_column(String(64))
    repository_label: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(32), default="yum")
    relative_path: Mapped[str] = mapped_column(Text)  # repos/<product>/<repository> in the bundle
    backend_key: Mapped[str] = mapped_column(String(400))  # where the imported content lives in the store
    bundle_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    bundle_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    imported: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, default=utcnow)
