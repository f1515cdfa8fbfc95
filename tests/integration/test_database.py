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
