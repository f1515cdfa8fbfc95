"""Migration 0010 on SQLite and PostgreSQL: destinations.online (false for the rows there before)
and destinations.url; downgrade drops both."""

from alembic import command
from sqlalchemy import inspect, text

from iss_plugin.adapters.db import migrate
from iss_plugin.adapters.db.engine import make_engine

BEFORE = "0009"


def columns(engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("destinations")}


def test_0010_adds_online_and_url_to_destinations_and_drops_them_on_downgrade(database_url):
    migrate.upgrade(database_url, BEFORE)
    engine = make_engine(database_url)
    try:
        assert {"online", "url"}.isdisjoint(columns(engine))
        with engine.begin() as c:
            c.execute(
                text(
                    "INSERT INTO destinations (name, server_id, public_key, created) "
                    "VALUES ('old', 'old-1', 'pem', CURRENT_TIMESTAMP)"
                )
            )
        migrate.upgrade(database_url, "0010")
        assert migrate.current(database_url) == "0010"
        with engine.connect() as c:
            assert c.execute(text("SELECT online, url FROM destinations")).one() == (False, None)
        command.downgrade(migrate.alembic_config(database_url), BEFORE)
        engine.dispose()
        assert {"online", "url"}.isdisjoint(columns(engine))
    finally:
        engine.dispose()
