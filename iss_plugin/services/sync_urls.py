"""Where repositories synchronize from: permanent overrides for a repository or a whole product,
the organization's CDN for its Red Hat content, one-shot URLs; and the Red Hat sources a custom
repository may never sync from."""

from __future__ import annotations

import os
from typing import Any, TypedDict

from sqlalchemy import select
from sqlalchemy.orm import Session

from iss_plugin.adapters.db import catalog as find
from iss_plugin.adapters.db.content_models import RepositorySet
from iss_plugin.adapters.db.models import ExportRecord, Organization, Product, Repository
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain.content_rules import (
    RedHatSource,
    SyncLocation,
    check_sync_url,
    effective_sync_url,
    join_url,
    refuse_red_hat_url,
)
from iss_plugin.domain.errors import UsageError

from .audit import audit


def relative_path(session: Session, repo: Repository) -> str:
    """A Red Hat repository's path under the CDN: where its bundle carried it (repos/<product>/<repository>)."""
    recorded = session.scalar(select(RepositorySet.relative_path).where(RepositorySet.backend_key == repo.backend_key))
    return recorded or f"repos/{repo.product.label}/{repo.label}"


def sync_location(session: Session, repo: Repository) -> SyncLocation:
    product = repo.product
    return SyncLocation(
        label=repo.label,
        redhat=product.redhat,
        upstream=repo.upstream_url,
        repository_override=repo.sync_url_override,
        product_override=product.sync_url_override,
        cdn_url=product.organization.cdn_url,
        relative_path=relative_path(session, repo),
    )


def red_hat_sources(session: Session, org: Organization) -> list[RedHatSource]:
    """Every location the organization's Red Hat content comes from or was delivered at."""
    sources: list[RedHatSource] = []
    if org.cdn_url:
        sources.append(RedHatSource(org.cdn_url, "the organization's CDN URL"))
    redhat = [p for p in org.products if p.redhat]
    for p in redhat:
        if p.sync_url_override:
            sources.append(RedHatSource(p.sync_url_override, f"Red Hat product {p.label}'s sync URL"))
        for r in p.repositories:
            what = f"Red Hat repository {p.label}/{r.label}"
            effective, _ = effective_sync_url(sync_location(session, r))
            for url in {r.upstream_url, r.sync_url_override, effective} - {None}:
                sources.append(RedHatSource(str(url), what))
    sets = session.scalars(select(RepositorySet).where(RepositorySet.organization_id == org.id))
    for s in sets:
        if s.bundle_path:
            url = join_url(_file_uri(s.bundle_path), s.relative_path)
            sources.append(RedHatSource(url, f"Red Hat repository {s.product_label}/{s.repository_label} of a bundle"))
    labels = {p.label for p in redhat}
    exports = session.scalars(
        select(ExportRecord).where(
            ExportRecord.organization == org.label, ExportRecord.state == "done", ExportRecord.path.is_not(None)
        )
    )
    for e in exports:
        for key in e.summary or {}:
            if key.split("/", 1)[0] in labels:
                url = join_url(_file_uri(str(e.path)), f"repos/{key}")
                sources.append(RedHatSource(url, f"Red Hat repository {key} of export {e.bundle_id}"))
    return sources


def _file_uri(path: str) -> str:
    from pathlib import Path

    return Path(os.path.abspath(path)).as_uri()


def refuse_red_hat_source(session: Session, org: Organization, product: Product, repository: str, url: str) -> None:
    """For a custom product's repository: RejectedInput (exit 3) if url is Red Hat content."""
    if not product.redhat:
        refuse_red_hat_url(f"{product.label}/{repository}", url, red_hat_sources(session, org))


def url_for_sync(session: Session, org: Organization, repo: Repository, one_shot: str | None) -> str:
    """The URL one synchronization uses: --url, else the temporary override, else the effective URL."""
    if one_shot is not None:
        check_sync_url(one_shot)
    url = one_shot or repo.temporary_sync_url_override or effective_sync_url(sync_location(session, repo))[0]
    path = f"{repo.product.label}/{repo.label}"
    if not url:
        raise UsageError(f"repository '{path}' has no upstream URL: pass --url, or set one (`iss repository set-url`)")
    refuse_red_hat_source(session, org, repo.product, repo.label, url)
    return url


class SyncUrlFields(TypedDict):
    upstream_url: str | None
    repository_override: str | None
    product_override: str | None
    cdn_url: str | None
    effective_url: str | None
    effective_from: str


class RepositoryUrls(SyncUrlFields):
    product: str
    repository: str
    redhat: bool


def describe(session: Session, repo: Repository) -> RepositoryUrls:
    return {
        "product": repo.product.label,
        "repository": repo.label,
        "redhat": repo.product.redhat,
        **url_fields(session, repo),
    }


def url_fields(session: Session, repo: Repository) -> SyncUrlFields:
    """What `iss repository info` adds: the overrides and the effective URL."""
    effective, origin = effective_sync_url(sync_location(session, repo))
    return {
        "upstream_url": repo.upstream_url,
        "repository_override": repo.sync_url_override,
        "product_override": repo.product.sync_url_override,
        "cdn_url": repo.product.organization.cdn_url if repo.product.redhat else None,
        "effective_url": effective,
        "effective_from": origin,
    }


def repository_urls(uow: UnitOfWork, org_label: str, path: str | None) -> list[RepositoryUrls]:
    """Upstream, overrides and effective URL of one repository (PRODUCT/REPO) or of all of them."""
    with uow:
        org = find.organization(uow.session, org_label)
        if path is not None:
            return [describe(uow.session, find.repository_by_path(uow.session, org, path))]
        return [describe(uow.session, r) for p in org.products for r in p.repositories]


def set_repository_url(uow: UnitOfWork, org_label: str, path: str, url: str | None, actor: str) -> dict[str, Any]:
    """url None: back to what the product, the CDN or upstream say."""
    if url is not None:
        check_sync_url(url)
    with uow:
        org = find.organization(uow.session, org_label)
        repo = find.repository_by_path(uow.session, org, path)
        if url is not None:
            refuse_red_hat_source(uow.session, org, repo.product, repo.label, url)
        before = repo.sync_url_override
        repo.sync_url_override = url
        if before != url:
            audit(uow.session, actor, "repository.set_url", repo.backend_key, url=url, previous=before)
        uow.commit()
        return describe(uow.session, repo) | {"changed": before != url}


def set_product_url(
    uow: UnitOfWork, org_label: str, product_label: str, url: str | None, actor: str
) -> list[RepositoryUrls]:
    """Every repository of the product syncs from url + its label + '/' (unless it has its own override)."""
    if url is not None:
        check_sync_url(url)
    with uow:
        org = find.organization(uow.session, org_label)
        product = find.product(uow.session, org, product_label)
        if url is not None:
            for label in [r.label for r in product.repositories] or [""]:
                refuse_red_hat_source(uow.session, org, product, label or "*", join_url(url, label))
        before = product.sync_url_override
        product.sync_url_override = url
        if before != url:
            audit(uow.session, actor, "product.set_url", f"{org.label}/{product.label}", url=url, previous=before)
        uow.commit()
        return [describe(uow.session, r) for r in product.repositories]


def set_cdn(uow: UnitOfWork, org_label: str, url: str | None, actor: str) -> dict[str, Any]:
    """Every Red Hat repository of the organization syncs from url + its relative path."""
    if url is not None:
        check_sync_url(url)
    with uow:
        org = find.organization(uow.session, org_label)
        before = org.cdn_url
        org.cdn_url = url
        if before != url:
            audit(uow.session, actor, "organization.set_cdn", org.label, url=url, previous=before)
        uow.commit()
        rows = [describe(uow.session, r) for p in org.products if p.redhat for r in p.repositories]
        return {"organization": org.label, "cdn_url": url, "changed": before != url, "repositories": rows}
