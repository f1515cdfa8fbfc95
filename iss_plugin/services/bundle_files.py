"""Bundles this server exported, as the web API lists and serves them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypedDict

from sqlalchemy import select

from iss_plugin.adapters.db.models import Destination, ExportRecord, Subscription
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain.errors import NotAuthenticated, NotFound


class BundleRow(TypedDict):
    bundle_id: str
    organization: str
    scope: str
    content_view: str | None
    version: str | None
    product: str | None
    repository: str | None
    kind: str
    base: str | None
    destination: str | None
    format: str
    size: int | None
    created: datetime


@dataclass(frozen=True)
class StoredBundle:
    """One written bundle: where it is on disk and whom it belongs to."""

    bundle_id: str
    organization: str
    destination: str | None  # the destination's name it was exported for; None: shared (services.fanout)
    format: str  # dir | tgz | iso
    path: Path  # the directory, the archive, or the first chunk
    content_view: str | None = None
    product: str | None = None
    repository: str | None = None


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size if path.is_file() else None
    except OSError:
        return None


def list_bundles(uow: UnitOfWork, organizations: frozenset[str] | None, limit: int = 500) -> list[BundleRow]:
    """Written bundles, newest first, in `organizations` (None: every organization)."""
    with uow:
        q = select(ExportRecord).where(ExportRecord.state == "done").order_by(ExportRecord.id.desc()).limit(limit)
        if organizations is not None:
            q = q.where(ExportRecord.organization.in_(sorted(organizations)))
        return [
            {
                "bundle_id": r.bundle_id,
                "organization": r.organization,
                "scope": r.scope,
                "content_view": r.content_view,
                "version": r.version,
                "product": r.product,
                "repository": r.repository,
                "kind": r.kind,
                "base": r.base,
                "destination": r.destination,
                "format": r.format,
                "size": _size(Path(r.path)) if r.path else None,
                "created": r.created,
            }
            for r in uow.session.scalars(q)
        ]


def stored_bundle(uow: UnitOfWork, bundle_id: str) -> StoredBundle:
    with uow:
        r = uow.session.scalar(select(ExportRecord).where(ExportRecord.bundle_id == bundle_id))
        if r is None or r.state != "done" or not r.path:
            raise NotFound(f"bundle '{bundle_id}' does not exist here (GET /api/v1/bundles lists them)")
        path = Path(r.path)
        if not path.exists():
            raise NotFound(f"bundle '{bundle_id}' is recorded but its files are gone ({path.name})")
        return StoredBundle(
            r.bundle_id, r.organization, r.destination, r.format, path, r.content_view, r.product, r.repository
        )


def may_fetch(uow: UnitOfWork, destination: str, bundle: StoredBundle) -> bool:
    """A bundle made for this destination, or a shared one (built once for every destination that
    shares its base) of content the destination subscribes to."""
    if bundle.destination is not None:
        return bundle.destination == destination
    with uow:
        subs = uow.session.scalars(
            select(Subscription)
            .join(Destination, Subscription.destination_id == Destination.id)
            .where(Destination.name == destination, Subscription.organization == bundle.organization)
        )
        for sub in subs:
            if bundle.content_view and sub.content_view == bundle.content_view:
                return True
            if bundle.repository and (sub.product, sub.repository) == (bundle.product, bundle.repository):
                return True
    return False


def destination_key(uow: UnitOfWork, server_id: str) -> tuple[str, str]:
    """(name, public key PEM) of the destination with this server id; NotAuthenticated if none."""
    with uow:
        d = uow.session.scalar(select(Destination).where(Destination.server_id == server_id))
        if d is None:
            raise NotAuthenticated(f"no destination with server id '{server_id}' is known here")
        return d.name, d.public_key
