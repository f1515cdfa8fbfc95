"""Migration 0006 on SQLite and PostgreSQL: the Red Hat repositories already imported become
repository sets; custom and locally created ones do not; downgrade removes what it added."""

from datetime import UTC, datetime

from sqlalchemy import inspect, text

from iss_plugin.adapters.db import migrate
from iss_plugin.adapters.db.engine import make_engine

BEFORE = "0005"  # the migration before 0006

ROWS = [
    "INSERT INTO organizations (id, label, name, created) VALUES (1, 'ACME', 'ACME', :now)",
    (
        "INSERT INTO products (id, organization_id, label, name, redhat, content_id) VALUES "
        "(1, 1, 'rhel-9', 'RHEL 9', :yes, 'rh-479'), (2, 1, 'tools', 'Tools', :no, NULL)"
    ),
    (
        "INSERT INTO repositories (id, product_id, label, name, content_type, backend_key) VALUES "
        "(1, 1, 'baseos', 'BaseOS', 'yum', 'ACME/rhel-9/baseos'), (2, 2, 'utils', 'utils', 'yum', 'ACME/tools/utils'), "
        "(3, 1, 'local', 'local', 'yum', 'ACME/rhel-9/local')"
    ),
    (
        "INSERT INTO content_views (id, organization_id, label, name, blessed, import_only, composite) VALUES "
        "(1, 1, 'base', 'Base', :no, :yes, :no)"
    ),
    (
        "INSERT INTO content_view_versions (id, content_view_id, major, minor, created, imported_from) VALUES "
        "(1, 1, 1, 0, :now, 'source')"
    ),
    (
        "INSERT INTO content_view_version_repositories "
        "(id, content_view_version_id, repository_id, backend_version, package_count, package_set_digest) VALUES "
        "(1, 1, 1, 1, 8, 'sha256:x'), (2, 1, 2, 1, 8, 'sha256:y')"
    ),
]


def test_0006_offers_the_red_hat_repositories_already_imported(database_url):
    migrate.upgrade(database_url, BEFORE)
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            for sql in ROWS:
                conn.execute(text(sql), {"now": datetime.now(UTC), "yes": True, "no": False})
        migrate.upgrade(database_url, "0006")  # later migrations have tests of their own
        assert migrate.current(database_url) == "0006"
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT product_label, content_id, repository_label, relative_path, backend_key FROM repository_sets"
                )
            ).all()
        assert [tuple(r) for r in rows] == [("rhel-9", "rh-479", "baseos", "repos/rhel-9/baseos", "ACME/rhel-9/baseos")]
        columns = {c["name"] for c in inspect(engine).get_columns("products")}
        assert {"sync_url_override", "description"} <= columns

        from alembic import command

        command.downgrade(migrate.alembic_config(database_url), BEFORE)
        engine.dispose()
        assert "repository_sets" not in inspect(engine).get_table_names()
        assert "cdn_url" not in {c["name"] for c in inspect(engine).get_columns("organizations")}
        migrate.upgrade(database_url, "0006")  # later migrations have tests of their own
        assert migrate.current(database_url) == "0006"
    finally:
        engine.dispose()
