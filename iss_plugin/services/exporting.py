"""Export: plan what a destination lacks, write the bundle, record the history.

Planning is pure (domain.planning); this module gathers the values, lets the backend write the
yum trees into a staging directory next to the output, and hands the tree to the bundle writer,
which signs it and renames it into place. Partial output never survives a failure."""

from __future__ import annotations

import csv
import shutil
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypedDict, TypeVar

from sqlalchemy import select

from iss_plugin.adapters.backends.base import (
    ExportedTree,
    ExportsByReference,
    StreamsByReference,
    VersionInfo,
    version_changes,
)
from iss_plugin.adapters.db import catalog as find
from iss_plugin.adapters.db.models import (
    ContentView,
    ContentViewVersion,
    Destination,
    ExportRecord,
    Organization,
    Repository,
)
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain.errors import IssError, NotFound, UsageError
from iss_plugin.domain.manifest import (
    PRODUCTS_CSV,
    BundleManifest,
    ContentViewRef,
    FileEntry,
    ProductEntry,
    RepositoryEntry,
    VersionRef,
)
from iss_plugin.domain.planning import RepositoryExportPlan, plan_from_changes
from iss_plugin.domain.versions import VersionNumber

from .audit import audit
from .unit_checks import with_unit_summaries

if TYPE_CHECKING:
    from iss_plugin.adapters.bundles.signing import Signer

Progress = Callable[[str, int, int], None]


def _no_progress(step: str, done: int, total: int) -> None:
    pass


@dataclass(frozen=True)
class ExportRequest:
    organization: str
    scope: Literal["content_view_version", "repository"]
    incremental: bool
    content_view: str | None = None
    version: VersionNumber | None = None  # None: the latest version
    product: str | None = None
    repository: str | None = None
    from_version: str | None = None  # "A.B" for a content view, a repository version number for a repository
    since: datetime | None = None
    destination: str | None = None
    fmt: Literal["dir", "tgz", "iso"] = "dir"
    chunk_size: int | None = None
    path: Path | None = None


class RepositorySummary(TypedDict):
    """One repository of an export, as ExportRecord.summary keeps it."""

    target_version: int
    base_version: int | None
    target_digest: str
    package_count: int
    new_packages: int
    removed: int


class ExportResult(TypedDict):
    bundle_id: str
    path: str
    format: str
    kind: str
    organization: str
    content_view: str | None
    version: str | None
    base: str | None
    files: list[str]
    size: int
    repositories: dict[str, RepositorySummary]  # by product/repository


@dataclass(frozen=True)
class RepoSelection:
    """One repository to export: its catalog row and the target and base backend versions."""

    repo: Repository
    target_version: int
    base_version: int | None


def export_bundle(
    uow: UnitOfWork,
    request: ExportRequest,
    *,
    out_dir: Path,
    signer: Signer,
    server_id: str,
    actor: str,
    progress: Progress = _no_progress,
    staging_root: Path | None = None,
) -> ExportResult:
    """Export in a transaction of its own."""
    with uow:
        result = export_in_transaction(
            uow,
            request,
            out_dir=out_dir,
            signer=signer,
            server_id=server_id,
            actor=actor,
            progress=progress,
            staging_root=staging_root,
        )
        uow.commit()
    return result


def export_in_transaction(
    uow: UnitOfWork,
    request: ExportRequest,
    *,
    out_dir: Path,
    signer: Signer,
    server_id: str,
    actor: str,
    progress: Progress = _no_progress,
    staging_root: Path | None = None,
) -> ExportResult:
    """Export inside the caller's (entered) unit of work; the output is removed if it rolls back.

    A directory bundle is staged in the output directory and renamed into place. An archive is
    staged under `staging_root` (give one on the store's filesystem: the tree is then hardlinks)
    and only the archive is written to the output directory. When the backend ExportsByReference,
    only the metadata is staged: the bundle writer streams the package files from the store into
    an archive, or links (else copies) them into a directory bundle."""
    if request.chunk_size is not None and request.chunk_size <= 0:
        raise UsageError("--chunk-size-mb must be a positive number of MiB")
    bundle_id = str(uuid.uuid4())
    out_dir = Path(request.path or out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(
            f"cannot create the output directory {out_dir}: {e.strerror or e}; "
            "give a writable directory with --path (or fix export_dir)"
        ) from None
    archive = request.fmt != "dir" or request.chunk_size is not None
    staging = (staging_root if archive and staging_root else out_dir) / f".tmp-{bundle_id}"
    org = find.organization(uow.session, request.organization)
    if request.destination:
        _destination(uow, request.destination)
    if request.scope == "content_view_version":
        cv, cvv, base_cvv, selections = _select_content_view(uow, org, request)
        cv_ref = ContentViewRef(cv.label, cv.name, cvv.number)
        base_label = base_cvv.number if base_cvv else None
    else:
        cv_ref, base_label, selections = None, None, _select_repository(uow, org, request)
        if selections[0].base_version is not None:
            base_label = f"repository-version-{selections[0].base_version}"
    kind: Literal["full", "incremental"] = "incremental" if request.incremental else "full"
    name = _bundle_name(org.label, cv_ref, selections, kind, bundle_id)
    record = ExportRecord(
        bundle_id=bundle_id,
        organization=org.label,
        scope=request.scope,
        content_view=cv_ref.label if cv_ref else None,
        version=cv_ref.version if cv_ref else None,
        product=request.product,
        repository=request.repository,
        kind=kind,
        base=base_label,
        destination=request.destination,
        format=request.fmt,
        state="running",
        created=datetime.now(UTC),  # the start: the row is added only when the export is done
    )
    try:
        by_reference = isinstance(uow.backend, ExportsByReference)
        plans, trees = _write_trees(uow, selections, staging, progress, by_reference=by_reference)
        _write_products_csv(staging, selections)
        manifest = _manifest(
            bundle_id, server_id, signer.fingerprint, org.label, request, cv_ref, base_label, kind, selections, plans
        )
        manifest = with_unit_summaries(
            uow.backend, manifest, [(s.repo.backend_key, s.target_version, s.base_version) for s in selections]
        )
        from iss_plugin.adapters.bundles.writer import finalize_bundle

        known = [f for tree in trees for f in tree.files]
        sources = {path: source for tree in trees for path, source in tree.sources.items()}
        progress("write bundle", 0, 1)
        output = finalize_bundle(
            staging,
            manifest,
            signer,
            known,
            out_dir=out_dir,
            name=name,
            fmt=_fmt(request),
            chunk_size=request.chunk_size,
            sources=sources,
            link_sources=all(tree.link_sources for tree in trees),
        )
        progress("write bundle", 1, 1)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    record.state, record.path, record.finished = "done", str(output.path), datetime.now(UTC)
    summary: dict[str, RepositorySummary] = {
        f"{p.product}/{p.repository}": {
            "target_version": s.target_version,
            "base_version": s.base_version,
            "target_digest": p.target.package_set_digest,
            "package_count": p.target.package_count,
            "new_packages": len(p.new_packages),
            "removed": len(p.removed),
        }
        for p, s in zip(plans, selections, strict=False)
    }
    record.summary = summary
    uow.session.add(record)
    uow.on_rollback(lambda: _remove_output(output.files))
    audit(uow.session, actor, "content.export", name, organization=request.organization, bundle_id=bundle_id, kind=kind)
    return {
        "bundle_id": bundle_id,
        "path": str(output.path),
        "format": output.format,
        "kind": kind,
        "organization": org.label,
        "content_view": cv_ref.label if cv_ref else None,
        "version": cv_ref.version if cv_ref else None,
        "base": base_label,
        "files": [str(f) for f in output.files],
        "size": output.size,
        "repositories": summary,
    }


def record_failed_export(
    uow: UnitOfWork, request: ExportRequest, error: IssError | Exception, actor: str = "unknown"
) -> None:
    with uow:
        audit(
            uow.session,
            actor,
            "content.export",
            request.content_view or f"{request.product}/{request.repository}",
            organization=request.organization,
            outcome="failed",
            reason=getattr(error, "reason", "error"),
            message=str(error)[:1000],
        )
        uow.session.add(
            ExportRecord(
                bundle_id=str(uuid.uuid4()),
                organization=request.organization,
                scope=request.scope,
                content_view=request.content_view,
                version=str(request.version) if request.version else None,
                product=request.product,
                repository=request.repository,
                kind="incremental" if request.incremental else "full",
                destination=request.destination,
                format=request.fmt,
                state="failed",
                error=str(error),
                finished=datetime.now(UTC),
            )
        )
        uow.commit()


def _remove_output(files: Iterable[str | Path]) -> None:
    for f in files:
        p = Path(f)
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def _fmt(request: ExportRequest) -> Literal["dir", "tgz", "iso"]:
    return request.fmt


def _destination(uow: UnitOfWork, name: str) -> Destination:
    d = uow.session.scalar(select(Destination).where(Destination.name == name))
    if d is None:
        raise NotFound(f"destination '{name}' does not exist (add it with `iss destination add`)")
    return d


def _select_content_view(
    uow: UnitOfWork, org: Organization, request: ExportRequest
) -> tuple[ContentView, ContentViewVersion, ContentViewVersion | None, list[RepoSelection]]:
    cv = find.content_view(uow.session, org, _given(request.content_view, "a content view (--content-view)"))
    if request.version is not None:
        cvv = find.content_view_version(uow.session, cv, request.version)
    else:
        latest = find.latest_content_view_version(cv)
        if latest is None:
            raise NotFound(f"content view '{cv.label}' has no version yet: publish it first")
        cvv = latest
    base = _base_content_view_version(uow, cv, cvv, request) if request.incremental else None
    base_pins = {pin.repository_id: pin.backend_version for pin in base.repositories} if base else {}
    selections = [
        RepoSelection(pin.repository, pin.backend_version, base_pins.get(pin.repository_id))
        for pin in sorted(cvv.repositories, key=lambda p: (p.repository.product.label, p.repository.label))
    ]
    return cv, cvv, base, selections


def _base_content_view_version(
    uow: UnitOfWork, cv: ContentView, cvv: ContentViewVersion, request: ExportRequest
) -> ContentViewVersion:
    if request.from_version:
        base = find.content_view_version(uow.session, cv, VersionNumber.parse(request.from_version))
    elif request.since:
        older = [v for v in cv.versions if _aware(v.created) <= request.since]
        if not older:
            raise NotFound(f"content view '{cv.label}' has no version published before {request.since.isoformat()}")
        base = max(older, key=lambda v: (v.major, v.minor))
    else:
        last = uow.session.scalar(
            select(ExportRecord)
            .where(
                ExportRecord.organization == cv.organization.label,
                ExportRecord.content_view == cv.label,
                ExportRecord.state == "done",
                ExportRecord.destination == request.destination,
            )
            .order_by(ExportRecord.id.desc())
            .limit(1)
        )
        if last is None:
            to = f" to destination '{request.destination}'" if request.destination else ""
            raise NotFound(
                f"no earlier export of content view '{cv.label}'{to} to start from: "
                "use `content-export complete`, or give --from-version or --since"
            )
        base = find.content_view_version(
            uow.session, cv, VersionNumber.parse(_given(last.version, "the version of its last export"))
        )
    if (base.major, base.minor) >= (cvv.major, cvv.minor):
        raise UsageError(f"the base version {base.number} is not older than the exported version {cvv.number}")
    return base


def _select_repository(uow: UnitOfWork, org: Organization, request: ExportRequest) -> list[RepoSelection]:
    repo = find.repository(
        uow.session,
        org,
        _given(request.product, "a product (--product)"),
        _given(request.repository, "a repository (--repository)"),
    )
    versions = uow.backend.list_versions(repo.backend_key)
    target = versions[-1].number if versions else uow.backend.latest_version(repo.backend_key)
    base = None
    if request.incremental:
        if request.from_version:
            try:
                base = int(request.from_version)
            except ValueError:
                raise UsageError(
                    f"--from-version for a repository is a repository version number, not '{request.from_version}'"
                ) from None
            if base not in {v.number for v in versions}:
                raise NotFound(f"repository '{request.product}/{request.repository}' has no version {base}")
        elif request.since:
            older = [v.number for v in versions if _aware(v.created) <= request.since]
            if not older:
                raise NotFound(
                    f"repository '{request.product}/{request.repository}' has no version before {request.since.isoformat()}"
                )
            base = max(older)
        else:
            last = uow.session.scalar(
                select(ExportRecord)
                .where(
                    ExportRecord.organization == org.label,
                    ExportRecord.product == request.product,
                    ExportRecord.repository == request.repository,
                    ExportRecord.state == "done",
                    ExportRecord.destination == request.destination,
                )
                .order_by(ExportRecord.id.desc())
                .limit(1)
            )
            if last is None:
                raise NotFound(
                    f"no earlier export of repository '{request.product}/{request.repository}' to start from: "
                    "use `content-export complete`, or give --from-version or --since"
                )
            base = next(iter(last.summary.values()))["target_version"]
        if base >= target:
            raise UsageError(
                f"the base version {base} of repository '{request.product}/{request.repository}' is not "
                f"older than the exported version {target}: an incremental export would be empty "
                "(nothing changed since; give an older --from-version or --since)"
            )
    return [RepoSelection(repo, target, base)]


_T = TypeVar("_T")


def _given(value: _T | None, what: str) -> _T:
    """A part of the request the export's scope needs (the CLI and the handlers always give it)."""
    if value is None:
        raise UsageError(f"this export needs {what}")
    return value


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _write_trees(
    uow: UnitOfWork,
    selections: list[RepoSelection],
    staging: Path,
    progress: Progress,
    *,
    by_reference: bool = False,
    for_stream: bool = False,
) -> tuple[list[RepositoryExportPlan], list[ExportedTree]]:
    """Plan each repository and let the backend write its tree under staging/repos/<product>/<repo>.
    by_reference: the backend leaves package files where they are (the trees' `sources`);
    for_stream: they may be URLs (StreamsByReference), for a stream only.
    The trees come back with paths relative to `staging`."""
    plans: list[RepositoryExportPlan] = []
    trees: list[ExportedTree] = []
    staging.mkdir(parents=True)
    exporter = uow.backend if by_reference and isinstance(uow.backend, ExportsByReference) else None
    streamer = uow.backend if for_stream and isinstance(uow.backend, StreamsByReference) else None
    for i, s in enumerate(selections):
        progress("export repositories", i, len(selections))
        key = s.repo.backend_key
        target = uow.backend.version_info(key, s.target_version)
        base = uow.backend.version_info(key, s.base_version) if s.base_version is not None else None
        changes = version_changes(uow.backend, key, s.base_version, s.target_version)
        plan = plan_from_changes(
            s.repo.product.label,
            s.repo.label,
            _ref(target),
            _ref(base) if base else None,
            changes.added,
            changes.removed,
        )
        rel = f"repos/{s.repo.product.label}/{s.repo.label}"
        dest = staging / rel
        dest.mkdir(parents=True)
        if exporter is not None:
            tree = exporter.export_version_by_reference(
                key, s.target_version, s.base_version, dest, added=changes.added, relative_to=staging
            )
        elif streamer is not None:
            tree = streamer.stream_version_by_reference(
                key, s.target_version, s.base_version, dest, added=changes.added, relative_to=staging
            )
        else:
            tree = _under(rel, uow.backend.export_version(key, s.target_version, s.base_version, dest))
        if tree.new_packages != len(plan.new_packages):
            raise IssError(
                f"backend wrote {tree.new_packages} package files for {key}, the plan says {len(plan.new_packages)}"
            )
        trees.append(tree)
        plans.append(plan)
    progress("export repositories", len(selections), len(selections))
    return plans, trees


def _under(rel: str, tree: ExportedTree) -> ExportedTree:
    """The tree with its paths relative to the bundle instead of to the repository's directory."""
    return replace(
        tree,
        files=tuple(FileEntry(f"{rel}/{f.path}", f.sha256, f.size) for f in tree.files),
        sources={f"{rel}/{path}": source for path, source in tree.sources.items()},
    )


def _ref(info: VersionInfo) -> VersionRef:
    return VersionRef(info.number, info.package_count, info.digest)


def _write_products_csv(staging: Path, selections: list[RepoSelection]) -> None:
    with open(staging / PRODUCTS_CSV, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "product_label",
                "product_name",
                "redhat",
                "content_id",
                "repository_label",
                "repository_name",
                "content_type",
            ]
        )
        for s in selections:
            p = s.repo.product
            w.writerow(
                [
                    p.label,
                    p.name,
                    "true" if p.redhat else "false",
                    p.content_id or "",
                    s.repo.label,
                    s.repo.name,
                    s.repo.content_type,
                ]
            )


def _manifest(
    bundle_id: str,
    server_id: str,
    fingerprint: str,
    org_label: str,
    request: ExportRequest,
    cv_ref: ContentViewRef | None,
    base_label: str | None,
    kind: Literal["full", "incremental"],
    selections: list[RepoSelection],
    plans: list[RepositoryExportPlan],
) -> BundleManifest:
    products: dict[str, ProductEntry] = {}
    repos = []
    for s, plan in zip(selections, plans, strict=False):
        p = s.repo.product
        products[p.label] = ProductEntry(p.label, p.name, p.redhat, p.content_id, gpg_key=p.gpg_key)
        repos.append(
            RepositoryEntry(
                label=s.repo.label,
                name=s.repo.name,
                product=p.label,
                path=f"repos/{p.label}/{s.repo.label}",
                content_type=s.repo.content_type,
                target=plan.target,
                base=plan.base,
                added=len(plan.new_packages),
                removed=plan.removed,
            )
        )
    return BundleManifest(
        bundle_id=bundle_id,
        source_server=server_id,
        source_key_fingerprint=fingerprint,
        created=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        organization=org_label,
        scope=request.scope,
        kind=kind,
        content_view=cv_ref,
        base_content_view_version=base_label if request.scope == "content_view_version" else None,
        products=tuple(products.values()),
        repositories=tuple(repos),
        files=(),
        destination=request.destination,
    )


def _bundle_name(
    org: str, cv_ref: ContentViewRef | None, selections: list[RepoSelection], kind: str, bundle_id: str
) -> str:
    what = (
        f"{cv_ref.label}-{cv_ref.version}"
        if cv_ref
        else f"{selections[0].repo.product.label}-{selections[0].repo.label}-v{selections[0].target_version}"
    )
    return f"{org}-{what}-{kind}-{bundle_id[:8]}"
