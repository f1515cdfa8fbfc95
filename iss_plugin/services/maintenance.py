"""Store maintenance: files no package references (after a crashed or rolled-back import)."""

from __future__ import annotations


def collect_garbage(app, min_age_seconds: float = 3600) -> int:
    """Remove store files no committed package row references and older than min_age_seconds
    (younger ones may belong to a transaction in flight); on Pulp, its orphan cleanup. Backends
    without either: 0."""
    uow = app.uow()
    with uow:
        gc = getattr(uow.backend, "remove_orphan_blobs", None)
        return gc(min_age_seconds) if gc else 0
