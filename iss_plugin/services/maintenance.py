"""Store maintenance: files no package references (after a crashed or rolled-back import)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from iss_plugin.adapters.db.uow import UnitOfWork


class MakesUnitsOfWork(Protocol):
    """The application (iss_plugin.bootstrap.App): a new unit of work on each call."""

    def uow(self) -> UnitOfWork: ...


def collect_garbage(app: MakesUnitsOfWork, min_age_seconds: float = 3600) -> int:
    """Remove store files no committed package row references and older than min_age_seconds
    (younger ones may belong to a transaction in flight); on Pulp, its orphan cleanup. Backends
    without either: 0."""
    uow = app.uow()
    with uow:
        gc: Callable[[float], int] | None = getattr(uow.backend, "remove_orphan_blobs", None)
        return gc(min_age_seconds) if gc else 0
