"""Two iss servers on one machine, driven through the real CLI (click's runner, in-process)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from iss_plugin.cli.main import build_cli


@dataclass
class Server:
    name: str
    root: Path
    database_url: str | None = None

    @property
    def config(self) -> Path:
        return self.root / "settings.toml"

    def write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        lines = [f'data_dir = "{self.root / "data"}"', f'server_id = "{self.name}"']
        if self.database_url:
            lines.append(f'database_url = "{self.database_url}"')
        self.config.write_text("\n".join(lines) + "\n")

    def run(self, *args: str, expect: int | None = 0):
        result = CliRunner().invoke(build_cli(), ["--config", str(self.config), *args], catch_exceptions=False)
        if expect is not None:
            assert result.exit_code == expect, f"iss {' '.join(args)} -> {result.exit_code}\n{result.output}"
        return result

    def json(self, *args: str, expect: int | None = 0):
        result = self.run("--output", "json", *args, expect=expect)
        return json.loads(result.stdout)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def state(self) -> dict:
        """Everything an import may change: catalog and store rows, store and published files."""
        from iss_plugin.adapters.db import models as m
        from iss_plugin.adapters.db import store_unit_models as su
        from iss_plugin.bootstrap import App
        from iss_plugin.settings import load_settings

        app = App(load_settings(self.config))
        tables = [
            m.Organization,
            m.Product,
            m.Repository,
            m.ContentView,
            m.ContentViewRepository,
            m.ContentViewVersion,
            m.ContentViewVersionRepository,
            m.Entitlement,
            m.TrustedSource,
            m.StorePackage,
            m.StoreRepository,
            m.StoreRepositoryVersion,
            m.StoreRepositoryContent,
            su.StoreUnit,
            su.StoreRepositoryUnit,
        ]
        out: dict = {}
        try:
            with app.session_factory() as s:
                for t in tables:
                    cols = [c.key for c in t.__table__.columns]
                    out[t.__tablename__] = sorted(tuple(str(getattr(r, c)) for c in cols) for r in s.scalars(select(t)))
        finally:
            app.close()
        for d in ("store", "published"):
            base = self.data / d
            out[d] = sorted(str(p.relative_to(base)) for p in base.rglob("*")) if base.exists() else []
        return out
