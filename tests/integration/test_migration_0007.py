"""Migration 0007 on SQLite and PostgreSQL: products gain gpg_key and gpg_key_fingerprints
(existing products keep no key); downgrade removes them and keeps the products."""

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import inspect, text

from iss_plugin.adapters.db import migrate
from iss_plugin.adapters.db.engine import make_engine


def test_0007_adds_product_gpg_keys_and_removes_them_on_downgrade(database_url):
    migrate.upgrade(database_url, "0006")
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO organizations (id, label, name, created) VALUES (1, 'ACME', 'ACME', :now)"),
                {"now": datetime.now(UTC)},
            )
            conn.execute(
                text(
                    "INSERT INTO products (id, organization_id, label, name, redhat) VALUES (1, 1, 'tools', 'Tools', :no)"
                ),
                {"no": False},
            )
        migrate.upgrade(database_url, "0007")
        assert migrate.current(database_url) == "0007"
        with engine.connect() as conn:
            row = conn.execute(text("SELECT label, gpg_key, gpg_key_fingerprints FROM products")).one()
        assert tuple(row) == ("tools", None, None)

        command.downgrade(migrate.alembic_config(database_url), "0006")
        engine.dispose()
        columns = {c["name"] for c in inspect(engine).get_columns("products")}
        assert "gpg_key" not in columns and "gpg_key_fingerprints" not in columns
        with engine.connect() as conn:
            assert conn.execute(text("SELECT label FROM products")).scalar_one() == "tools"
    finally:
        engine.dispose()
