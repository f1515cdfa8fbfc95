"""`iss demo`: a source and a destination under one temporary directory, on the embedded default
(kombu memory://, SQLite), with RPMs built in-process. It lives here, beside `iss run`, because the
automatic demo runs the workers; iss_plugin never imports consumers.

- automatic (the default): the source publishes a blessed content view; the destination gets each
  version by itself through the bus (full bundle first, then incremental);
- manual (`--manual`): complete and incremental bundles exported and imported by hand.

Both end with an import of Red Hat content into a custom product, refused. The scenario (make_server,
prepare_source, prepare_destination) is also what the propagation tests and bench/propagation.py set up."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from iss_plugin.adapters.db.models import ContentView, ContentViewVersion, ExportRecord, ImportRecord
from iss_plugin.bootstrap import App
from iss_plugin.domain.errors import ImportRuleViolation
from iss_plugin.services import catalog, content_views, exporting, identity, importing, subscriptions
from iss_plugin.services.server_setup import initialize
from iss_plugin.settings import load_settings

from .run import Runtime

ORG = "ACME"
RH_PRODUCT, RH_CONTENT_ID = "rhel-9-for-x86_64", "rh-479"
CUSTOM_PRODUCT = "acme-tools"
REPOS = {RH_PRODUCT: ["baseos", "appstream"], CUSTOM_PRODUCT: ["utils", "monitoring"]}
ACTOR = "demo"
SOURCE_ROLES = ("relay", "export", "status", "reconcile")
DESTINATION_ROLES = ("relay", "import")

Say = Callable[[str], None]
# `iss demo --serve`: called with the source, its administrator's (login, password), the steps and
# the timeline once the demo is done, while both servers still run; returns when serving should end
ServeHook = Callable[[App, tuple[str, str], "list[Step]", "list[Timeline]"], None]


@dataclass
class Step:
    step: str
    result: str
    detail: str
    seconds: float


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


# --- the scenario ---------------------------------------------------------------------------------


def make_server(root: Path, name: str, *, logins: dict[str, tuple[str, str]] | None = None, **overrides: Any) -> App:
    """A server initialized under root/name; `logins` receives its administrator's (login, password)."""
    settings = load_settings(None, data_dir=str(root / name), server_id=name, **overrides)
    initialize(settings)
    app = App(settings)
    made = identity.bootstrap(app.uow(), settings.data_dir / identity.CREDENTIALS_NAME)  # admin and service accounts
    if logins is not None:
        logins[name] = (str(made["admin_login"]), str(made["admin_password"]))
    return app


def prepare_source(src: App, rpms: Path, packages_per_repo: int, actor: str) -> None:
    """ACME with a Red Hat and a custom product, two repositories each, in the blessed view 'base'."""
    from iss_plugin.adapters.fixtures import build_rpms

    catalog.create_organization(src.uow(), "ACME Corp", ORG, actor)
    catalog.create_product(
        src.uow(), ORG, "Red Hat Enterprise Linux 9 for x86_64", RH_PRODUCT, True, RH_CONTENT_ID, actor
    )
    catalog.create_product(src.uow(), ORG, "ACME Tools", CUSTOM_PRODUCT, False, None, actor)
    for product, repos in REPOS.items():
        for repo in repos:
            catalog.create_repository(src.uow(), ORG, product, repo, repo, None, "yum", actor)
            files = build_rpms(rpms / repo, packages_per_repo, prefix=f"{repo}-pkg")
            catalog.upload_packages(src.uow(), ORG, f"{product}/{repo}", files, actor, src.server_id)
    content_views.create_content_view(
        src.uow(), ORG, "Base", "base", True, [f"{p}/{r}" for p, rs in REPOS.items() for r in rs], actor
    )


def prepare_destination(dst: App, src: App, root: Path, actor: str) -> None:
    """ACME entitled to the Red Hat product; ACME-Lab with a custom product that has its label;
    both trust the source's key."""
    catalog.create_organization(dst.uow(), "ACME Corp", ORG, actor)
    catalog.create_organization(dst.uow(), "ACME Lab", "ACME-Lab", actor)
    manifest = root / "entitlements.json"
    manifest.write_text(
        '{"manifest_id": "demo-manifest-1", "organization": "ACME", "products": '
        f'[{{"label": "{RH_PRODUCT}", "name": "Red Hat Enterprise Linux 9 for x86_64", "content_id": "{RH_CONTENT_ID}"}}]}}'
    )
    catalog.import_entitlement_manifest(dst.uow(), manifest, actor)
    key = root / "source.pub"
    key.write_text(src.signer.public_pem)
    catalog.add_trusted_source(dst.uow(), "source", key.read_text(), [ORG, "ACME-Lab"], actor)
    # ACME-Lab once made a custom product with the Red Hat product's label:
    catalog.create_product(dst.uow(), "ACME-Lab", "RHEL rebuild", RH_PRODUCT, False, None, actor)


def change_source(src: App, rpms: Path) -> None:
    """Five new packages in utils, three fewer in baseos (not yet published)."""
    from iss_plugin.adapters.fixtures import build_rpms

    files = build_rpms(rpms / "utils-2", 5, prefix="utils-pkg", version="2.0")
    catalog.upload_packages(src.uow(), ORG, f"{CUSTOM_PRODUCT}/utils", files, ACTOR, src.server_id)
    info = catalog.repository_info(src.uow(), ORG, f"{RH_PRODUCT}/baseos")
    catalog.remove_packages(src.uow(), ORG, f"{RH_PRODUCT}/baseos", info["packages"][:3], ACTOR, src.server_id)


def import_into(app: App, organization: str, bundle: Path) -> importing.ImportSummary:
    request = importing.ImportRequest(organization=organization, path=bundle, scope="content_view_version")
    return importing.import_bundle(app.uow(), request, work_dir=app.settings.imports_path, actor=ACTOR)


@contextmanager
def source_feeds_lab(dst: App, src: App, actor: str) -> Iterator[None]:
    """For the refusal step: the trust maps the source's ACME to ACME-Lab here (a source
    organization feeds one organization here), then back to ACME."""
    catalog.add_trusted_source(dst.uow(), "source", src.signer.public_pem, {ORG: "ACME-Lab"}, actor)
    try:
        yield
    finally:
        catalog.add_trusted_source(dst.uow(), "source", src.signer.public_pem, {ORG: ORG}, actor)


def refuse_red_hat_into_custom(dst: App, src: App, full_bundle: Path) -> str:
    """ACME-Lab's custom product carries the Red Hat product's label: the import must be refused."""
    try:
        with source_feeds_lab(dst, src, ACTOR):
            import_into(dst, "ACME-Lab", full_bundle)
    except ImportRuleViolation as e:
        return e.problems[0]
    raise AssertionError("the Red Hat-into-custom import was not refused")


def pins(app: App, version: str) -> dict[tuple[str, str], str]:
    """(product, repository) -> package set digest of every repository in base `version`."""
    return {
        (r["product"], r["repository"]): r["package_set_digest"]
        for v in content_views.list_versions(app.uow(), ORG, "base")
        if v["version"] == version
        for r in v["repositories"]
    }


def versions(app: App) -> set[str]:
    return {v["version"] for v in content_views.list_versions(app.uow(), ORG, "base")}


@contextmanager
def demo_root(root: Path | None) -> Iterator[Path]:
    """`root`, or a temporary directory removed at the end."""
    if root is not None:
        yield root
        return
    with tempfile.TemporaryDirectory(prefix="iss-demo-") as tmp:
        yield Path(tmp)


# --- automatic: through the bus -------------------------------------------------------------------


def run_automatic_demo(
    root: Path | None = None,
    packages_per_repo: int = 20,
    say: Say = print,
    timeout: float = 60.0,
    serve: ServeHook | None = None,
) -> tuple[list[Step], list[Timeline]]:
    with demo_root(root) as base:
        return _automatic(base, packages_per_repo, say, timeout, serve)


def _automatic(
    root: Path, packages_per_repo: int, say: Say, timeout: float, serve: ServeHook | None = None
) -> tuple[list[Step], list[Timeline]]:
    bus: dict[str, Any] = {"bus": {"url": "memory://", "prefix": f"demo{int(time.time() * 1000) % 100000}"}}
    logins: dict[str, tuple[str, str]] = {}
    src = make_server(root, "source", logins=logins, **bus)
    dst = make_server(root, "destination", fetch_roots=[str(root)], **bus)
    steps: list[Step] = []
    timeline: list[Timeline] = []

    def step(label: str, result: str, detail: str, t0: float) -> None:
        steps.append(Step(label, result, detail, time.perf_counter() - t0))
        say(f"{label}: {result} {detail}")

    runtimes = [Runtime(src, SOURCE_ROLES), Runtime(dst, DESTINATION_ROLES)]
    try:
        t0 = time.perf_counter()
        prepare_source(src, root / "rpms", packages_per_repo, ACTOR)
        prepare_destination(dst, src, root, ACTOR)
        key = root / "destination.pub"
        key.write_text(dst.signer.public_pem)
        subscriptions.add_destination(src.uow(), "dc-east", dst.server_id, key.read_text(), ACTOR)
        subscriptions.subscribe(src.uow(), "dc-east", ORG, "base", None, ACTOR)
        step("set up", "ready", f"source with 4 repositories, destination subscribed to '{ORG}/base'", t0)
        for r in runtimes:
            r.start()

        def publish_and_wait(version_label: str, description: str) -> None:
            t_pub = time.time()
            v = content_views.publish(src.uow(), ORG, "base", description, ACTOR, src.server_id)
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
        change_source(src, root / "rpms")
        step("change source", "changed", "+5 packages in utils, -3 in baseos", t0)
        publish_and_wait("2.0", "second")

        t0 = time.perf_counter()
        if pins(src, "2.0") != pins(dst, "2.0"):
            raise AssertionError("the destination does not hold exactly the source's 2.0")
        step("compare", "identical", "every repository of 2.0 has the source's package set digest", t0)

        t0 = time.perf_counter()
        refusal = refuse_red_hat_into_custom(dst, src, Path(_latest_full_bundle(src)))
        step("Red Hat into custom product", "refused", refusal, t0)
        if serve is not None:
            serve(src, logins["source"], steps, timeline)
        return steps, timeline
    finally:
        for r in runtimes:
            r.shutdown()
        src.close()
        dst.close()


def _wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.02)


def _has_version(app: App, version: str) -> bool:
    with app.session_factory() as s:
        return any(
            v.number == version
            for v in s.scalars(select(ContentViewVersion).join(ContentView).where(ContentView.label == "base"))
        )


def _bundle_ready_time(app: App, version: str) -> tuple[float, str]:
    with app.session_factory() as s:
        r = s.scalar(
            select(ExportRecord)
            .where(ExportRecord.version == version, ExportRecord.state == "done")
            .order_by(ExportRecord.id.desc())
        )
        if r is None or r.finished is None:
            raise AssertionError(f"version {version} arrived without a finished export on the source")
        return _ts(r.finished), r.kind


def _imported_time(app: App, version: str) -> float:
    with app.session_factory() as s:
        created = s.scalar(
            select(ImportRecord.created).where(ImportRecord.version == version, ImportRecord.state == "imported")
        )
        if created is None:
            raise AssertionError(f"version {version} is on the destination without an import record")
        return _ts(created)


def _latest_full_bundle(app: App) -> str:
    with app.session_factory() as s:
        path = s.scalar(
            select(ExportRecord.path)
            .where(ExportRecord.kind == "full", ExportRecord.state == "done")
            .order_by(ExportRecord.id.desc())
        )
        if path is None:
            raise AssertionError("the source made no full bundle")
        return path


def _ts(dt: datetime) -> float:
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


# --- manual: export and import by hand ------------------------------------------------------------


def run_manual_demo(root: Path | None = None, packages_per_repo: int = 20, say: Say = print) -> list[Step]:
    with demo_root(root) as base:
        return _manual(base, packages_per_repo, say)


def _manual(root: Path, packages_per_repo: int, say: Say) -> list[Step]:
    steps: list[Step] = []

    def timed(label: str, fn: Callable[[], tuple[str, str]]) -> None:
        t0 = time.perf_counter()
        result, detail = fn()
        steps.append(Step(label, result, detail, time.perf_counter() - t0))
        say(f"{label}: {result} {detail}")

    src, dst = make_server(root, "source"), make_server(root, "destination")
    rpms = root / "rpms"
    bundles: dict[str, exporting.ExportResult] = {}
    try:

        def build_source() -> tuple[str, str]:
            prepare_source(src, rpms, packages_per_repo, ACTOR)
            v = content_views.publish(src.uow(), ORG, "base", "first", ACTOR, src.server_id)
            return "published", f"content view base {v['version']}, 4 repositories x {packages_per_repo} packages"

        def destination_ready() -> tuple[str, str]:
            prepare_destination(dst, src, root, ACTOR)
            return "ready", f"entitled to {RH_CONTENT_ID}, trusts the source key {src.signer.fingerprint[:23]}..."

        def export(incremental: bool) -> exporting.ExportResult:
            request = exporting.ExportRequest(
                organization=ORG,
                scope="content_view_version",
                incremental=incremental,
                content_view="base",
                version=None,
                fmt="tgz",
                destination=None,
            )
            return exporting.export_bundle(
                src.uow(),
                request,
                out_dir=src.settings.exports_path,
                signer=src.signer,
                server_id=src.server_id,
                actor=ACTOR,
            )

        def export_full() -> tuple[str, str]:
            bundles["1.0"] = b = export(False)
            return "exported", f"complete 1.0: {Path(b['path']).name}, {b['size'] // 1024} KiB"

        def import_full() -> tuple[str, str]:
            r = import_into(dst, ORG, Path(bundles["1.0"]["path"]))
            return r["state"], f"1.0 into {ORG}: created {', '.join(r['create_products'])}"

        def change_and_publish() -> tuple[str, str]:
            change_source(src, rpms)
            v = content_views.publish(src.uow(), ORG, "base", "second", ACTOR, src.server_id)
            return "published", f"{v['version']}: +5 packages in utils, -3 in baseos"

        def export_incremental() -> tuple[str, str]:
            bundles["2.0"] = b = export(True)
            return "exported", f"incremental 1.0 -> 2.0: {Path(b['path']).name}, {b['size'] // 1024} KiB"

        def import_incremental() -> tuple[str, str]:
            r = import_into(dst, ORG, Path(bundles["2.0"]["path"]))
            counts = ", ".join(f"{w['repository']} {w['package_count']}" for w in r.get("repositories") or [])
            return r["state"], f"2.0 into {ORG}: {counts}"

        def refused() -> tuple[str, str]:
            return "refused", refuse_red_hat_into_custom(dst, src, Path(bundles["1.0"]["path"]))

        def verify() -> tuple[str, str]:
            held = versions(src)
            if pins(src, "2.0") != pins(dst, "2.0") or versions(dst) != held:
                raise AssertionError("destination does not hold exactly the source's versions")
            return (
                "identical",
                f"versions {', '.join(sorted(held))}: every repository has the source's package set digest",
            )

        timed("source: build and publish", build_source)
        timed("destination: trust, entitlements", destination_ready)
        timed("export complete", export_full)
        timed("import complete", import_full)
        timed("source: change and publish", change_and_publish)
        timed("export incremental", export_incremental)
        timed("import incremental", import_incremental)
        timed("Red Hat into custom product", refused)
        timed("compare source and destination", verify)
        return steps
    finally:
        src.close()
        dst.close()
