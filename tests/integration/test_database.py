"""The schema migrates on SQLite and PostgreSQL, and the unit of work rolls back unless committed."""

from sqlalchemy import inspect, select

from iss_plugin.adapters.db import migrate
from iss_plugin.adapters.db.engine import make_engine, make_session_factory
from iss_plugin.adapters.db.models import Organization
from iss_plugin.adapters.db.uow import UnitOfWork


def test_migrations_create_every_table(database_url):
    migrate.upgrade(database_url)
    migrate.upgrade(database_url)  # idempotent
    engine = make_engine(database_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {
        "organizations",
        "products",
        "repositories",
        "content_views",
        "content_view_versions",
        "content_view_version_repositories",
        "destinations",
        "trusted_sources",
        "entitlements",
        "exports",
        "imports",
        "audit_log",
        "outbox",
        "processed_events",
        "store_packages",
    } <= tables
    assert migrate.current(database_url) is not None


def test_unit_of_work_rolls_back_unless_committed(database_url):
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    undone = []
    try:
        uow = UnitOfWork(factory, lambda s: None)
        with uow:
            uow.session.add(Organization(label="lost", name="lost"))
            uow.on_rollback(lambda: undone.append("file removed"))
        with uow:
            uow.session.add(Organization(label="kept", name="kept"))
            uow.commit()
        with uow:
            labels = list(uow.session.scalars(select(Organization.label)))
    finally:
        engine.dispose()
    assert labels == ["kept"]
    assert undone == ["file removed"]


def test_the_schema_check_reads_the_head_alembic_reads(database_url):
    """schema_problem answers "at the head" without importing Alembic (11 MiB of RSS in every
    command): the head it reads from the migration files is Alembic's, and the revision it reads
    from the database is MigrationContext's."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    migrate.upgrade(database_url)
    heads = ScriptDirectory.from_config(migrate.alembic_config(database_url)).get_heads()
    assert [migrate._single_head()] == heads
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            assert migrate.current(database_url) == MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    assert migrate.schema_problem(database_url) is None
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0009'")
    finally:
        engine.dispose()
    assert "is at schema revision 0009, this iss needs" in (migrate.schema_problem(database_url) or "")
