"""Content views: create, publish (pin exact repository versions), list versions."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NotRequired, Protocol, TypedDict, runtime_checkable

from sqlalchemy import select

from iss_plugin.adapters.db import catalog as find
from iss_plugin.adapters.db.models import (
    ContentView,
    ContentViewVersion,
    ContentViewVersionRepository,
    Repository,
)
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain.errors import IssError, UsageError
from iss_plugin.domain.events import CONTENT_VIEW_PUBLISHED
from iss_plugin.domain.labels import check_label, make_label

from .audit import audit
from .outbox import add_event
from .unit_checks import advisory_warnings

log = logging.getLogger(__name__)


@runtime_checkable
class PreparesExports(Protocol):
    """Optional backend capability (Pulp): make at publish time what exporting a version needs."""

    def prepare_export(self, repo: str, version: int) -> None: ...


class ContentViewCreated(TypedDict):
    organization: str
    label: str
    name: str
    blessed: bool
    repositories: list[str]  # product/repository


class BlessedSet(TypedDict):
    organization: str
    label: str
    blessed: bool


class PinnedRepository(TypedDict):
    """A repository version a content view version pins, as iss.content_view.published.v1 carries it."""

    product: str
    repository: str
    redhat: bool
    content_type: str
    package_count: int
    package_set_digest: str


class Published(TypedDict):
    organization: str
    content_view: str
    version: str
    blessed: bool
    repositories: list[PinnedRepository]
    event_id: str
    warnings: NotRequired[list[str]]  # advisories naming packages their pinned version lacks


class VersionPin(TypedDict):
    product: str
    repository: str
    backend_version: int
    package_count: int
    package_set_digest: str


class ContentViewVersionRow(TypedDict):
    version: str
    created: str
    imported_from: str | None
    repositories: list[VersionPin]


class ContentViewRow(TypedDict):
    label: str
    name: str
    blessed: bool
    import_only: bool
    versions: list[str]
    repositories: list[str]  # product/repository


def create_content_view(
    uow: UnitOfWork,
    org_label: str,
    name: str,
    label: str | None,
    blessed: bool,
    repositories: Sequence[str],
    actor: str,
) -> ContentViewCreated:
    label = check_label(label) if label else make_label(name)
    with uow:
        org = find.organization(uow.session, org_label)
        if uow.session.scalar(
            select(ContentView).where(ContentView.organization_id == org.id, ContentView.label == label)
        ):
            raise UsageError(f"content view '{label}' already exists in organization '{org.label}'")
        repos: list[Repository] = []  # a repository named twice (or by two spellings) is in the view once
        for path in repositories:
            r = find.repository_by_path(uow.session, org, path)
            if all(r.id != seen.id for seen in repos):
                repos.append(r)
        paths = [f"{r.product.label}/{r.label}" for r in repos]
        uow.session.add(
            ContentView(organization_id=org.id, label=label, name=name, blessed=blessed, repositories=repos)
        )
        audit(uow.session, actor, "content_view.create", f"{org.label}/{label}", blessed=blessed)
        uow.commit()
    return {"organization": org_label, "label": label, "name": name, "blessed": blessed, "repositories": paths}


def set_blessed(uow: UnitOfWork, org_label: str, label: str, blessed: bool, actor: str) -> BlessedSet:
    with uow:
        cv = find.content_view(uow.session, find.organization(uow.session, org_label), label)
        cv.blessed = blessed
        audit(uow.session, actor, "content_view.bless" if blessed else "content_view.unbless", f"{org_label}/{label}")
        uow.commit()
    return {"organization": org_label, "label": label, "blessed": blessed}


def publish(uow: UnitOfWork, org_label: str, label: str, description: str | None, actor: str, source: str) -> Published:
    """A new major version pinning the latest version of every repository in the view."""
    with uow:
        org = find.organization(uow.session, org_label)
        cv = find.content_view(uow.session, org, label)
        if cv.import_only:
            raise UsageError(f"content view '{label}' is import-only: its versions come from imports, not publish")
        latest = find.latest_content_view_version(cv)
        # the backend's work first, before anything is written: no write lock is held meanwhile, and
        # the export the committed event starts finds what prepare_export made (no second publication)
        found = []
        for repo in cv.repositories:
            version = uow.backend.latest_version(repo.backend_key)
            info = uow.backend.version_info(repo.backend_key, version)  # its digest covers metadata units too
            found.append((repo, version, info.package_count, info.digest))
        _prepare_exports(uow.backend, [(repo.backend_key, version) for repo, version, _, _ in found])
        cvv = ContentViewVersion(
            content_view=cv, major=(latest.major + 1) if latest else 1, minor=0, description=description
        )
        uow.session.add(cvv)
        pinned: list[PinnedRepository] = []
        for repo, version, count, digest in found:
            cvv.repositories.append(
                ContentViewVersionRepository(
                    repository=repo, backend_version=version, package_count=count, package_set_digest=digest
                )
            )
            pinned.append(
                {
                    "product": repo.product.label,
                    "repository": repo.label,
                    "redhat": repo.product.redhat,
                    "content_type": repo.content_type,
                    "package_count": count,
                    "package_set_digest": digest,
                }
            )
        uow.session.flush()
        event_id = add_event(
            uow.session,
            CONTENT_VIEW_PUBLISHED,
            {
                "organization": org.label,
                "organization_name": org.name,
                "content_view": cv.label,
                "content_view_name": cv.name,
                "version": cvv.number,
                "blessed": cv.blessed,
                "description": description,
                "repositories": pinned,
                "origin": "iss",
            },
            source=source,
            subject=f"{org.label}/{cv.label}",
        )
        audit(uow.session, actor, "content_view.publish", f"{org.label}/{cv.label}", version=cvv.number)
        uow.commit()
        published: Published = {
            "organization": org.label,
            "content_view": cv.label,
            "version": cvv.number,
            "blessed": cv.blessed,
            "repositories": pinned,
            "event_id": event_id,
        }
        warnings = _advisory_warnings(uow, found).get("warnings")
        if warnings:
            published["warnings"] = warnings
        return published


def _advisory_warnings(uow: UnitOfWork, found: Sequence[tuple[Repository, int, int, str]]) -> dict[str, list[str]]:
    """{"warnings": [...]} for advisories naming packages their pinned version does not hold, or {}."""
    warnings = [
        f"{repo.product.label}/{repo.label}: {w}"
        for repo, version, _, _ in found
        for w in advisory_warnings(uow.backend, repo.backend_key, version)
    ]
    return {"warnings": warnings} if warnings else {}


def _prepare_exports(backend: object, pinned_versions: Sequence[tuple[str, int]]) -> None:
    """Let the backend prepare what exporting the pinned versions needs (Pulp: the publication the
    filesystem exporter writes, made at publish time as Katello does). Best effort: an export makes
    whatever is missing itself."""
    if not isinstance(backend, PreparesExports):
        return
    for key, version in pinned_versions:
        try:
            backend.prepare_export(key, version)
        except IssError as e:
            log.warning(
                "could not prepare the export of '%s' version %s now (the export will): %s", key, version, e.message
            )


def list_versions(uow: UnitOfWork, org_label: str, label: str) -> list[ContentViewVersionRow]:
    with uow:
        cv = find.content_view(uow.session, find.organization(uow.session, org_label), label)
        return [
            {
                "version": v.number,
                "created": v.created.isoformat(),
                "imported_from": v.imported_from,
                "repositories": [
                    {
                        "product": r.repository.product.label,
                        "repository": r.repository.label,
                        "backend_version": r.backend_version,
                        "package_count": r.package_count,
                        "package_set_digest": r.package_set_digest,
                    }
                    for r in v.repositories
                ],
            }
            for v in cv.versions
        ]


def list_content_views(uow: UnitOfWork, org_label: str) -> list[ContentViewRow]:
    with uow:
        org = find.organization(uow.session, org_label)
        views = uow.session.scalars(
            select(ContentView).where(ContentView.organization_id == org.id).order_by(ContentView.label)
        )
        return [
            {
                "label": cv.label,
                "name": cv.name,
                "blessed": cv.blessed,
                "import_only": cv.import_only,
                "versions": [v.number for v in cv.versions],
                "repositories": [f"{r.product.label}/{r.label}" for r in cv.repositories],
            }
            for cv in views
        ]
