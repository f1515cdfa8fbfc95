"""Migration 0008 on SQLite and PostgreSQL: the store's metadata unit tables and a version's
units_digest; existing versions keep their digest (no units); downgrade removes what it added."""

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import inspect, text

from iss_plugin.adapters.db import migrate
from iss_plugin.adapters.db.engine import make_engine

BEFORE = "0007"  # the migration before 0008
DIGEST = "sha256:" + "ab" * 32


def test_0008_adds_the_unit_tables_and_keeps_existing_versions(database_url):
    migrate.upgrade(database_url, BEFORE)
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO store_repositories (id, key, content_type, latest_version) VALUES (1, 'A/b/c', 'yum', 0)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO store_repository_versions (id, repository_id, number, created, package_count, digest) "
                    "VALUES (1, 1, 0, :now, 0, :digest)"
                ),
                {"now": datetime.now(UTC), "digest": DIGEST},
            )
        migrate.upgrade(database_url, "0008")
        tables = set(inspect(engine).get_table_names())
        assert {"store_units", "store_repository_units"} <= tables
        with engine.connect() as conn:
            row = conn.execute(text("SELECT digest, units_digest FROM store_repository_versions")).one()
        assert tuple(row) == (DIGEST, None)

        command.downgrade(migrate.alembic_config(database_url), BEFORE)
        engine.dispose()
        assert not {"store_units", "store_repository_units"} & set(inspect(engine).get_table_names())
        assert "units_digest" not in {c["name"] for c in inspect(engine).get_columns("store_repository_versions")}
        migrate.upgrade(database_url, "0008")
        assert migrate.current(database_url) == "0008"
    finally:
        engine.dispose()
