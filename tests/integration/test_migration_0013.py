"""Migration 0013 on SQLite and PostgreSQL: processed_events.at is indexed and pruned_event_counts
exists; downgrade drops both and keeps the markers."""

from alembic import command
from sqlalchemy import inspect, text

from iss_plugin.adapters.db import migrate
from iss_plugin.adapters.db.engine import make_engine

BEFORE = "0012"


def test_0013_indexes_marker_age_and_adds_pruned_counts_and_downgrades(database_url):
    migrate.upgrade(database_url, BEFORE)
    engine = make_engine(database_url)
    try:
        with engine.begin() as c:
            c.execute(
                text("INSERT INTO processed_events (event_id, consumer, at) VALUES ('e', 'import', CURRENT_TIMESTAMP)")
            )
        migrate.upgrade(database_url, "0013")
        assert migrate.current(database_url) == "0013"
        insp = inspect(engine)
        assert {i["name"]: i["column_names"] for i in insp.get_indexes("processed_events")}[
            "ix_processed_events_at"
        ] == ["at"]
        assert {c["name"] for c in insp.get_columns("pruned_event_counts")} == {"name", "outcome", "count"}
        command.downgrade(migrate.alembic_config(database_url), BEFORE)
        engine.dispose()
        insp = inspect(engine)
        assert "pruned_event_counts" not in insp.get_table_names()
        assert "ix_processed_events_at" not in {i["name"] for i in insp.get_indexes("processed_events")}
        with engine.connect() as c:
            assert c.execute(text("SELECT event_id FROM processed_events")).scalars().all() == ["e"]
    finally:
        engine.dispose()
