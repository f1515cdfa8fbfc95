"""Unit of work: one session (and the backend bound to it) that rolls back unless committed."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from iss_plugin.adapters.backends.base import ContentBackend


class UnitOfWork:
    def __init__(
        self, session_factory: sessionmaker[Session], backend_factory: Callable[[Session], ContentBackend]
    ) -> None:
        self._session_factory = session_factory
        self._backend_factory = backend_factory
        self.session: Session
        self.backend: ContentBackend
        self._after_rollback: list[Callable[[], None]] = []
        self._after_commit: list[Callable[[], None]] = []

    def __enter__(self) -> UnitOfWork:
        self.session = self._session_factory()
        self.backend = self._backend_factory(self.session)
        self._after_rollback = []
        self._after_commit = []
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.rollback()
        finally:
            self.session.close()

    def commit(self) -> None:
        self.session.commit()
        hooks, self._after_commit, self._after_rollback = self._after_commit, [], []
        for hook in hooks:
            hook()

    def rollback(self) -> None:
        self.session.rollback()
        hooks, self._after_rollback, self._after_commit = self._after_rollback, [], []
        for hook in reversed(hooks):
            hook()

    def on_rollback(self, hook: Callable[[], None]) -> None:
        """Undo a side effect outside the database (a file written) if the transaction is not committed."""
        self._after_rollback.append(hook)

    def on_commit(self, hook: Callable[[], None]) -> None:
        self._after_commit.append(hook)
