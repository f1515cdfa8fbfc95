"""`iss watch`: a repository version made outside iss is announced once; versions iss announced
itself are not announced again."""

from __future__ import annotations

from sqlalchemy import func, select

from iss_plugin.adapters.db.models import OutboxEvent
from iss_plugin.adapters.fixtures import build_rpms
from iss_plugin.bootstrap import App
from iss_plugin.domain.events import REPOSITORY_CHANGED
from iss_plugin.services import catalog
from iss_plugin.services.server_setup import initialize
from iss_plugin.settings import load_settings
from producers.repository_watcher import watch_once


def changed_events(app: App) -> list[dict]:
    with app.session_factory() as s:
        return [
            e.body["data"]
            for e in s.scalars(
                select(OutboxEvent).where(OutboxEvent.type == REPOSITORY_CHANGED).order_by(OutboxEvent.id)
            )
        ]


def test_watcher_announces_outside_versions_once(tmp_path, database_url):
    settings = load_settings(None, data_dir=str(tmp_path / "data"), server_id="src", database_url=database_url)
    initialize(settings)
    app = App(settings)
    try:
        catalog.create_organization(app.uow(), "ACME", "ACME", "t")
        catalog.create_product(app.uow(), "ACME", "Tools", "tools", False, None, "t")
        catalog.create_repository(app.uow(), "ACME", "tools", "utils", "utils", None, "yum", "t")
        catalog.upload_packages(app.uow(), "ACME", "tools/utils", build_rpms(tmp_path / "a", 3, prefix="a"), "t", "src")
        assert [e["version"] for e in changed_events(app)] == [1]
        assert watch_once(app) == []  # iss announced version 1 itself

        uow = app.uow()
        with uow:  # a version made behind iss's back (as a sync run from pulp-cli would)
            version = uow.backend.add_packages("ACME/tools/utils", build_rpms(tmp_path / "b", 2, prefix="b"))
            uow.commit()
        announced = watch_once(app)
        assert [(a["repository"], a["version"]) for a in announced] == [("ACME/tools/utils", version)]
        assert watch_once(app) == []
        events = changed_events(app)
        assert [e["version"] for e in events] == [1, version]
        assert events[-1]["package_count"] == 5
        with app.session_factory() as s:
            assert s.scalar(select(func.count()).select_from(OutboxEvent)) == 2
    finally:
        app.close()
