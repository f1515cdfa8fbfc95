"""Every new repository version announces itself through the outbox, in the same transaction."""

from __future__ import annotations

from typing import TypedDict

from iss_plugin.adapters.db.models import Repository
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain.events import REPOSITORY_CHANGED

from .outbox import add_event


def record_new_version(uow: UnitOfWork, repo: Repository, version: int, source: str) -> str | None:
    """Announce `version` once: the watcher and the services that create versions share the marker."""
    if repo.announced_version is not None and version <= repo.announced_version:
        return None
    repo.announced_version = version
    info = uow.backend.version_info(repo.backend_key, version)  # its digest covers metadata units too
    data = {
        "organization": repo.product.organization.label,
        "product": repo.product.label,
        "repository": repo.label,
        "redhat": repo.product.redhat,
        "content_type": repo.content_type,
        "version": version,
        "package_count": info.package_count,
        "package_set_digest": info.digest,
    }
    return add_event(uow.session, REPOSITORY_CHANGED, data, source=source, subject=repo.backend_key)


class AnnouncedVersion(TypedDict):
    repository: str
    version: int
    event_id: str | None


def announce_new_versions(uow: UnitOfWork, source: str) -> list[AnnouncedVersion]:
    """The repository watcher's pass: every repository version not yet announced (made by iss or by
    anyone else in the backend, e.g. a sync run from pulp-cli) gets its event, once."""
    from sqlalchemy import select

    announced: list[AnnouncedVersion] = []
    for repo in uow.session.scalars(select(Repository).order_by(Repository.id)):
        latest = uow.backend.latest_version(repo.backend_key)
        if latest == 0 or (repo.announced_version is not None and latest <= repo.announced_version):
            continue
        for v in uow.backend.list_versions(repo.backend_key):  # each version once, in order
            if v.number > 0 and (repo.announced_version is None or v.number > repo.announced_version):
                event_id = record_new_version(uow, repo, v.number, source)
                announced.append({"repository": repo.backend_key, "version": v.number, "event_id": event_id})
    return announced
