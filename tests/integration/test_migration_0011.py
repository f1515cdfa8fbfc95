"""Migration 0011 on SQLite and PostgreSQL: trusted_sources.server_id (null for the rows there
before: a request is then addressed to the trusted source's name); downgrade drops it."""

from alembic import command
from sqlalchemy import inspect, text

from iss_plugin.adapters.db import migrate
from iss_plugin.adapters.db.engine import make_engine

BEFORE = "0010"


def columns(engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("trusted_sources")}


def test_0011_adds_server_id_to_trusted_sources_and_drops_it_on_downgrade(database_url):
    migrate.upgrade(database_url, BEFORE)
    engine = make_engine(database_url)
    try:
        assert "server_id" not in columns(engine)
        with engine.begin() as c:
            c.execute(
                text(
                    "INSERT INTO trusted_sources (name, public_key, fingerprint, organizations, created) "
                    "VALUES ('cdn-source', 'pem', 'sha256:00', '{\"ACME\": \"ACME\"}', CURRENT_TIMESTAMP)"
                )
            )
        migrate.upgrade(database_url, "0011")
        assert migrate.current(database_url) == "0011"
        with engine.connect() as c:
            assert c.execute(text("SELECT name, server_id FROM trusted_sources")).one() == ("cdn-source", None)
        command.downgrade(migrate.alembic_config(database_url), BEFORE)
        engine.dispose()
        assert "server_id" not in columns(engine)
    finally:
        engine.dispose()
