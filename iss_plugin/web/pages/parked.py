"""Parked messages: the list (view_dashboard), Replay and Discard (manage_destinations, server-wide:
the parking queues belong to the server, not to one organization). Both are POST forms with the
session's CSRF token (checked by web/security.py before this code runs)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from iss_plugin.bootstrap import App
from iss_plugin.domain import policy
from iss_plugin.domain.errors import IssError
from iss_plugin.services import parking
from iss_plugin.web.auth import iss_app, require, require_somewhere

from .render import render
from .views import visible

router = APIRouter(include_in_schema=False)
ACT_PERMISSION = policy.MANAGE_DESTINATIONS


@router.get("/parked", response_class=HTMLResponse)
def parked(
    request: Request,
    done: str | None = None,
    who: policy.Identity = Depends(require_somewhere(policy.VIEW_DASHBOARD)),
    app: App = Depends(iss_app),
) -> Response:
    seen = visible(who)
    error = None
    try:
        messages = [m for m in parking.list_parked(app) if seen is None or m.organization in seen]
    except IssError as e:
        messages, error = [], e.message
    except Exception as e:  # the broker is down: say so on the page
        messages, error = [], f"cannot read the parking queues: {e}"
    return render(
        request,
        "parked.html",
        title="Parked messages",
        messages=messages,
        can_act=policy.allows(who, ACT_PERMISSION, None),
        notice=done,
        error=error,
    )


@router.post("/parked/{event_id}/replay")
def replay(
    event_id: str, who: policy.Identity = Depends(require(ACT_PERMISSION)), app: App = Depends(iss_app)
) -> Response:
    m = parking.replay(app, event_id, who.login)
    return RedirectResponse(f"/parked?done=replayed+{m.event_id}", status_code=303)


@router.post("/parked/{event_id}/discard")
def discard(
    event_id: str, who: policy.Identity = Depends(require(ACT_PERMISSION)), app: App = Depends(iss_app)
) -> Response:
    m = parking.discard(app, event_id, who.login)
    return RedirectResponse(f"/parked?done=discarded+{m.event_id}", status_code=303)
