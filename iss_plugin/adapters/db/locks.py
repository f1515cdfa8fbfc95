"""Advisory locks: serialize work that has no single row to lock (PostgreSQL only).

`pg_advisory_xact_lock` is held until the transaction ends (commit, rollback, or the connection
dropping when a worker is killed), so nothing has to release it. On SQLite it is a no-op: writers
are serialized by the database file lock already."""

from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.orm import Session


def lock_key(*parts: str) -> int:
    """A signed 64-bit key from the parts (stable across processes and versions, unlike hash())."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def advisory_xact_lock(session: Session, *parts: str) -> None:
    """Wait for the transaction-scoped lock named by `parts` (PostgreSQL); a no-op elsewhere."""
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(*parts)})
