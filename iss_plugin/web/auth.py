"""Who is calling: the FastAPI dependencies every page and endpoint uses.

`caller` finds the identity from an `Authorization: Bearer <token>` header (API tokens of
`iss token create`) or from the signed session cookie the login page sets (see `SESSION_KEY`),
both checked against the database on every request (a disabled or deleted user is refused at once);
`require(permission)` checks a permission through domain/policy.py, in the organization named
by the request's `organization` path or query parameter (server-wide when there is none), and
records a denial in the audit log."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request

from iss_plugin.bootstrap import App
from iss_plugin.domain import policy
from iss_plugin.domain.errors import Forbidden, NotAuthenticated
from iss_plugin.services import audit, identity

SESSION_KEY = "login"  # request.session[SESSION_KEY]: the login of a signed-in browser session
SESSION_STAMP = "user"  # request.session[SESSION_STAMP]: identity.session_stamp (id, creation, generation)


def iss_app(request: Request) -> App:
    """The wired App of this server (made once by create_app)."""
    app: App = request.app.state.iss
    return app


def caller(request: Request, app: App = Depends(iss_app)) -> policy.Identity:
    cached: policy.Identity | None = getattr(request.state, "identity", None)
    if cached is not None:
        return cached
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        found = identity.authenticate_token(app.uow(), token.strip(), "the Authorization header")
    elif "session" in request.scope and request.session.get(SESSION_KEY):
        login, stamp = str(request.session[SESSION_KEY]), request.session.get(SESSION_STAMP)
        try:
            found = identity.authenticate_session(app.uow(), login, stamp)
        except NotAuthenticated:
            request.session.clear()  # the response deletes the cookie
            raise
        request.state.session_login = login
    else:
        raise NotAuthenticated("log in first (the login page), or send Authorization: Bearer <token>")
    request.state.identity = found
    return found


def keep_session(request: Request, app: App, login: str) -> None:
    """After `login`'s password changed: when this request came from `login`'s own dashboard
    session, that session stays signed in with a fresh stamp (as Django's update_session_auth_hash);
    every other session of the user has ended."""
    if getattr(request.state, "session_login", None) == login:
        request.session[SESSION_STAMP] = identity.session_stamp(app.uow(), login)


def authorize(
    app: App,
    request: Request,
    who: policy.Identity,
    permission: str,
    organization: str | None,
    *,
    somewhere: bool = False,
) -> None:
    """The one permission check of the web layer (pages and API): `permission` in `organization`
    (server-wide when None, or in at least one organization when `somewhere`); a denial is
    recorded in the audit log before it is raised."""
    try:
        if somewhere and not organization:
            policy.check_somewhere(who, permission)
        else:
            policy.check(who, permission, organization)
    except Forbidden as e:
        audit.record(
            app.uow(),
            who.login,
            "permission.denied",
            f"{request.method} {request.url.path}",
            organization=organization,
            outcome="denied",
            permission=permission,
            message=e.message,
        )
        raise


def _organization_of(request: Request) -> str | None:
    return request.path_params.get("organization") or request.query_params.get("organization") or None


def require(permission: str) -> Callable[..., policy.Identity]:
    """A dependency: the caller, if it holds `permission` in the request's organization."""

    def check(request: Request, who: policy.Identity = Depends(caller), app: App = Depends(iss_app)) -> policy.Identity:
        authorize(app, request, who, permission, _organization_of(request))
        return who

    return check


def require_somewhere(permission: str) -> Callable[..., policy.Identity]:
    """A dependency for pages that list several organizations: the caller, if it holds
    `permission` in the request's `organization` (when one is named) or in at least one
    organization; the page then shows only `policy.visible_organizations(who, permission)`."""

    def check(request: Request, who: policy.Identity = Depends(caller), app: App = Depends(iss_app)) -> policy.Identity:
        authorize(app, request, who, permission, _organization_of(request), somewhere=True)
        return who

    return check
