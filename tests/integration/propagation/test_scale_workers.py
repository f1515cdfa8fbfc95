"""Workers scale horizontally: two export, two status and two import workers per server on one
PostgreSQL database and one queue each do every piece of work once, with workers killed mid-work.

Two reconcile loops run every second. Five content views published at once (twice) to three
destinations: every destination ends with every version exactly once; every (view, version) is
exported once (the destinations share their bases) and announced once to each destination. One
export worker is SIGKILLed while it holds a built bundle and its subscription locks, uncommitted;
one import worker is SIGKILLed with an import applied and not committed (holding its import
locks). Their messages go to the other workers; their transactions roll back."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select

from consumers.demo import CUSTOM_PRODUCT, ORG, make_server, prepare_destination
from iss_plugin.adapters.bus.topology import export_queue_name, import_queue_name, status_queue_name
from iss_plugin.adapters.db import models as m
from iss_plugin.adapters.fixtures import build_rpms
from iss_plugin.bootstrap import App
from iss_plugin.domain import events as ev
from iss_plugin.services import catalog, content_views, exporting, importing, subscriptions
from iss_plugin.settings import BusSettings
from tests.integration.bus.conftest import drain

from .conftest import ACTOR, _another_database, imports, outbox, versions, write_config

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]
VIEWS = [f"view{i}" for i in range(5)]
T = 300
EVERY_SECOND = {"ISS_RECONCILE_INTERVAL_SECONDS": "1"}


def _make_views(src: App, root: Path) -> None:
    """Each view: its own repository, and acme-tools/utils which every view shares (so imports of
    different views write versions of one repository at the same time)."""
    for view in VIEWS:
        catalog.create_repository(src.uow(), ORG, CUSTOM_PRODUCT, f"{view}-repo", f"{view}-repo", None, "yum", ACTOR)
        _add_packages(src, root, view, "a")
        content_views.create_content_view(
            src.uow(), ORG, view, view, True, [f"{CUSTOM_PRODUCT}/{view}-repo", f"{CUSTOM_PRODUCT}/utils"], ACTOR
        )


def _add_packages(src: App, root: Path, view: str, tag: str) -> None:
    files = build_rpms(root / "rpms" / f"{view}-{tag}", 2, prefix=f"{view}-{tag}-pkg")
    catalog.upload_packages(src.uow(), ORG, f"{CUSTOM_PRODUCT}/{view}-repo", files, ACTOR, src.server_id)


def _subscribe(src: App, dst: App, root: Path, *, add: bool) -> None:
    if add:  # the live fixture's destination is there already
        subscriptions.add_destination(src.uow(), dst.server_id, dst.server_id, dst.signer.public_pem, ACTOR)
    for view in VIEWS:
        subscriptions.subscribe(src.uow(), dst.server_id, ORG, view, None, ACTOR)


def _settled(src: App, want: str) -> bool:
    with src.session_factory() as s:
        subs = list(s.scalars(select(m.Subscription).where(m.Subscription.content_view.in_(VIEWS))))
    return len(subs) == 3 * len(VIEWS) and all(x.acknowledged == want and x.in_flight is None for x in subs)


def _first_round_out(src: App) -> bool:
    with src.session_factory() as s:
        subs = list(s.scalars(select(m.Subscription).where(m.Subscription.content_view.in_(VIEWS))))
    return len(subs) == 3 * len(VIEWS) and all("1.0" in (x.in_flight, x.acknowledged) for x in subs)


def _cv_versions(app: App) -> int:
    with app.session_factory() as s:
        return s.scalar(
            select(func.count())
            .select_from(m.ContentViewVersion)
            .join(m.ContentView)
            .where(m.ContentView.label.in_(VIEWS))
        )


def test_two_workers_per_role_three_destinations_each_version_once_with_workers_killed(live, tmp_path, request):
    src = live.src
    _make_views(src, tmp_path)
    dsts, configs = [live.dst], [live.dst_config]
    for i in (1, 2):
        db = _another_database(request)
        dst = make_server(tmp_path, f"destination-{i}", bus=live.bus, database_url=db)
        live.runtimes.append(_Closer(dst))
        prepare_destination(dst, src, tmp_path, ACTOR)
        dsts.append(dst)
        configs.append(write_config(tmp_path, dst.server_id, db, live.bus))
    for dst in dsts:
        _subscribe(src, dst, tmp_path, add=dst is not live.dst)

    export_frozen, import_frozen = tmp_path / "export-frozen", tmp_path / "import-frozen"
    live.role("source", "relay", name="source-relay")
    killed_export = live.role(
        "source",
        "worker",
        "export",
        name="source-export-0",
        env={"ISS_FAILPOINT": "export.before_commit", "ISS_FAILPOINT_FILE": str(export_frozen)},
    )
    live.role("source", "worker", "export", name="source-export-1")
    for i in range(2):
        live.role("source", "worker", "status", name=f"source-status-{i}")
        # reconcile races the workers for subscriptions that are behind with nothing in flight
        live.role("source", "run", "--role", "reconcile", name=f"source-reconcile-{i}", env=EVERY_SECOND)
    killed_import = None
    for dst, config in zip(dsts, configs, strict=True):
        live.procs.start(config, "run", "--role", "relay", name=f"{dst.server_id}-relay")
        for i in range(2):
            env = {"ISS_FAILPOINT": "import.before_commit", "ISS_FAILPOINT_FILE": str(import_frozen)}
            proc = live.procs.start(
                config,
                "worker",
                "import",
                name=f"{dst.server_id}-import-{i}",
                env=env if dst is live.dst and i == 0 else None,
            )
            killed_import = killed_import or proc
    prefix = live.bus["prefix"]
    queues = [export_queue_name(prefix), status_queue_name(prefix, src.server_id)]
    queues += [import_queue_name(prefix, d.server_id) for d in dsts]
    live.wait(lambda: all(live.consumers(q) >= 2 for q in queues), T, "two consumers on every queue")

    for view in VIEWS:  # at once: five events on the export queue
        content_views.publish(src.uow(), ORG, view, None, ACTOR, src.server_id)
    live.wait(export_frozen.exists, T, "an export worker frozen before its commit")
    live.procs.kill(killed_export, signal.SIGKILL)
    # a destination that holds nothing gets the latest version (reconcile's rule): publish the
    # second round once every first-round bundle is out, so each destination gets both versions
    live.wait(lambda: _first_round_out(src), T, "every 1.0 bundle out (the killed worker's redone)")
    for view in VIEWS:  # the second round while the first is still being imported and answered
        _add_packages(src, tmp_path, view, "b")
        content_views.publish(src.uow(), ORG, view, None, ACTOR, src.server_id)
    live.wait(import_frozen.exists, T, "an import worker frozen before its commit")
    live.procs.kill(killed_import, signal.SIGKILL)

    live.wait(lambda: _settled(src, "2.0"), T, "every subscription acknowledged 2.0")
    time.sleep(1.5)  # anything still on its way would show up now

    # one bundle per (view, version): the three destinations share their bases (services.fanout)
    exported = Counter((e.content_view, e.version) for e in _done_exports(src))
    assert exported == Counter({(v, n): 1 for v in VIEWS for n in ("1.0", "2.0")})
    announced = Counter(
        (e.body["data"]["content_view"], e.body["data"]["version"], e.body["data"]["destination"])
        for e in outbox(src, ev.BUNDLE_READY)
    )
    assert announced == Counter({(v, n, d.server_id): 1 for v in VIEWS for n in ("1.0", "2.0") for d in dsts})
    for dst in dsts:
        for view in VIEWS:
            assert versions(dst, view) == ["1.0", "2.0"], dst.server_id
        assert _cv_versions(dst) == 2 * len(VIEWS)
        done = Counter((i.content_view, i.version) for i in imports(dst, state="imported"))
        assert done == Counter({(v, n): 1 for v in VIEWS for n in ("1.0", "2.0")}), dst.server_id
    bus = BusSettings(**live.bus)
    for q in queues:
        assert drain(bus, f"{q}.parked") == [], q


def _done_exports(app: App) -> list[m.ExportRecord]:
    with app.session_factory() as s:
        return list(s.scalars(select(m.ExportRecord).where(m.ExportRecord.state == "done")))


class _Closer:
    """Lets the live fixture close an extra destination's App at the end (it shuts runtimes down)."""

    def __init__(self, app: App) -> None:
        self.app = app

    def shutdown(self) -> None:
        self.app.close()


def test_two_bundles_of_one_version_imported_at_once_make_it_once(live):
    """Two import workers, two bundles of the same version (a resend overtook the first): the
    second waits for the first's commit (the view's import lock) and finds it imported.
    Without the lock both planned against the same snapshot and the second died on a unique key."""
    src, dst = live.src, live.dst
    content_views.publish(src.uow(), ORG, "base", None, ACTOR, src.server_id)
    bundles = [_export_full(src) for _ in range(2)]
    reached = [threading.Event(), threading.Event()]

    def importer(i: int) -> importing.ImportSummary:
        def before_commit(_tx: object, _summary: object) -> None:
            reached[i].set()
            reached[1 - i].wait(3)  # without the lock both get here; with it the other waits on the lock

        request = importing.ImportRequest(organization=ORG, path=bundles[i], scope="content_view_version")
        return importing.import_bundle(
            dst.uow(), request, work_dir=dst.settings.imports_path, actor=ACTOR, before_commit=before_commit
        )

    with ThreadPoolExecutor(2) as pool:
        states = sorted(f.result()["state"] for f in [pool.submit(importer, 0), pool.submit(importer, 1)])
    assert states == ["already_imported", "imported"]
    assert versions(dst) == ["1.0"]
    assert sorted(i.state for i in imports(dst)) == ["already_imported", "imported"]


def _export_full(src: App) -> Path:
    request = exporting.ExportRequest(
        organization=ORG,
        scope="content_view_version",
        incremental=False,
        content_view="base",
        version=None,
        fmt="tgz",
        destination=None,
    )
    result = exporting.export_bundle(
        src.uow(), request, out_dir=src.settings.exports_path, signer=src.signer, server_id=src.server_id, actor=ACTOR
    )
    return Path(result["path"])
