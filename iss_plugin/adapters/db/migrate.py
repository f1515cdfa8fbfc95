"""Alembic, driven from code so that the installed package carries its migrations.

Alembic itself is imported only to migrate or to explain a schema that is not at the head: every
command and the server check the schema when they open the database, and importing Alembic costs
about 11 MiB of RSS, which a pull of 20,000 packages cannot spare (issue 12: under 150 MB)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    from alembic.config import Config

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
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def current(url: str, *, plain: bool = False) -> str | None:
    """The database's Alembic revision (None: none, or no version table). plain=True: a bare
    engine (for SQLite: no WAL pragma, so looking changes nothing in the file)."""
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.exc import MultipleResultsFound
    from sqlalchemy.pool import NullPool

    from .engine import make_engine

    engine = create_engine(url, poolclass=NullPool) if plain and url.startswith("sqlite") else make_engine(url)
    try:
        with engine.connect() as conn:
            # what alembic's MigrationContext.get_current_revision reads, without importing Alembic
            if not inspect(conn).has_table(_VERSION_TABLE):
                return None
            try:
                return conn.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalar_one_or_none()
            except MultipleResultsFound:
                raise RuntimeError(f"{_VERSION_TABLE} holds several revisions (branches): iss has one line") from None
    finally:
        engine.dispose()


_VERSION_TABLE = "alembic_version"


@cache
def _single_head() -> str | None:
    """The head of the migrations read from their files (`revision = "…"`, `down_revision = …`):
    None when it is not one plain chain of literals, and then schema_problem asks Alembic."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found: dict[str, object] = {}
        for node in ast.parse(path.read_text(), str(path)).body:
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
                continue
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                try:
                    found[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    return None
        if "revision" not in found or "down_revision" not in found:
            return None
        revision, parent = found["revision"], found["down_revision"]
        if not isinstance(revision, str) or not (parent is None or isinstance(parent, str)):
            return None
        revisions.add(revision)
        if parent is not None:
            parents.add(parent)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def schema_problem(url: str) -> str | None:
    """Why this database cannot be used as it is (no iss schema, or an older or unknown one), or
    None when it is at the migrations' head. Never creates a SQLite file that does not exist."""
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
    if revision == _single_head():
        return None
    from alembic.script import ScriptDirectory

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
