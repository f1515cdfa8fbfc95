"""Alembic, driven from code so that the installed package carries its migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if (
        u.get_backend_name() == "sqlite"
        and u.database
        and u.database != ":memory:"
        and not u.database.startswith("file:")
    ):
        Path(u.database).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


def current(url: str, *, plain: bool = False) -> str | None:
    """The database's Alembic revision. plain=True: a bare engine (for SQLite: no WAL pragma, so
    looking changes nothing in the file)."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from .engine import make_engine

    engine = create_engine(url, poolclass=NullPool) if plain and url.startswith("sqlite") else make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def schema_problem(url: str) -> str | None:
    """Why this database cannot be used as it is (no iss schema, or an older or unknown one), or
    None when it is at the migrations' head. Never creates a SQLite file that does not exist."""
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import make_url

    u = make_url(url)
    where = u.render_as_string(hide_password=True)
    if u.get_backend_name() == "sqlite":
        db = u.database or ""
        if db and db != ":memory:" and not db.startswith("file:") and not Path(db).exists():
            return f"database {db} does not exist"
    revision = current(url, plain=True)
    if revision is None:
        return f"database {where} has no iss schema (no Alembic revision)"
    script = ScriptDirectory.from_config(alembic_config(url))
    heads = set(script.get_heads())
    if revision in heads:
        return None
    try:
        known = script.get_revision(revision) is not None
    except Exception:
        known = False
    if known:
        return f"database {where} is at schema revision {revision}, this iss needs {', '.join(sorted(heads))}"
    return f"database {where} is at schema revision {revision}, which this iss does not know (a newer iss migrated it)"


def require_schema(url: str) -> None:
    """ConfigError (exit 2) saying what to run when the database is not at the migrations' head."""
    from iss_plugin.domain.errors import ConfigError

    problem = schema_problem(url)
    if problem is not None:
        fix = (
            "upgrade iss on this server" if "does not know" in problem else "run `iss init` (or `iss db upgrade`) first"
        )
        raise ConfigError(f"{problem}: {fix}")
