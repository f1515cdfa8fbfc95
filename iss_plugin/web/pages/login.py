"""Log in (login + password -> services.identity.authenticate_password, which audits failures) and out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from iss_plugin.bootstrap import App
from iss_plugin.domain.errors import NotAuthenticated
from iss_plugin.services import identity
from iss_plugin.web.auth import SESSION_KEY, SESSION_STAMP, iss_app
from iss_plugin.web.security import CSRF_KEY, csrf_token

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
    try:
        who = identity.authenticate_password(app.uow(), login, password)
    except NotAuthenticated:
        return render(
            request,
            "login.html",
            title="Log in",
            status_code=401,
            error="Wrong login or password (or the user is disabled).",
            next=safe_next(next),
            login=login,
        )
    request.session.clear()  # a fresh session (and CSRF token) for the new login
    request.session[SESSION_KEY] = who.login
    request.session[SESSION_STAMP] = identity.session_stamp(app.uow(), who.login)
    request.session.pop(CSRF_KEY, None)
    csrf_token(request.session)
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
