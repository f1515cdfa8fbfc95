"""Destinations (downstream servers) and what they subscribe to."""

from __future__ import annotations

import urllib.parse
from typing import TypedDict

from sqlalchemy import select

from iss_plugin.adapters.db import catalog as find
from iss_plugin.adapters.db.models import Destination, Subscription
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain.errors import NotFound, UsageError
from iss_plugin.domain.labels import check_server_id

from .audit import audit


class DestinationAdded(TypedDict):
    name: str
    server_id: str
    fingerprint: str


class DestinationUpdated(TypedDict):
    name: str
    server_id: str
    online: bool
    url: str | None
    changed: bool


class Subscribed(TypedDict):
    destination: str
    organization: str
    content_view: str | None
    repository: str | None  # product/repository
    created: bool


class SubscriptionRow(TypedDict):
    destination: str
    server_id: str
    organization: str
    content_view: str | None
    repository: str | None  # product/repository
    acknowledged: str | None
    in_flight: str | None
    rejections: int
    last_rejection: str | None
    online: bool  # the destination's: bundles are pushed to its url rather than written as files
    url: str | None


def check_push_url(url: str) -> str:
    """An online destination's `iss serve` address: http(s) with a host (at most 1024 characters)."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 1024:
        raise UsageError(
            f"--url must be the destination's http(s):// address with a host (e.g. https://dc2.example.com:8443), "
            f"not '{url}'"
        )
    return url


def add_destination(
    uow: UnitOfWork, name: str, server_id: str, public_pem: str, actor: str, *, url: str | None = None
) -> DestinationAdded:
    """`url` (the destination's `iss serve`): an online destination, bundles are pushed to it."""
    from iss_plugin.adapters.bundles.signing import fingerprint_of

    check_server_id(server_id, "--server-id")
    if url is not None:
        check_push_url(url)
    fingerprint = fingerprint_of(public_pem)
    with uow:
        if uow.session.scalar(
            select(Destination).where((Destination.name == name) | (Destination.server_id == server_id))
        ):
            raise UsageError(f"a destination named '{name}' or with server id '{server_id}' already exists")
        uow.session.add(
            Destination(name=name, server_id=server_id, public_key=public_pem, online=url is not None, url=url)
        )
        audit(uow.session, actor, "destination.add", name, server_id=server_id, fingerprint=fingerprint, url=url)
        uow.commit()
    return {"name": name, "server_id": server_id, "fingerprint": fingerprint}


def update_destination(uow: UnitOfWork, name: str, url: str | None, actor: str) -> DestinationUpdated:
    """Make a destination online at `url` (bundles are pushed to its `iss serve`), or offline (None:
    bundle files again). A bundle already in flight is answered or re-sent as before (reconcile)."""
    if url is not None:
        check_push_url(url)
    with uow:
        d = destination(uow, name)
        before = {"online": d.online, "url": d.url}
        d.online, d.url = url is not None, url
        changed = before != {"online": d.online, "url": d.url}
        audit(
            uow.session,
            actor,
            "destination.update",
            name,
            server_id=d.server_id,
            online=d.online,
            url=url,
            was_online=before["online"],
            was_url=before["url"],
        )
        result: DestinationUpdated = {
            "name": d.name,
            "server_id": d.server_id,
            "online": d.online,
            "url": d.url,
            "changed": changed,
        }
        uow.commit()
    return result


def destination(uow: UnitOfWork, name: str) -> Destination:
    d = uow.session.scalar(select(Destination).where(Destination.name == name))
    if d is None:
        raise NotFound(f"destination '{name}' does not exist (add it with `iss destination add`)")
    return d


def subscribe(
    uow: UnitOfWork, destination_name: str, org_label: str, content_view: str | None, repository: str | None, actor: str
) -> Subscribed:
    if bool(content_view) == bool(repository):
        raise UsageError("subscribe to exactly one of --content-view CV or --repository PRODUCT/REPO")
    with uow:
        dest = destination(uow, destination_name)
        org = find.organization(uow.session, org_label)
        product = repo = cv = ""
        if content_view:
            cv = find.content_view(uow.session, org, content_view).label
        elif repository:  # exactly one of both is given (checked above)
            r = find.repository_by_path(uow.session, org, repository)
            product, repo = r.product.label, r.label
        exists = uow.session.scalar(
            select(Subscription).where(
                Subscription.destination_id == dest.id,
                Subscription.organization == org.label,
                Subscription.content_view == cv,
                Subscription.product == product,
                Subscription.repository == repo,
            )
        )
        if exists is None:
            uow.session.add(
                Subscription(
                    destination_id=dest.id, organization=org.label, content_view=cv, product=product, repository=repo
                )
            )
        audit(
            uow.session,
            actor,
            "destination.subscribe",
            destination_name,
            organization=org.label,
            content_view=cv or None,
            repository=f"{product}/{repo}" if repo else None,
        )
        uow.commit()
    return {
        "destination": destination_name,
        "organization": org_label,
        "content_view": cv or None,
        "repository": f"{product}/{repo}" if repo else None,
        "created": exists is None,
    }


def list_subscriptions(uow: UnitOfWork) -> list[SubscriptionRow]:
    with uow:
        rows = uow.session.scalars(select(Subscription).order_by(Subscription.id))
        return [
            {
                "destination": s.destination.name,
                "server_id": s.destination.server_id,
                "organization": s.organization,
                "content_view": s.content_view or None,
                "repository": f"{s.product}/{s.repository}" if s.repository else None,
                "acknowledged": s.acknowledged,
                "in_flight": s.in_flight,
                "rejections": s.rejections or 0,
                "last_rejection": s.last_rejection,
                "online": s.destination.online,
                "url": s.destination.url,
            }
            for s in rows
        ]


class DestinationOnly(TypedDict):
    """A destination with no subscription, in `iss destination list`."""

    destination: str
    server_id: str
    online: bool
    url: str | None
    organization: None
    content_view: None
    repository: None
    acknowledged: None
    in_flight: None
    rejections: int
    last_rejection: None


class DestinationRow(TypedDict):
    name: str
    server_id: str
    public_key: str
    online: bool
    url: str | None


def list_destinations(uow: UnitOfWork) -> list[DestinationRow]:
    with uow:
        return [
            {"name": d.name, "server_id": d.server_id, "public_key": d.public_key, "online": d.online, "url": d.url}
            for d in uow.session.scalars(select(Destination).order_by(Destination.name))
        ]


def list_destinations_and_subscriptions(uow: UnitOfWork) -> list[SubscriptionRow | DestinationOnly]:
    """`iss destination list`: every subscription, then every destination that has none yet (so
    one just added, or made online, shows), its subscription columns empty."""
    rows: list[SubscriptionRow | DestinationOnly] = list(list_subscriptions(uow))
    subscribed = {r["destination"] for r in rows}
    for d in list_destinations(uow):
        if d["name"] not in subscribed:
            rows.append(
                {
                    "destination": d["name"],
                    "server_id": d["server_id"],
                    "online": d["online"],
                    "url": d["url"],
                    "organization": None,
                    "content_view": None,
                    "repository": None,
                    "acknowledged": None,
                    "in_flight": None,
                    "rejections": 0,
                    "last_rejection": None,
                }
            )
    return rows
