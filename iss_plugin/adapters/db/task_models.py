"""Background tasks of the web API (migration 0009): bulk exports and imports run by `iss serve`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from schemas import JSONObject

from .models import Base, utcnow


class Task(Base):
    """One request the server runs in the background: queued -> running -> done | failed."""

    __tablename__ = "tasks"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # a uuid4, the API's task id
    kind: Mapped[str] = mapped_column(String(16))  # export | import
    organization: Mapped[str] = mapped_column(String(128))
    actor: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16), default="queued")  # queued | running | done | failed
    request: Mapped[JSONObject] = mapped_column(JSON, default=dict)
    result: Mapped[JSONObject | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
