"""`iss demo`: a source and a destination in one process on the embedded default (kombu memory://,
SQLite). The source publishes a blessed content view; the destination gets each version by itself
through the bus (full bundle first, then incremental); a Red Hat-into-custom import is refused."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

from sqlalchemy import select

from iss_plugin.adapters.db.models import ContentView, ContentViewVersion, ExportRecord, ImportRecord
from iss_plugin.demo import (
    CUSTOM_PRODUCT,
    ORG,
    RH_PRODUCT,
    Step,
    make_server,
    prepare_destination,
    prepare_source,
    source_feeds_lab,
)
from iss_plugin.domain.errors import ImportRuleViolation
from iss_plugin.services import catalog, content_views, importing, subscriptions

from .run import Runtime

SOURCE_ROLES = ("relay", "export", "status", "reconcile")
DESTINATION_ROLES = ("relay", "import")


@dataclass
class Timeline:
    version: str
    kind: str
    published: float
    bundle_ready: float
    imported: float

    @property
    def latency(self) -> float:
        return self.imported - self.published


def run_automatic_demo(
    root: Path | None = None, packages_per_repo: int = 20, say: Callable[[str], None] = print, timeout: float = 60.0
) -> tuple[list[Step], list[Timeline]]:
    from iss_plugin.adapters.fixtures import build_rpms

    tmp = tempfile.TemporaryDirectory(prefix="iss-demo-") if root is None else None
    root = Path(tmp.name) if tmp else root
    bus = {"bus": {"url": "memory://", "prefix": f"demo{int(time.time() * 1000) % 100000}"}}
    src, dst = make_server(root, "source", **bus), make_server(root, "destination", fetch_roots=[str(root)], **bus)
    steps: list[Step] = []
    timeline: list[Timeline] = []
    actor = "demo"

    def step(label: str, result: str, detail: str, t0: float) -> None:
        steps.append(Step(label, result, detail, time.perf_counter() - t0))
        say(f"{label}: {result} {detail}")

    runtimes = [Runtime(src, SOURCE_ROLES), Runtime(dst, DESTINATION_ROLES)]
    try:
        t0 = time.perf_counter()
        prepare_source(src, root / "rpms", packages_per_repo, actor)
        prepare_destination(dst, src, root, actor)
        key = root / "destination.pub"
        key.write_text(dst.signer.public_pem)
        subscriptions.add_destination(src.uow(), "dc-east", dst.server_id, key.read_text(), actor)
        subscriptions.subscribe(src.uow(), "dc-east", ORG, "base", None, actor)
        step("set up", "ready", f"source with 4 repositories, destination subscribed to '{ORG}/base'", t0)
        for r in runtimes:
            r.start()

        def publish_and_wait(version_label: str, description: str) -> None:
            t_pub = time.time()
            v = content_views.publish(src.uow(), ORG, "base", description, actor, src.server_id)
            assert v["version"] == version_label
            _wait(lambda: _has_version(dst, version_label), timeout, f"version {version_label} on the destination")
            ready, kind = _bundle_ready_time(src, version_label)
            timeline.append(Timeline(version_label, kind, t_pub, ready, _imported_time(dst, version_label)))
            step(
                f"publish {version_label}",
                "arrived",
                f"{kind} bundle, {timeline[-1].latency:.2f} s from publish to live",
                time.perf_counter() - (time.time() - t_pub),
            )

        publish_and_wait("1.0", "first")
        t0 = time.perf_counter()
        files = build_rpms(root / "rpms" / "utils-2", 5, prefix="utils-pkg", version="2.0")
        catalog.upload_packages(src.uow(), ORG, f"{CUSTOM_PRODUCT}/utils", files, actor, src.server_id)
        info = catalog.repository_info(src.uow(), ORG, f"{RH_PRODUCT}/baseos")
        catalog.remove_packages(src.uow(), ORG, f"{RH_PRODUCT}/baseos", info["packages"][:3], actor, src.server_id)
        step("change source", "changed", "+5 packages in utils, -3 in baseos", t0)
        publish_and_wait("2.0", "second")

        t0 = time.perf_counter()
        src_pins = _pins(src, "2.0")
        if src_pins != _pins(dst, "2.0"):
            raise AssertionError("the destination does not hold exactly the source's 2.0")
        step("compare", "identical", "every repository of 2.0 has the source's package set digest", t0)

        t0 = time.perf_counter()
        bundle = _latest_full_bundle(src)
        try:
            with source_feeds_lab(dst, src, actor):
                importing.import_bundle(
                    dst.uow(),
                    importing.ImportRequest("ACME-Lab", Path(bundle), "content_view_version"),
                    work_dir=dst.settings.imports_path,
                    actor=actor,
                )
            raise AssertionError("the Red Hat-into-custom import was not refused")
        except ImportRuleViolation as e:
            step("Red Hat into custom product", "refused", e.problems[0], t0)
        return steps, timeline
    finally:
        for r in runtimes:
            r.shutdown()
        src.close()
        dst.close()
        if tmp:
            tmp.cleanup()


def _wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.02)


def _has_version(app, version: str) -> bool:
    with app.session_factory() as s:
        return any(
            v.number == version
            for v in s.scalars(select(ContentViewVersion).join(ContentView).where(ContentView.label == "base"))
        )


def _bundle_ready_time(app, version: str) -> tuple[float, str]:
    with app.session_factory() as s:
        r = s.scalar(
            select(ExportRecord)
            .where(ExportRecord.version == version, ExportRecord.state == "done")
            .order_by(ExportRecord.id.desc())
        )
        return _ts(r.finished), r.kind


def _imported_time(app, version: str) -> float:
    with app.session_factory() as s:
        return _ts(
            s.scalar(
                select(ImportRecord.created).where(ImportRecord.version == version, ImportRecord.state == "imported")
            )
        )


def _latest_full_bundle(app) -> str:
    with app.session_factory() as s:
        return s.scalar(
            select(ExportRecord.path)
            .where(ExportRecord.kind == "full", ExportRecord.state == "done")
            .order_by(ExportRecord.id.desc())
        )


def _pins(app, version: str) -> dict:
    return {
        (r["product"], r["repository"]): r["package_set_digest"]
        for v in content_views.list_versions(app.uow(), ORG, "base")
        if v["version"] == version
        for r in v["repositories"]
    }


def _ts(dt) -> float:

    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
