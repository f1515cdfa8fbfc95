"""services/audit.py over a real database: rows with organization and outcome, the filters of
`iss audit list`, and failed exports recorded."""

from datetime import UTC, datetime, timedelta

from iss_plugin.adapters.db import migrate
from iss_plugin.adapters.db.engine import make_engine, make_session_factory
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain.errors import BackendError
from iss_plugin.services import audit, exporting


def test_audit_rows_and_filters(database_url):
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    try:
        uow = UnitOfWork(make_session_factory(engine), lambda session: None)  # no content backend needed
        audit.record(uow, "alice", "user.grant", "bob", organization="ACME", outcome="success", role="Viewer")
        audit.record(uow, "bob", "permission.denied", "product list", organization="LAB", outcome="denied")
        request = exporting.ExportRequest(
            organization="ACME", scope="content_view_version", incremental=False, content_view="base"
        )
        exporting.record_failed_export(uow, request, BackendError("disk full"), "carol")

        rows = audit.list_audit(uow)
        assert [(r["actor"], r["action"], r["organization"], r["outcome"]) for r in rows] == [
            ("carol", "content.export", "ACME", "failed"),
            ("bob", "permission.denied", "LAB", "denied"),
            ("alice", "user.grant", "ACME", "success"),
        ]
        assert rows[0]["details"]["reason"] == "backend" and "disk full" in rows[0]["details"]["message"]
        assert [r["actor"] for r in audit.list_audit(uow, organization="ACME")] == ["carol", "alice"]
        assert [r["actor"] for r in audit.list_audit(uow, action="user.")] == ["alice"]
        assert [r["actor"] for r in audit.list_audit(uow, action="user.grant")] == ["alice"]
        assert [r["actor"] for r in audit.list_audit(uow, organizations=frozenset({"LAB"}))] == ["bob"]
        assert audit.list_audit(uow, since=datetime.now(UTC) + timedelta(minutes=1)) == []
        assert len(audit.list_audit(uow, since=datetime.now(UTC) - timedelta(minutes=1))) == 3
    finally:
        engine.dispose()
