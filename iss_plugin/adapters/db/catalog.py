"""Look-ups over the catalog tables, each failing with a NotFound that says what to do."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from iss_plugin.domain.errors import NotFound
from iss_plugin.domain.versions import VersionNumber

from .models import (
    ContentView,
    ContentViewVersion,
    Entitlement,
    Organization,
    Product,
    Repository,
    TrustedSource,
)


def organization(session: Session, label: str) -> Organization:
    org = session.scalar(select(Organization).where(Organization.label == label))
    if org is None:
        raise NotFound(f"organization '{label}' does not exist (see `iss organization list`)")
    return org


def product(session: Session, org: Organization, label: str) -> Product:
    p = session.scalar(select(Product).where(Product.organization_id == org.id, Product.label == label))
    if p is None:
        raise NotFound(f"product '{label}' does not exist in organization '{org.label}'")
    return p


def repository(session: Session, org: Organization, product_label: str, label: str) -> Repository:
    p = product(session, org, product_label)
    r = session.scalar(select(Repository).where(Repository.product_id == p.id, Repository.label == label))
    if r is None:
        raise NotFound(f"repository '{product_label}/{label}' does not exist in organization '{org.label}'")
    return r


def repository_by_path(session: Session, org: Organization, path: str) -> Repository:
    """PRODUCT/REPOSITORY as the CLI takes it."""
    if path.count("/") != 1:
        raise NotFound(f"'{path}' is not PRODUCT/REPOSITORY (labels, for example custom/tools)")
    product_label, label = path.split("/")
    return repository(session, org, product_label, label)


def content_view(session: Session, org: Organization, label: str) -> ContentView:
    cv = session.scalar(select(ContentView).where(ContentView.organization_id == org.id, ContentView.label == label))
    if cv is None:
        raise NotFound(f"content view '{label}' does not exist in organization '{org.label}'")
    return cv


def content_view_version(session: Session, cv: ContentView, number: VersionNumber) -> ContentViewVersion:
    v = session.scalar(
        select(ContentViewVersion).where(
            ContentViewVersion.content_view_id == cv.id,
            ContentViewVersion.major == number.major,
            ContentViewVersion.minor == number.minor,
        )
    )
    if v is None:
        have = ", ".join(x.number for x in cv.versions) or "none"
        raise NotFound(f"content view '{cv.label}' has no version {number} (versions: {have})")
    return v


def latest_content_view_version(cv: ContentView) -> ContentViewVersion | None:
    return max(cv.versions, key=lambda v: (v.major, v.minor), default=None)


def trusted_sources(session: Session) -> list[TrustedSource]:
    return list(session.scalars(select(TrustedSource).order_by(TrustedSource.name)))


def entitled_content_ids(session: Session, org: Organization) -> frozenset[str]:
    return frozenset(session.scalars(select(Entitlement.content_id).where(Entitlement.organization_id == org.id)))
