"""Import: verify a bundle (hostile input), apply the rules, then apply it atomically.

Order (docs/architecture.md §4 and §6): join chunks and read safely; signature against the sources trusted
for the organization; schema; every file's sha256; import rules; base; then one transaction for
every repository version and the content view version. Nothing changes on failure."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NotRequired, TypedDict

from sqlalchemy import select

from iss_plugin.adapters.backends.base import ImportExpectation
from iss_plugin.adapters.db import catalog as find
from iss_plugin.adapters.db.models import (
    ContentView,
    ContentViewVersion,
    ContentViewVersionRepository,
    ImportRecord,
    Organization,
    Product,
    Repository,
)
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.adapters.disk_faults import disk_faults
from iss_plugin.domain.errors import (
    BundleIntegrityError,
    Forbidden,
    ImportRuleViolation,
    IssError,
    RejectedInput,
    UntrustedSource,
)
from iss_plugin.domain.manifest import BundleManifest
from iss_plugin.domain.rules import (
    DestinationSnapshot,
    ExistingContentView,
    ExistingProduct,
    ExistingRepository,
    ImportPlan,
    plan_import,
)
from iss_plugin.domain.trust import destination_organization, organization_map
from iss_plugin.domain.versions import VersionNumber
from iss_plugin.failpoints import failpoint

from . import product_keys, repository_sets
from .audit import audit
from .catalog import backend_key
from .content_guard import refuse_red_hat_in_bundle
from .import_locks import lock_import_targets
from .unit_checks import check_bundle_units

Scope = Literal["content_view_version", "repository"]


@dataclass(frozen=True)
class ImportRequest:
    organization: str
    path: Path
    scope: Scope
    dry_run: bool = False
    # What the event that announced the bundle said of it: must agree with the signed manifest.
    announced: Mapping[str, object] | None = None
    # Listed files not under `path`: checked while streamed and stored by the backend already
    # (services/pulling.py with a ReceivesPackages backend). path -> sha256
    held: Mapping[str, str] | None = None


class BundleTarget(TypedDict):
    """A repository a bundle carries, and what it must hold after the import."""

    product: str
    repository: str
    package_count: int
    package_set_digest: str


class HeldVersion(TypedDict):
    """A repository version this server holds, and (once published) where yum clients read it."""

    backend_key: str
    version: int
    published_at: NotRequired[str]


class WrittenRepository(HeldVersion):
    """A repository version an import made."""

    product: str
    repository: str
    package_count: int
    package_set_digest: str
    added: int
    removed: int


class ImportSummary(TypedDict):
    bundle_id: str
    source_server: str
    organization: str
    scope: str
    targets: list[BundleTarget]
    content_view: str | None
    version: str | None
    kind: str
    base: str | None
    create_products: list[str]
    create_repositories: list[str]  # product/repository
    create_content_view: bool
    state: NotRequired[str]  # dry_run | already_imported | imported
    repositories: NotRequired[list[WrittenRepository] | None]  # what the import wrote (None: nothing)
    warnings: NotRequired[list[str]]  # advisories naming packages the version lacks (dry run and import)


class Holding(TypedDict):
    """What this server holds of a content view or a repository (`has` of iss.bundle.rejected.v1)."""

    content_view_version: NotRequired[str]
    repositories: list[BundleTarget]


def import_bundle(
    uow: UnitOfWork,
    request: ImportRequest,
    *,
    work_dir: Path,
    actor: str,
    before_commit: Callable[[UnitOfWork, ImportSummary], None] | None = None,
) -> ImportSummary:
    """Returns a summary; raises a RejectedInput subclass (exit 3) with every problem found.

    `before_commit(uow, summary)` runs inside the import's transaction (the consumers add their
    answer event and the processed event id there)."""
    from iss_plugin.adapters.bundles.reader import TrustedKey, open_bundle, verify_bundle

    with disk_faults(work_dir, doing=f"making the import work directory {work_dir}"):
        work_dir.mkdir(parents=True, exist_ok=True)
    with uow:
        org_label = find.organization(uow.session, request.organization).label
        rows = find.trusted_sources(uow.session)
        sources = {t.fingerprint: (t.name, organization_map(t.organizations)) for t in rows}
        # a key may feed the organizations its mapping points at; _check_mapping then checks the pair
        trusted = [
            TrustedKey(t.name, t.public_key, t.fingerprint, tuple(sorted(set(sources[t.fingerprint][1].values()))))
            for t in rows
        ]
    # The signature is checked as soon as manifest.json is read: an untrusted or edited archive is
    # refused before the rest of it is read or extracted.
    with open_bundle(Path(request.path), work_dir, trusted=trusted, organization=org_label) as opened:
        opened.held.update(request.held or {})
        file_problems: list[str] | None = [] if request.dry_run else None
        manifest = verify_bundle(opened, trusted, org_label, file_problems=file_problems)
        _check_mapping(manifest, *sources[manifest.source_key_fingerprint], org_label)
        _check_announcement(manifest, request.announced or {})
        if manifest.scope != request.scope:
            command = "version" if manifest.scope == "content_view_version" else "repository"
            raise RejectedInput(
                f"{request.path} is a {manifest.scope.replace('_', ' ')} bundle: use `iss content-import {command}`"
            )
        with uow:
            # Several import workers: imports that write the same view, product or repository wait
            # for each other here, so the snapshot below sees the earlier one committed and nothing
            # is made twice (services.import_locks). Verifying the bundle above runs in parallel.
            lock_import_targets(uow, request.organization, manifest)
            org = find.organization(uow.session, request.organization)
            snapshot = snapshot_destination(uow, org, manifest)
            if request.dry_run:
                plan = _dry_run_plan(manifest, snapshot, file_problems or [])
            else:
                plan = plan_import(manifest, snapshot)
            if not plan.already_imported and manifest.scope == "repository":
                plan = _repository_already_there(manifest, snapshot, plan)
            keys = {}
            warnings: list[str] = []
            if not plan.already_imported:
                refuse_red_hat_in_bundle(uow, org, manifest)
                keys = product_keys.decide_import_keys({p.label: p for p in org.products}, manifest, plan)
                product_keys.check_package_signatures(manifest, plan, keys, opened.root)
                warnings = check_bundle_units(uow, org, manifest, plan, opened.root, dry_run=request.dry_run)
            summary = _summary(manifest, plan, request)
            if warnings:
                summary["warnings"] = warnings
            if request.dry_run:
                return summary | {"state": "dry_run"}
            if plan.already_imported:
                _publish(uow, _held_versions(uow, org, manifest))  # re-delivery also repairs a lost publication
                _record(uow, manifest, request, "already_imported")
                if before_commit:
                    before_commit(uow, summary | {"state": "already_imported", "repositories": None})
                uow.commit()
                return summary | {"state": "already_imported"}
            # its files are checked: the import no longer needs their list (~6 MiB at 20,000 packages)
            manifest = dataclasses.replace(manifest, files=())
            written = _apply(uow, org, manifest, plan, opened.root, disposable=opened.temp_dir is not None)
            product_keys.store_decided_keys(org, keys)
            repository_sets.record_imported(uow, org, manifest, written, Path(request.path))
            # Published before the commit: a crash in between re-delivers, re-imports (a no-op in the
            # backend) and publishes again, so a committed import is never left unpublished.
            _publish(uow, written)
            _record(uow, manifest, request, "imported")
            audit(
                uow.session,
                actor,
                "content.import",
                str(request.path),
                bundle_id=manifest.bundle_id,
                kind=manifest.kind,
                organization=org.label,
            )
            if before_commit:
                before_commit(uow, summary | {"state": "imported", "repositories": written})
            failpoint("import.before_commit")  # crash tests: files are in the store, nothing committed
            uow.commit()
            return summary | {"state": "imported", "repositories": written}


def _check_mapping(manifest: BundleManifest, source: str, mapping: dict[str, str], org_label: str) -> None:
    """The signing source must map the bundle's organization to the one it is imported into."""
    dest = destination_organization(source, mapping, manifest.organization)
    if dest != org_label:
        raise UntrustedSource(
            f"bundle of organization '{manifest.organization}' from source '{source}' goes into organization "
            f"'{dest}' here, not '{org_label}'; nothing was imported (import it with --organization {dest})",
            details={"source": source, "organization": manifest.organization, "destination": dest},
        )


def mapped_organization(uow: UnitOfWork, source_organization: str) -> str:
    """The organization here that trusted sources map `source_organization` to (for the import
    worker, which knows only the event's organization; the signed manifest is checked later)."""
    with uow:
        sources = [(t.name, organization_map(t.organizations)) for t in find.trusted_sources(uow.session)]
    targets = sorted({m[source_organization] for _, m in sources if source_organization in m})
    if len(targets) == 1:
        return targets[0]
    if not targets:
        names = ", ".join(n for n, _ in sources) or "none"
        raise UntrustedSource(
            f"bundle of organization '{source_organization}' is refused: no trusted source ({names}) maps that "
            f"organization to one here; nothing was imported; to accept it: "
            f"iss trust add --name SOURCE --public-key KEY --map {source_organization}=DESTINATION_ORG",
            details={"organization": source_organization},
        )
    raise ImportRuleViolation(
        f"bundle of organization '{source_organization}' is refused: trusted sources map it to several "
        f"organizations here ({', '.join(targets)}); nothing was imported; import it by hand with "
        "`iss content-import --organization`",
        details={"organization": source_organization},
    )


def _check_announcement(manifest: BundleManifest, announced: Mapping[str, object]) -> None:
    """The bus event is not signed; the manifest is. Refuse a bundle the event misdescribes."""
    actual = {
        "bundle_id": manifest.bundle_id,
        "source_server": manifest.source_server,
        "content_view": manifest.content_view.label if manifest.content_view else None,
        "version": manifest.content_view.version if manifest.content_view else None,
    }
    if manifest.scope == "repository" and manifest.repositories:
        actual |= {"product": manifest.repositories[0].product, "repository": manifest.repositories[0].label}
    problems = [
        f"{k}: the event says {v!r}, the signed manifest {actual.get(k)!r}"
        for k, v in sorted(announced.items())
        if k in actual and actual[k] != v
    ]
    if problems:
        raise ImportRuleViolation(
            "the event that announced this bundle does not match its signed manifest; nothing was imported", problems
        )


def _dry_run_plan(manifest: BundleManifest, snapshot: DestinationSnapshot, file_problems: list[str]) -> ImportPlan:
    """Every problem at once: the files' and the rules' (or the base's) together."""
    try:
        plan = plan_import(manifest, snapshot)
    except RejectedInput as e:
        if not file_problems:
            raise
        raise BundleIntegrityError(
            f"bundle {manifest.bundle_id} has {len(file_problems) + len(e.problems)} problems; "
            "nothing would be imported",
            file_problems + e.problems,
            details=e.details,
        ) from None
    if file_problems:
        raise BundleIntegrityError(
            f"bundle {manifest.bundle_id} failed its integrity check; nothing would be imported", file_problems
        )
    return plan


def record_rejection(uow: UnitOfWork, request: ImportRequest, error: IssError, actor: str = "unknown") -> None:
    """History of a refused import, in its own transaction (the import itself changed nothing)."""
    with uow:
        record_rejection_in(uow, request, error, actor)
        uow.commit()


def record_rejection_in(uow: UnitOfWork, request: ImportRequest, error: IssError, actor: str = "unknown") -> None:
    outcome = "denied" if isinstance(error, Forbidden) else "rejected" if isinstance(error, RejectedInput) else "failed"
    audit(
        uow.session,
        actor,
        "content.import",
        str(request.path),
        organization=request.organization,
        outcome=outcome,
        reason=error.reason,
        message=error.message[:1000],
    )
    uow.session.add(
        ImportRecord(
            organization=request.organization,
            path=str(request.path),
            state="rejected" if isinstance(error, RejectedInput) else "failed",
            reason=error.reason,
            error=str(error)[:4000],
        )
    )


def destination_holding(
    uow: UnitOfWork, org_label: str, content_view: str | None, product: str | None, repository: str | None
) -> Holding | None:
    """What this server holds of a content view or repository, as iss.bundle.rejected.v1 reports it."""
    org = uow.session.scalar(select(Organization).where(Organization.label == org_label))
    if org is None:
        return None
    if content_view:
        cv = uow.session.scalar(
            select(ContentView).where(ContentView.organization_id == org.id, ContentView.label == content_view)
        )
        latest = find.latest_content_view_version(cv) if cv else None
        if latest is None:
            return None
        return {
            "content_view_version": latest.number,
            "repositories": [
                {
                    "product": p.repository.product.label,
                    "repository": p.repository.label,
                    "package_count": p.package_count,
                    "package_set_digest": p.package_set_digest,
                }
                for p in latest.repositories
            ],
        }
    if product is None or repository is None:
        return None
    repo = uow.session.scalar(
        select(Repository).where(Repository.backend_key == backend_key(org_label, product, repository))
    )
    if repo is None:
        return None
    versions = uow.backend.list_versions(repo.backend_key)
    if not versions or versions[-1].package_count == 0:
        return None
    return {
        "repositories": [
            {
                "product": product,
                "repository": repository,
                "package_count": versions[-1].package_count,
                "package_set_digest": versions[-1].digest,
            }
        ]
    }


def snapshot_destination(uow: UnitOfWork, org: Organization, manifest: BundleManifest) -> DestinationSnapshot:
    products = tuple(ExistingProduct(p.label, p.redhat, p.content_id) for p in org.products)
    repos = []
    for p in org.products:
        for r in p.repositories:
            digest = None
            if manifest.scope == "repository":
                versions = uow.backend.list_versions(r.backend_key)
                digest = versions[-1].digest if versions else None
            repos.append(ExistingRepository(p.label, r.label, r.content_type, digest))
    cv_snapshot = None
    if manifest.content_view:
        cv = uow.session.scalar(
            select(ContentView).where(
                ContentView.organization_id == org.id, ContentView.label == manifest.content_view.label
            )
        )
        if cv is not None:
            cv_snapshot = ExistingContentView(
                cv.label,
                cv.import_only,
                cv.composite,
                {
                    v.number: {
                        f"{pin.repository.product.label}/{pin.repository.label}": pin.package_set_digest
                        for pin in v.repositories
                    }
                    for v in cv.versions
                },
            )
    return DestinationSnapshot(
        org.label, products, tuple(repos), find.entitled_content_ids(uow.session, org), cv_snapshot
    )


def _repository_already_there(manifest: BundleManifest, snapshot: DestinationSnapshot, plan: ImportPlan) -> ImportPlan:
    repos = {(r.product, r.label): r for r in snapshot.repositories}
    for pl in plan.placements:
        entry = next(
            r for r in manifest.repositories if (r.product, r.label) == (pl.manifest_product, pl.manifest_repository)
        )
        existing = repos.get((pl.product, pl.repository))
        if existing is None or existing.digest != entry.target.package_set_digest:
            return plan
    return ImportPlan(already_imported=True, placements=plan.placements)


def _apply(
    uow: UnitOfWork, org: Organization, manifest: BundleManifest, plan: ImportPlan, root: Path, disposable: bool
) -> list[WrittenRepository]:
    s = uow.session
    products = {p.label: p for p in org.products}
    for label, name, redhat, content_id in plan.create_products:
        products[label] = Product(organization=org, label=label, name=name, redhat=redhat, content_id=content_id)
        s.add(products[label])
    s.flush()
    cvv: ContentViewVersion | None = None
    base_pins: dict[tuple[str, str], int] | None = None
    if manifest.content_view:
        ref = manifest.content_view
        cv = s.scalar(select(ContentView).where(ContentView.organization_id == org.id, ContentView.label == ref.label))
        if cv is None:
            cv = ContentView(organization=org, label=ref.label, name=ref.name, import_only=True, blessed=False)
            s.add(cv)
        number = VersionNumber.parse(ref.version)
        cvv = ContentViewVersion(
            content_view=cv,
            major=number.major,
            minor=number.minor,
            imported_from=manifest.source_server,
            description=f"imported bundle {manifest.bundle_id}",
        )
        s.add(cvv)
        if manifest.kind == "incremental":
            if manifest.base_content_view_version is None:  # verify_bundle's schema and check_base refuse it before
                raise ImportRuleViolation(
                    f"incremental bundle {manifest.bundle_id} names no base content view version; nothing was imported"
                )
            base = find.content_view_version(s, cv, VersionNumber.parse(manifest.base_content_view_version))
            base_pins = {(p.repository.product.label, p.repository.label): p.backend_version for p in base.repositories}
    entries = {(r.product, r.label): r for r in manifest.repositories}
    written: list[WrittenRepository] = []
    for pl in plan.placements:
        entry = entries[(pl.manifest_product, pl.manifest_repository)]
        product = products[pl.product]
        repo = next((r for r in product.repositories if r.label == pl.repository), None)
        key = backend_key(org.label, product.label, pl.repository)
        if repo is None:
            repo = Repository(
                product=product, label=pl.repository, name=entry.name, content_type=entry.content_type, backend_key=key
            )
            s.add(repo)
        uow.backend.ensure_repository(key, entry.content_type)
        base_version = None
        if entry.base is not None:
            base_version = (
                (base_pins or {}).get((pl.product, pl.repository))
                if cvv is not None
                else uow.backend.latest_version(key)
            )
        version = uow.backend.import_tree(
            key,
            root / entry.path,
            ImportExpectation(
                base_version=base_version,
                removed=entry.removed,
                target_digest=entry.target.package_set_digest,
                target_count=entry.target.package_count,
                disposable_tree=disposable,
            ),
        )
        if cvv is not None:
            cvv.repositories.append(
                ContentViewVersionRepository(
                    repository=repo,
                    backend_version=version,
                    package_count=entry.target.package_count,
                    package_set_digest=entry.target.package_set_digest,
                )
            )
        written.append(
            {
                "product": pl.product,
                "repository": pl.repository,
                "backend_key": key,
                "version": version,
                "package_count": entry.target.package_count,
                "package_set_digest": entry.target.package_set_digest,
                "added": entry.added,
                "removed": len(entry.removed),
            }
        )
    s.flush()
    return written


def _publish(uow: UnitOfWork, written: Sequence[HeldVersion]) -> None:
    """Publish imported versions where yum clients read them (idempotent), in the import's transaction."""
    for w in written:
        location = uow.backend.publish(w["backend_key"], w["version"])
        repo = uow.session.scalars(select(Repository).where(Repository.backend_key == w["backend_key"])).one()
        repo.published_at = location
        w["published_at"] = location


def _held_versions(uow: UnitOfWork, org: Organization, manifest: BundleManifest) -> list[HeldVersion]:
    """The versions this server already holds of what the bundle carries (to publish them again)."""
    if manifest.content_view:
        cv = find.content_view(uow.session, org, manifest.content_view.label)
        cvv = find.content_view_version(uow.session, cv, VersionNumber.parse(manifest.content_view.version))
        return [{"backend_key": p.repository.backend_key, "version": p.backend_version} for p in cvv.repositories]
    held: list[HeldVersion] = []
    for r in manifest.repositories:
        repo = uow.session.scalar(
            select(Repository).where(Repository.backend_key == backend_key(org.label, r.product, r.label))
        )
        if repo is not None:
            held.append({"backend_key": repo.backend_key, "version": uow.backend.latest_version(repo.backend_key)})
    return held


def _record(uow: UnitOfWork, manifest: BundleManifest, request: ImportRequest, state: str) -> None:
    uow.session.add(
        ImportRecord(
            bundle_id=manifest.bundle_id,
            source_server=manifest.source_server,
            organization=request.organization,
            content_view=manifest.content_view.label if manifest.content_view else None,
            version=manifest.content_view.version if manifest.content_view else None,
            kind=manifest.kind,
            path=str(request.path),
            state=state,
        )
    )


def _summary(manifest: BundleManifest, plan: ImportPlan, request: ImportRequest) -> ImportSummary:
    return {
        "bundle_id": manifest.bundle_id,
        "source_server": manifest.source_server,
        "organization": request.organization,
        "scope": manifest.scope,
        "targets": [
            {
                "product": r.product,
                "repository": r.label,
                "package_count": r.target.package_count,
                "package_set_digest": r.target.package_set_digest,
            }
            for r in manifest.repositories
        ],
        "content_view": manifest.content_view.label if manifest.content_view else None,
        "version": manifest.content_view.version if manifest.content_view else None,
        "kind": manifest.kind,
        "base": manifest.base_content_view_version,
        "create_products": [p[0] for p in plan.create_products],
        "create_repositories": [f"{p.product}/{p.repository}" for p in plan.placements if p.create_repository],
        "create_content_view": plan.create_content_view,
    }
