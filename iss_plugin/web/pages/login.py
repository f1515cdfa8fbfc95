"""Log in (login + password -> services.identity.authenticate_password, which audits failures) and out.

Throttled (web/throttle.py, settings web_login_*): too many failures for a login or from a client
address within the window and the attempt is refused with 429 + Retry-After before the password
is checked; the failure that starts such a lock-out is audited as `login.throttled`."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from iss_plugin.bootstrap import App
from iss_plugin.domain.errors import NotAuthenticated
from iss_plugin.services import audit, identity
from iss_plugin.web.auth import SESSION_KEY, SESSION_STAMP, iss_app
from iss_plugin.web.security import CSRF_KEY, csrf_token
from iss_plugin.web.throttle import LoginThrottle, Refusal

from .render import render

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Only a path on this server (no scheme, no //host): an open redirect otherwise."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", title="Log in", error=None, next=safe_next(next), login="")


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    login: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
    app: App = Depends(iss_app),
) -> Response:
    throttle: LoginThrottle = request.app.state.login_throttle
    address = request.client.host if request.client is not None else None
    refused = throttle.refusal(login, address)
    if refused is not None:  # refused before the password is read: no answer to learn, no argon2 spent
        return _refuse(request, refused, login, next)
    try:
        who, stamp = identity.password_session(app.uow(), login, password, address=address)
    except NotAuthenticated:
        started = throttle.failed(login, address)
        if started is not None:  # this failure starts a lock-out: audited once, not every refused attempt
            audit.record(
                app.uow(),
                login,
                "login.throttled",
                started.key,
                outcome="denied",
                scope=started.kind,
                address=address,
                limit=started.limit,
                window_seconds=int(started.window),
                retry_after_seconds=math.ceil(started.retry_after),
            )
        return render(
            request,
            "login.html",
            title="Log in",
            status_code=401,
            error="Wrong login or password (or the user is disabled).",
            next=safe_next(next),
            login=login,
        )
    throttle.succeeded(login)
    request.session.clear()  # a fresh session (and CSRF token) for the new login
    request.session[SESSION_KEY] = who.login
    request.session[SESSION_STAMP] = stamp
    request.session.pop(CSRF_KEY, None)
    csrf_token(request.session)
    return RedirectResponse(safe_next(next), status_code=303)


def _refuse(request: Request, refused: Refusal, login: str, next: str) -> Response:
    wait = max(1, math.ceil(refused.retry_after))
    until = datetime.now(UTC) + timedelta(seconds=wait)
    whose = f"for the login '{login}'" if refused.kind == "login" else f"from your address {refused.key}"
    message = (
        f"Too many failed logins {whose} ({refused.limit} within {_minutes(refused.window)}): "
        f"login attempts are refused without checking the password until {until:%H:%M:%S} UTC. "
        f"Try again in {_minutes(wait)}. If these attempts were not yours, tell an administrator "
        "(the failures are in the audit log: iss audit list --action login.)."
    )
    page = render(
        request, "login.html", title="Log in", status_code=429, error=message, next=safe_next(next), login=login
    )
    page.headers["Retry-After"] = str(wait)
    return page


def _minutes(seconds: float) -> str:
    s = math.ceil(seconds)
    if s < 60:
        return f"{s} s"
    return f"{s // 60} min" + (f" {s % 60} s" if s % 60 else "")


@router.post("/logout")
def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
