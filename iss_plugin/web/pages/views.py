"""The read-only pages: overview, destinations, content views, repositories, events, exports and
imports, audit log. Each needs `view_dashboard` (in the organization asked for, else in at least
one) and shows only the organizations the caller holds it in."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from iss_plugin.adapters.bus.connection import is_amqp
from iss_plugin.bootstrap import App
from iss_plugin.domain import policy
from iss_plugin.services import audit, dashboard, parking, unroutable
from iss_plugin.web import health
from iss_plugin.web.auth import iss_app, require_somewhere

from .render import render

router = APIRouter(include_in_schema=False)
viewer = require_somewhere(policy.VIEW_DASHBOARD)


def visible(who: policy.Identity, organization: str | None = None) -> dashboard.Visible:
    """What the caller may see, narrowed to `organization` when the page was asked for one."""
    seen = policy.visible_organizations(who, policy.VIEW_DASHBOARD)
    if organization:
        return frozenset({organization}) if seen is None or organization in seen else frozenset()
    return seen


def parked_count(app: App, seen: dashboard.Visible) -> int | None:
    """The broker's count for a user who sees every organization (nothing read); for others, a
    tally per organization (every message read, none kept)."""
    try:
        if seen is None:
            return parking.parked_count(app)
        per_organization = parking.parked_tally(app, lambda m: m.organization)
        return sum(n for organization, n in per_organization.items() if organization in seen)
    except Exception:  # the bus is down: the overview says so rather than failing
        return None


@dataclass(frozen=True)
class UnroutableCard:
    count: int | None  # None: the broker did not answer


def unroutable_card(app: App, seen: dashboard.Visible, bus_ok: bool) -> UnroutableCard | None:
    """The unroutable queue's depth, counted by the broker (nothing read), for a user who sees every
    organization (the messages are of any organization, and listing them is the server admin's
    `iss bus unroutable list`); None (no card) for others and on a bus without that queue (memory://)."""
    if seen is not None or not is_amqp(app.settings.bus.url):
        return None
    if not bus_ok:  # the health check found the broker down: no second wait for it
        return UnroutableCard(None)
    try:
        count = unroutable.waiting_count(app)
    except Exception:  # the bus is down: the overview says so rather than failing
        return UnroutableCard(None)
    return None if count is None else UnroutableCard(count)


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, who: policy.Identity = Depends(viewer), app: App = Depends(iss_app)) -> Response:
    seen = visible(who)
    checked = health.check(app)
    return render(
        request,
        "overview.html",
        title="Overview",
        o=dashboard.overview(app.uow(), app.server_id, seen),
        health=checked,
        parked_count=parked_count(app, seen),
        unroutable=unroutable_card(app, seen, checked.bus_ok),
    )


@router.get("/destinations", response_class=HTMLResponse)
def destinations(
    request: Request,
    organization: str | None = None,
    who: policy.Identity = Depends(viewer),
    app: App = Depends(iss_app),
) -> Response:
    rows = dashboard.destinations(app.uow(), visible(who, organization))
    per_destination = dashboard.lag_per_destination(rows)
    max_lag = max((v for v, _ in per_destination.values()), default=0)
    return render(
        request, "destinations.html", title="Destinations", rows=rows, per_destination=per_destination, max_lag=max_lag
    )


@router.get("/content-views", response_class=HTMLResponse)
def content_views(
    request: Request,
    organization: str | None = None,
    who: policy.Identity = Depends(viewer),
    app: App = Depends(iss_app),
) -> Response:
    views = dashboard.content_views(app.uow(), visible(who, organization))
    return render(request, "content_views.html", title="Content views", views=views)


@router.get("/repositories", response_class=HTMLResponse)
def repositories(
    request: Request,
    organization: str | None = None,
    who: policy.Identity = Depends(viewer),
    app: App = Depends(iss_app),
) -> Response:
    repos = dashboard.repositories(app.uow(), visible(who, organization))
    return render(request, "repositories.html", title="Repositories", repos=repos)


@router.get("/events", response_class=HTMLResponse)
def events(
    request: Request,
    type: str | None = None,
    organization: str | None = None,
    who: policy.Identity = Depends(viewer),
    app: App = Depends(iss_app),
) -> Response:
    seen = visible(who)
    ev = dashboard.events(app.uow(), seen, event_type=type or None, organization=organization or None)
    organizations = dashboard.overview(app.uow(), app.server_id, seen).organizations
    return render(
        request,
        "events.html",
        title="Events",
        ev=ev,
        event_type=type or "",
        organization=organization or "",
        organizations=organizations,
    )


@router.get("/transfers", response_class=HTMLResponse)
def transfers(
    request: Request,
    organization: str | None = None,
    who: policy.Identity = Depends(viewer),
    app: App = Depends(iss_app),
) -> Response:
    rows = dashboard.transfers(app.uow(), visible(who, organization))
    return render(request, "transfers.html", title="Exports and imports", rows=rows)


@router.get("/audit", response_class=HTMLResponse)
def audit_log(
    request: Request,
    organization: str | None = None,
    who: policy.Identity = Depends(viewer),
    app: App = Depends(iss_app),
) -> Response:
    seen = visible(who, organization)
    rows = audit.list_audit(app.uow(), organizations=seen, limit=300)
    return render(request, "audit.html", title="Audit log", rows=rows)
