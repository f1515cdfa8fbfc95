"""Migration 0012 on SQLite and PostgreSQL: users.session_generation (0 for the users there
before, not null); downgrade drops it and keeps the users."""

from alembic import command
from sqlalchemy import inspect, text

from iss_plugin.adapters.db import migrate
from iss_plugin.adapters.db.engine import make_engine

BEFORE = "0011"


def columns(engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("users")}


def test_0012_adds_session_generation_to_users_and_drops_it_on_downgrade(database_url):
    migrate.upgrade(database_url, BEFORE)
    engine = make_engine(database_url)
    try:
        assert "session_generation" not in columns(engine)
        with engine.begin() as c:
            c.execute(
                text(
                    "INSERT INTO users (login, password_hash, admin, service_account, disabled, created) "
                    "VALUES ('vic', 'hash', false, false, true, CURRENT_TIMESTAMP)"
                )
            )
        migrate.upgrade(database_url, "0012")
        assert migrate.current(database_url) == "0012"
        with engine.connect() as c:
            assert c.execute(text("SELECT login, disabled, session_generation FROM users")).one() == ("vic", True, 0)
        with engine.begin() as c:  # not null: a user made by other code still gets generation 0
            c.execute(
                text(
                    "INSERT INTO users (login, admin, service_account, disabled, created) "
                    "VALUES ('ci', false, true, false, CURRENT_TIMESTAMP)"
                )
            )
            assert c.execute(text("SELECT session_generation FROM users WHERE login = 'ci'")).scalar_one() == 0
        [generation] = [col for col in inspect(engine).get_columns("users") if col["name"] == "session_generation"]
        assert generation["nullable"] is False
        command.downgrade(migrate.alembic_config(database_url), BEFORE)
        engine.dispose()
        assert "session_generation" not in columns(engine)
        with engine.connect() as c:
            assert c.execute(text("SELECT login FROM users ORDER BY login")).scalars().all() == ["ci", "vic"]
    finally:
        engine.dispose()
