"""Every new repository version announces itself through the outbox, in the same transaction."""
from __future__ import annotations

from iss_plugin.adapters.db.models import Repository
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain.events import REPOSITORY_CHANGED
from iss_plugin.domain.packages import package_set_digest

from .outbox import add_event


def record_new_version(uow: UnitOfWork, repo: Repository, version: int, source: str) -> str:
    packages = uow.backend.list_packages(repo.backend_key, version)
    data = {
        "organization": repo.product.organization.label,
        "product": repo.product.label,
        "repository": repo.label,
        "redhat": repo.product.redhat,
        "content_type": repo.content_type,
        "version": version,
        "package_count": len(packages),
        "package_set_digest": package_set_digest(p.sha256 for p in packages),
    }
    return add_event(uow.session, REPOSITORY_CHANGED, data, source=source, subject=repo.backend_key)
