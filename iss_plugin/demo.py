"""`iss demo`: a source and a destination under one temporary directory, on the embedded default.

Builds RPMs in-process, publishes a blessed content view on the source, exports complete and
incremental bundles, imports them on the destination, and shows a Red Hat-into-custom import refused."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from iss_plugin.bootstrap import App
from iss_plugin.domain.errors import ImportRuleViolation
from iss_plugin.services import catalog, content_views, exporting, identity, importing
from iss_plugin.services.server_setup import initialize
from iss_plugin.settings import load_settings

ORG = "ACME"
RH_PRODUCT, RH_CONTENT_ID = "rhel-9-for-x86_64", "rh-479"
CUSTOM_PRODUCT = "acme-tools"
REPOS = {RH_PRODUCT: ["baseos", "appstream"], CUSTOM_PRODUCT: ["utils", "monitoring"]}


@dataclass
class Step:
    step: str
    result: str
    detail: str
    seconds: float


def make_server(root: Path, name: str, **overrides) -> App:
    settings = load_settings(None, data_dir=str(root / name), server_id=name, **overrides)
    initialize(settings)
    app = App(settings)
    identity.bootstrap(app.uow(), settings.data_dir / identity.CREDENTIALS_NAME)  # admin and service accounts
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


@contextmanager
def source_feeds_lab(dst: App, src: App, actor: str) -> Iterator[None]:
    """For the refusal step: the trust maps the source's ACME to ACME-Lab here (a source
    organization feeds one organization here), then back to ACME."""
    catalog.add_trusted_source(dst.uow(), "source", src.signer.public_pem, {ORG: "ACME-Lab"}, actor)
    try:
        yield
    finally:
        catalog.add_trusted_source(dst.uow(), "source", src.signer.public_pem, {ORG: ORG}, actor)


def run_demo(root: Path | None = None, packages_per_repo: int = 20, say: Callable[[str], None] = print) -> list[Step]:
    from iss_plugin.adapters.fixtures import build_rpms

    tmp = None
    if root is None:
        tmp = tempfile.TemporaryDirectory(prefix="iss-demo-")
        root = Path(tmp.name)
    steps: list[Step] = []

    def timed(label: str, fn: Callable[[], tuple[str, str]]) -> None:
        t0 = time.perf_counter()
        result, detail = fn()
        steps.append(Step(label, result, detail, time.perf_counter() - t0))
        say(f"{label}: {result} {detail}")

    src, dst = make_server(root, "source"), make_server(root, "destination")
    actor = "demo"
    rpms = root / "rpms"
    try:

        def build_source() -> tuple[str, str]:
            prepare_source(src, rpms, packages_per_repo, actor)
            v = content_views.publish(src.uow(), ORG, "base", "first", actor, src.server_id)
            return "published", f"content view base {v['version']}, 4 repositories x {packages_per_repo} packages"

        def destination_ready() -> tuple[str, str]:
            prepare_destination(dst, src, root, actor)
            return "ready", f"entitled to {RH_CONTENT_ID}, trusts the source key {src.signer.fingerprint[:23]}..."

        def export(incremental: bool, version: str) -> dict:
            req = exporting.ExportRequest(
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
                req,
                out_dir=src.settings.exports_path,
                signer=src.signer,
                server_id=src.server_id,
                actor=actor,
            )

        def import_into(app: App, org: str, path: str) -> dict:
            req = importing.ImportRequest(organization=org, path=Path(path), scope="content_view_version")
            return importing.import_bundle(app.uow(), req, work_dir=app.settings.imports_path, actor=actor)

        bundles: dict[str, dict] = {}

        def export_full() -> tuple[str, str]:
            bundles["1.0"] = b = export(False, "1.0")
            return "exported", f"complete 1.0: {Path(b['path']).name}, {b['size'] // 1024} KiB"

        def import_full() -> tuple[str, str]:
            r = import_into(dst, ORG, bundles["1.0"]["path"])
            return r["state"], f"1.0 into {ORG}: created {', '.join(r['create_products'])}"

        def change_source() -> tuple[str, str]:
            files = build_rpms(rpms / "utils-2", 5, prefix="utils-pkg", version="2.0")
            catalog.upload_packages(src.uow(), ORG, f"{CUSTOM_PRODUCT}/utils", files, actor, src.server_id)
            info = catalog.repository_info(src.uow(), ORG, f"{RH_PRODUCT}/baseos")
            catalog.remove_packages(src.uow(), ORG, f"{RH_PRODUCT}/baseos", info["packages"][:3], actor, src.server_id)
            v = content_views.publish(src.uow(), ORG, "base", "second", actor, src.server_id)
            return "published", f"{v['version']}: +5 packages in utils, -3 in baseos"

        def export_incremental() -> tuple[str, str]:
            bundles["2.0"] = b = export(True, "2.0")
            return "exported", f"incremental 1.0 -> 2.0: {Path(b['path']).name}, {b['size'] // 1024} KiB"

        def import_incremental() -> tuple[str, str]:
            r = import_into(dst, ORG, bundles["2.0"]["path"])
            counts = ", ".join(f"{w['repository']} {w['package_count']}" for w in r["repositories"])
            return r["state"], f"2.0 into {ORG}: {counts}"

        def refused() -> tuple[str, str]:
            try:
                with source_feeds_lab(dst, src, actor):
                    import_into(dst, "ACME-Lab", bundles["1.0"]["path"])
            except ImportRuleViolation as e:
                return "refused", e.problems[0]
            raise AssertionError("the Red Hat-into-custom import was not refused")

        def verify() -> tuple[str, str]:
            s = {r["version"] for r in content_views.list_versions(src.uow(), ORG, "base")}
            d = content_views.list_versions(dst.uow(), ORG, "base")
            src_pins = {
                (x["product"], x["repository"]): x["package_set_digest"]
                for v in content_views.list_versions(src.uow(), ORG, "base")
                if v["version"] == "2.0"
                for x in v["repositories"]
            }
            dst_pins = {
                (x["product"], x["repository"]): x["package_set_digest"]
                for v in d
                if v["version"] == "2.0"
                for x in v["repositories"]
            }
            if src_pins != dst_pins or {v["version"] for v in d} != s:
                raise AssertionError("destination does not hold exactly the source's versions")
            return "identical", f"versions {', '.join(sorted(s))}: every repository has the source's package set digest"

        timed("source: build and publish", build_source)
        timed("destination: trust, entitlements", destination_ready)
        timed("export complete", export_full)
        timed("import complete", import_full)
        timed("source: change and publish", change_source)
        timed("export incremental", export_incremental)
        timed("import incremental", import_incremental)
        timed("Red Hat into custom product", refused)
        timed("compare source and destination", verify)
        return steps
    finally:
        src.close()
        dst.close()
        if tmp is not None:
            tmp.cleanup()
