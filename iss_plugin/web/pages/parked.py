"""Parked messages: the list (view_dashboard), Replay and Discard (manage_destinations, server-wide:
the parking queues belong to the server, not to one organization). Both are POST forms with the
session's CSRF token (checked by web/security.py before this code runs). The list is paged: a
page reads at most its own bodies plus the ones before it, never the whole queue."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
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
PAGE_SIZE = 50  # parked messages per page (?per_page=, at most MAX_PAGE_SIZE)
MAX_PAGE_SIZE = 500


@router.get("/parked", response_class=HTMLResponse)
def parked(
    request: Request,
    done: str | None = None,
    page: int = Query(1, ge=1),
    per_page: int = Query(PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
    who: policy.Identity = Depends(require_somewhere(policy.VIEW_DASHBOARD)),
    app: App = Depends(iss_app),
) -> Response:
    """One page of the parking queues (`?page=N&per_page=M`): at most `per_page` bodies are read
    and kept, the total is the queues' message counts (see adapters/bus/parking.py)."""
    seen = visible(who)
    error = None
    found: parking.ParkedPage | None = None
    messages: list[parking.ParkedMessage] = []
    try:
        found = parking.parked_page(app, (page - 1) * per_page, per_page)
        messages = [m for m in found.messages if seen is None or m.organization in seen]
    except IssError as e:
        error = e.message
    except Exception as e:  # the broker is down: say so on the page
        error = f"cannot read the parking queues: {e}"
    return render(
        request,
        "parked.html",
        title="Parked messages",
        messages=messages,
        hidden=len(found.messages) - len(messages) if found is not None else 0,
        found=found,
        page=page,
        per_page=per_page,
        can_act=policy.allows(who, ACT_PERMISSION, None),
        notice=done,
        error=error,
    )


@router.post("/parked/{event_id}/replay")
def replay(
    event_id: str,
    page: int = Query(1, ge=1),
    per_page: int = Query(PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
    who: policy.Identity = Depends(require(ACT_PERMISSION)),
    app: App = Depends(iss_app),
) -> Response:
    m = parking.replay(app, event_id, who.login)
    return RedirectResponse(_back(page, per_page, f"replayed+{m.event_id}"), status_code=303)


@router.post("/parked/{event_id}/discard")
def discard(
    event_id: str,
    page: int = Query(1, ge=1),
    per_page: int = Query(PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
    who: policy.Identity = Depends(require(ACT_PERMISSION)),
    app: App = Depends(iss_app),
) -> Response:
    m = parking.discard(app, event_id, who.login)
    return RedirectResponse(_back(page, per_page, f"discarded+{m.event_id}"), status_code=303)


def _back(page: int, per_page: int, done: str) -> str:
    """The page the action was taken on (its messages after this one moved up by one)."""
    paging = f"&page={page}" if page > 1 else ""
    paging += f"&per_page={per_page}" if per_page != PAGE_SIZE else ""
    return f"/parked?done={done}{paging}"
