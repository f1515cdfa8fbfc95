"""Destinations and subscriptions: GET/POST /api/v1/destinations, PATCH /api/v1/destinations/{name}
(online at a url, or offline) and GET/POST /api/v1/subscriptions."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request

from iss_plugin.adapters.bundles.signing import fingerprint_of
from iss_plugin.bootstrap import App
from iss_plugin.domain import policy
from iss_plugin.domain.errors import UsageError
from iss_plugin.services import subscriptions
from iss_plugin.web.auth import authorize, caller, iss_app, require

from .models import (
    ERRORS,
    DestinationIn,
    DestinationOut,
    DestinationUpdate,
    SubscribedOut,
    SubscriptionIn,
    SubscriptionOut,
)

router = APIRouter(prefix="/api/v1", tags=["destinations"], responses=ERRORS)


@router.get("/destinations", response_model=list[DestinationOut])
def list_destinations(
    who: policy.Identity = Depends(require(policy.MANAGE_DESTINATIONS)), app: App = Depends(iss_app)
) -> list[DestinationOut]:
    """Every destination (a server-wide list: manage_destinations in every organization)."""
    return [_out(d) for d in subscriptions.list_destinations(app.uow())]


@router.post("/destinations", response_model=DestinationOut, status_code=201)
def add_destination(
    body: DestinationIn,
    who: policy.Identity = Depends(require(policy.MANAGE_DESTINATIONS)),
    app: App = Depends(iss_app),
) -> DestinationOut:
    """Add a downstream server by name, server id and its Ed25519 public key (with `url`: online,
    bundles are pushed to it)."""
    added = subscriptions.add_destination(
        app.uow(), body.name, body.server_id, body.public_key, who.login, url=body.url
    )
    return DestinationOut(**added, online=body.url is not None, url=body.url)


@router.patch("/destinations/{name}", response_model=DestinationOut)
def update_destination(
    body: DestinationUpdate,
    name: str = Path(max_length=128),
    who: policy.Identity = Depends(require(policy.MANAGE_DESTINATIONS)),
    app: App = Depends(iss_app),
) -> DestinationOut:
    """Make a destination online (`{"online": true, "url": ...}`) or offline (`{"online": false}`)."""
    if body.online != (body.url is not None):
        raise UsageError("online and url go together: an online destination is pushed to at its url")
    subscriptions.update_destination(app.uow(), name, body.url, who.login)
    [d] = [d for d in subscriptions.list_destinations(app.uow()) if d["name"] == name]
    return _out(d)


def _out(d: subscriptions.DestinationRow) -> DestinationOut:
    fingerprint = fingerprint_of(d["public_key"])
    return DestinationOut(
        name=d["name"], server_id=d["server_id"], fingerprint=fingerprint, online=d["online"], url=d["url"]
    )


@router.get("/subscriptions", response_model=list[SubscriptionOut])
def list_subscriptions(
    request: Request,
    organization: str | None = Query(default=None, max_length=128),
    who: policy.Identity = Depends(caller),
    app: App = Depends(iss_app),
) -> list[SubscriptionOut]:
    """Subscriptions in the organizations where the caller holds manage_destinations."""
    if organization:
        authorize(app, request, who, policy.MANAGE_DESTINATIONS, organization)
    else:
        policy.check_somewhere(who, policy.MANAGE_DESTINATIONS)
    visible = policy.visible_organizations(who, policy.MANAGE_DESTINATIONS)
    return [
        SubscriptionOut(**row)
        for row in subscriptions.list_subscriptions(app.uow())
        if (visible is None or row["organization"] in visible)
        and (organization is None or row["organization"] == organization)
    ]


@router.post("/subscriptions", response_model=SubscribedOut, status_code=201)
def subscribe(
    body: SubscriptionIn, request: Request, who: policy.Identity = Depends(caller), app: App = Depends(iss_app)
) -> SubscribedOut:
    """Subscribe a destination to a content view or a repository of an organization."""
    authorize(app, request, who, policy.MANAGE_DESTINATIONS, body.organization)
    made = subscriptions.subscribe(
        app.uow(), body.destination, body.organization, body.content_view, body.repository, who.login
    )
    return SubscribedOut(**made)
