"""Red Hat repository sets on a destination: the Red Hat repositories that arrived in imported
bundles and that the organization's entitlement manifest covers, each enabled or not.

Enabled = a Repository row of the organization on the set's backend key. Disable deletes that row
and keeps the imported content in the store; enable re-creates the row on the same content. As in
Katello, a repository that a content view or one of its versions holds cannot be disabled."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

from sqlalchemy import select

from iss_plugin.adapters.db import catalog as find
from iss_plugin.adapters.db.content_models import RepositorySet
from iss_plugin.adapters.db.models import (
    ContentView,
    ContentViewRepository,
    ContentViewVersion,
    ContentViewVersionRepository,
    Organization,
    Product,
    Repository,
)
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain.errors import UsageError
from iss_plugin.domain.manifest import BundleManifest

from .audit import audit


class ImportedRepository(TypedDict):
    product: str
    repository: str
    backend_key: str


def record_imported(
    uow: UnitOfWork, org: Organization, manifest: BundleManifest, written: Sequence[ImportedRepository], bundle: Path
) -> None:
    """In the import's transaction: offer every Red Hat repository the bundle brought."""
    s = uow.session
    products = {p.label: p for p in org.products}
    by_content_id = {p.content_id: p.label for p in manifest.products if p.redhat}
    entries = {(r.product, r.label): r for r in manifest.repositories}
    for w in written:
        product = products.get(w["product"])
        if product is None or not product.redhat or not product.content_id:
            continue
        entry = entries.get((by_content_id.get(product.content_id, product.label), w["repository"]))
        if entry is None:
            continue
        row = s.scalar(
            select(RepositorySet).where(
                RepositorySet.organization_id == org.id,
                RepositorySet.product_label == product.label,
                RepositorySet.repository_label == w["repository"],
            )
        )
        if row is None:
            row = RepositorySet(organization_id=org.id, product_label=product.label, repository_label=w["repository"])
            s.add(row)
        row.content_id, row.name, row.content_type = product.content_id, entry.name, entry.content_type
        row.relative_path, row.backend_key = entry.path, w["backend_key"]
        row.bundle_id, row.bundle_path, row.imported = manifest.bundle_id, str(bundle), datetime.now(UTC)


def _sets(uow: UnitOfWork, org: Organization) -> list[RepositorySet]:
    return list(
        uow.session.scalars(
            select(RepositorySet)
            .where(RepositorySet.organization_id == org.id)
            .order_by(RepositorySet.product_label, RepositorySet.repository_label)
        )
    )


def _enabled(uow: UnitOfWork, s: RepositorySet) -> Repository | None:
    return uow.session.scalar(select(Repository).where(Repository.backend_key == s.backend_key))


def _row(uow: UnitOfWork, s: RepositorySet) -> dict[str, Any]:
    return {
        "product": s.product_label,
        "content_id": s.content_id,
        "repository": s.repository_label,
        "name": s.name,
        "enabled": _enabled(uow, s) is not None,
        "bundle_id": s.bundle_id,
    }


def list_repository_sets(uow: UnitOfWork, org_label: str) -> list[dict[str, Any]]:
    with uow:
        org = find.organization(uow.session, org_label)
        entitled = find.entitled_content_ids(uow.session, org)
        return [_row(uow, s) for s in _sets(uow, org) if s.content_id in entitled]


def _offered(uow: UnitOfWork, org: Organization, product: str, repository: str) -> RepositorySet:
    """The set, or UsageError (exit 2) saying why it is not offered."""
    sets = _sets(uow, org)
    found = next((s for s in sets if (s.product_label, s.repository_label) == (product, repository)), None)
    entitled = find.entitled_content_ids(uow.session, org)
    if found is None:
        offered = [f"{s.product_label}/{s.repository_label}" for s in sets if s.content_id in entitled]
        raise UsageError(
            f"Red Hat repository '{product}/{repository}' did not arrive in any bundle imported into organization "
            f"'{org.label}': only imported Red Hat repositories can be enabled or disabled "
            f"(offered: {', '.join(offered) or 'none'}; import a bundle that carries it)"
        )
    if found.content_id not in entitled:
        raise UsageError(
            f"Red Hat repository '{product}/{repository}' (content id {found.content_id}) is not covered by "
            f"organization '{org.label}''s entitlement manifest: import a manifest that grants it"
        )
    return found


def enable(uow: UnitOfWork, org_label: str, product: str, repository: str, actor: str) -> dict[str, Any]:
    with uow:
        org = find.organization(uow.session, org_label)
        s = _offered(uow, org, product, repository)
        if _enabled(uow, s) is not None:
            return _row(uow, s) | {"changed": False}
        holder = uow.session.scalar(
            select(Product).where(Product.organization_id == org.id, Product.content_id == s.content_id)
        )
        if holder is None or not holder.redhat:
            raise UsageError(
                f"organization '{org.label}' has no Red Hat product with content id {s.content_id} for "
                f"'{product}/{repository}': import the entitlement manifest again"
            )
        uow.backend.ensure_repository(s.backend_key, s.content_type)
        repo = Repository(
            product=holder,
            label=s.repository_label,
            name=s.name,
            content_type=s.content_type,
            backend_key=s.backend_key,
        )
        uow.session.add(repo)
        repo.published_at = uow.backend.publish(s.backend_key, uow.backend.latest_version(s.backend_key))
        audit(uow.session, actor, "repository_set.enable", s.backend_key, content_id=s.content_id)
        uow.commit()
        return _row(uow, s) | {"changed": True}


def disable(uow: UnitOfWork, org_label: str, product: str, repository: str, actor: str) -> dict[str, Any]:
    with uow:
        org = find.organization(uow.session, org_label)
        s = _offered(uow, org, product, repository)
        repo = _enabled(uow, s)
        if repo is None:
            return _row(uow, s) | {"changed": False}
        holders = _content_views_holding(uow, repo)
        if holders:
            raise UsageError(
                f"Red Hat repository '{product}/{repository}' is in content views, so it cannot be disabled: "
                "remove it from them (and delete the versions that hold it) first",
                holders,
            )
        uow.session.delete(repo)  # the store keeps the content under s.backend_key
        audit(uow.session, actor, "repository_set.disable", s.backend_key, content_id=s.content_id)
        uow.commit()
        return _row(uow, s) | {"changed": True}


def _content_views_holding(uow: UnitOfWork, repo: Repository) -> list[str]:
    views = uow.session.scalars(
        select(ContentView.label)
        .join(ContentViewRepository, ContentViewRepository.content_view_id == ContentView.id)
        .where(ContentViewRepository.repository_id == repo.id)
    )
    versions = uow.session.execute(
        select(ContentView.label, ContentViewVersion.major, ContentViewVersion.minor)
        .join(ContentViewVersion, ContentViewVersion.content_view_id == ContentView.id)
        .join(
            ContentViewVersionRepository, ContentViewVersionRepository.content_view_version_id == ContentViewVersion.id
        )
        .where(ContentViewVersionRepository.repository_id == repo.id)
    )
    return [f"content view {v}" for v in views] + [f"content view {v} version {a}.{b}" for v, a, b in versions]
