"""The import rules of docs/architecture.md §6, as a pure function over values.

`plan_import` looks at the manifest and a snapshot of the destination and returns what to create
and where each repository goes, or raises once with every problem found."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import BaseMismatch, ImportRuleViolation
from .manifest import BundleManifest


@dataclass(frozen=True)
class ExistingProduct:
    label: str
    redhat: bool
    content_id: str | None


@dataclass(frozen=True)
class ExistingRepository:
    product: str  # product label on the destination
    label: str
    content_type: str
    digest: str | None  # package set digest of its latest version (None: no version yet)


@dataclass(frozen=True)
class ExistingContentView:
    label: str
    import_only: bool
    composite: bool
    versions: dict[str, dict[str, str]]  # "1.0" -> {"product/repo": digest}


@dataclass(frozen=True)
class DestinationSnapshot:
    organization: str
    products: tuple[ExistingProduct, ...]
    repositories: tuple[ExistingRepository, ...]
    entitled_content_ids: frozenset[str]
    content_view: ExistingContentView | None


@dataclass(frozen=True)
class RepositoryPlacement:
    manifest_product: str
    manifest_repository: str
    product: str  # destination product label
    repository: str
    create_repository: bool


@dataclass(frozen=True)
class ImportPlan:
    already_imported: bool
    create_products: tuple[tuple[str, str, bool, str | None], ...] = ()  # (label, name, redhat, content_id)
    placements: tuple[RepositoryPlacement, ...] = ()
    create_content_view: bool = False
    problems: tuple[str, ...] = field(default=())


def plan_import(manifest: BundleManifest, dest: DestinationSnapshot) -> ImportPlan:
    problems: list[str] = []
    cv = manifest.content_view
    if cv and dest.content_view:
        if dest.content_view.composite:
            problems.append(
                f"content view '{cv.label}' is composite on this server: composite views cannot be imported"
            )
        elif not dest.content_view.import_only:
            problems.append(
                f"content view '{cv.label}' exists here and is not import-only: imports only go into "
                "import-only content views (rename the local view or import into another organization)"
            )
        elif cv.version in dest.content_view.versions and not problems:
            held = dest.content_view.versions[cv.version]
            differs = [
                f"{r.product}/{r.label}"
                for r in manifest.repositories
                if r.target.package_set_digest not in held.values()
            ]
            if not differs:
                return ImportPlan(already_imported=True)
            problems.append(
                f"content view '{cv.label}' version {cv.version} exists here with other content "
                f"({', '.join(differs)}): a version is never re-created with different packages"
            )

    by_label = {p.label: p for p in dest.products}
    by_content_id = {p.content_id: p for p in dest.products if p.redhat and p.content_id}
    create_products: list[tuple[str, str, bool, str | None]] = []
    product_target: dict[str, str] = {}
    for p in manifest.products:
        if p.redhat:
            local = by_content_id.get(p.content_id or "")
            clash = by_label.get(p.label)
            if local is None and clash is not None and not clash.redhat:
                problems.append(
                    f"product '{p.label}': Red Hat content (content id {p.content_id}) cannot go into the "
                    f"custom product '{clash.label}' on this server"
                )
                continue
            if local is None and clash is not None:
                problems.append(
                    f"product '{p.label}': the label is held here by the Red Hat product with content id "
                    f"{clash.content_id}, not {p.content_id}"
                )
                continue
            if not p.content_id:
                problems.append(f"product '{p.label}' is marked Red Hat but carries no content id")
                continue
            if p.content_id not in dest.entitled_content_ids:
                problems.append(
                    f"product '{p.label}': organization '{dest.organization}' is not entitled to Red Hat "
                    f"content id {p.content_id} (import a manifest that grants it)"
                )
                continue
            if local is None:
                create_products.append((p.label, p.name, True, p.content_id))
                product_target[p.label] = p.label
            else:
                product_target[p.label] = local.label
        else:
            local = by_label.get(p.label)
            if local is not None and local.redhat:
                problems.append(
                    f"product '{p.label}': custom content cannot go into the Red Hat product '{local.label}' on this server"
                )
                continue
            if local is None:
                create_products.append((p.label, p.name, False, None))
            product_target[p.label] = p.label

    repos = {(r.product, r.label): r for r in dest.repositories}
    placements: list[RepositoryPlacement] = []
    for r in manifest.repositories:
        if r.product not in product_target:
            continue  # its product was refused above
        target_product = product_target[r.product]
        existing = repos.get((target_product, r.label))
        if existing is not None and existing.content_type != r.content_type:
            problems.append(
                f"repository '{target_product}/{r.label}' is {existing.content_type} here but {r.content_type} in the bundle"
            )
            continue
        placements.append(RepositoryPlacement(r.product, r.label, target_product, r.label, existing is None))

    if problems:
        raise ImportRuleViolation(
            f"bundle {manifest.bundle_id} breaks the import rules; nothing was imported", problems
        )

    check_base(manifest, dest, placements)
    return ImportPlan(
        already_imported=False,
        create_products=tuple(create_products),
        placements=tuple(placements),
        create_content_view=bool(cv) and dest.content_view is None,
    )


def check_base(manifest: BundleManifest, dest: DestinationSnapshot, placements: list[RepositoryPlacement]) -> None:
    """An incremental applies only on top of exactly the base it was made from."""
    if manifest.kind != "incremental":
        return
    problems: list[str] = []
    has: dict[str, object] = {}
    cv = manifest.content_view
    pinned: dict[str, str] | None = None
    if cv is not None:
        versions = dest.content_view.versions if dest.content_view else {}
        has["content_view_versions"] = sorted(versions)
        base_v = manifest.base_content_view_version
        if base_v not in versions:
            problems.append(
                f"content view '{cv.label}' version {base_v} (the base of this incremental) is not here; "
                f"this server has {', '.join(sorted(versions)) or 'no version'}"
            )
        else:
            pinned = versions[base_v]
    repos = {(r.product, r.label): r for r in dest.repositories}
    by_manifest = {(r.product, r.label): r for r in manifest.repositories}
    has_repositories: dict[str, str | None] = {}
    has["repositories"] = has_repositories
    for pl in placements:
        entry = by_manifest[(pl.manifest_product, pl.manifest_repository)]
        key = f"{pl.product}/{pl.repository}"
        existing = repos.get((pl.product, pl.repository))
        current = pinned.get(key) if pinned is not None else (existing.digest if existing else None)
        has_repositories[key] = current
        base = entry.base
        if base is not None and current != base.package_set_digest:
            problems.append(
                f"repository '{key}': the bundle needs base {base.package_set_digest} "
                f"({base.package_count} packages), this server has {current or 'nothing'}"
            )
    if problems:
        raise BaseMismatch(
            "this server does not have the base of the incremental bundle; export a bundle from what it has "
            "(or a complete one)",
            problems,
            details={"has": has},
        )
