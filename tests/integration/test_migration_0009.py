"""Migration 0009 on SQLite and PostgreSQL: the tasks table of the web API, written through the
model and read back; downgrade drops it."""

from alembic import command
from sqlalchemy import inspect
from sqlalchemy.orm import Session

from iss_plugin.adapters.db import migrate
from iss_plugin.adapters.db.engine import make_engine
from iss_plugin.adapters.db.task_models import Task

BEFORE = "0008"  # the migration before 0009


def test_0009_adds_the_tasks_table_and_drops_it_on_downgrade(database_url):
    migrate.upgrade(database_url, BEFORE)
    engine = make_engine(database_url)
    try:
        assert "tasks" not in inspect(engine).get_table_names()
        migrate.upgrade(database_url, "0009")
        assert migrate.current(database_url) == "0009"
        with Session(engine) as s:
            s.add(Task(id="t-1", kind="export", organization="ACME", actor="admin", state="queued", request={"a": 1}))
            s.commit()
            got = s.get(Task, "t-1")
            assert (got.state, got.request, got.result, got.created is not None) == ("queued", {"a": 1}, None, True)
        command.downgrade(migrate.alembic_config(database_url), BEFORE)
        engine.dispose()
        assert "tasks" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()
