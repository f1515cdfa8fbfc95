"""The one place that wires settings to adapters. Entry points (CLI, consumers, web) call it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from iss_plugin.adapters.db.engine import make_engine, make_session_factory
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.settings import Settings

if TYPE_CHECKING:
    from iss_plugin.adapters.backends.base import ContentBackend
    from iss_plugin.adapters.bundles.signing import Signer
    from iss_plugin.services.propagation import DestinationContext, SourceContext


@dataclass
class App:
    settings: Settings

    @cached_property
    def engine(self) -> Engine:
        from iss_plugin.adapters.db.migrate import require_schema

        require_schema(self.settings.db_url)  # a database `iss init` never migrated: say so, create nothing
        return make_engine(self.settings.db_url)

    @cached_property
    def session_factory(self) -> sessionmaker[Session]:
        return make_session_factory(self.engine)

    def backend_for(self, session: Session) -> ContentBackend:
        if self.settings.backend == "pulp":
            from iss_plugin.adapters.backends.pulp import PulpBackend

            return PulpBackend.from_settings(self.settings)
        from iss_plugin.adapters.backends.local import LocalBackend

        return LocalBackend(session, self.settings.store_path, self.settings.published_path)

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory, self.backend_for)

    @cached_property
    def signer(self) -> Signer:
        from iss_plugin.adapters.bundles.signing import load_signer

        return load_signer(self.settings.keys_path)

    @property
    def server_id(self) -> str:
        return self.settings.resolved_server_id()

    def source_context(self) -> SourceContext:
        """What the source-side handlers (export, status, reconcile) need of this server."""
        from datetime import timedelta

        from iss_plugin.services.propagation import SourceContext

        return SourceContext(
            server_id=self.server_id,
            signer=self.signer,
            exports_path=self.settings.exports_path,
            grace=timedelta(seconds=self.settings.reconcile_grace_seconds),
            staging_root=self.settings.data_dir / "staging",
            actor=self.settings.export_account,
            web_base_url=self.settings.web_base_url,
        )

    def destination_context(self) -> DestinationContext:
        from iss_plugin.services.propagation import DestinationContext

        return DestinationContext(
            server_id=self.server_id,
            imports_path=self.settings.imports_path,
            fetch_roots=tuple(self.settings.fetch_roots),
            actor=self.settings.import_account,
            signer=self.signer,
        )

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
