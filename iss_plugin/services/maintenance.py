"""Store maintenance: files no package references (after a crashed or rolled-back import)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from iss_plugin.adapters.db.uow import UnitOfWork


class MakesUnitsOfWork(Protocol):
    """The application (iss_plugin.bootstrap.App): a new unit of work on each call."""

    def uow(self) -> UnitOfWork: ...


@runtime_checkable
class CollectsGarbage(Protocol):
    """Optional backend capability: remove store content nothing references (local store, Pulp)."""

    def remove_orphan_blobs(self, min_age_seconds: float) -> int: ...


def collect_garbage(app: MakesUnitsOfWork, min_age_seconds: float = 3600) -> int:
    """Remove store files no committed package row references and older than min_age_seconds
    (younger ones may belong to a transaction in flight); on Pulp, its orphan cleanup. Backends
    without either: 0."""
    uow = app.uow()
    with uow:
        backend = uow.backend
        return backend.remove_orphan_blobs(min_age_seconds) if isinstance(backend, CollectsGarbage) else 0
