"""The web application of `iss serve`: the Jinja dashboard and the JSON API under /api/v1.

`create_app(app)` wires one FastAPI application over a bootstrap.App; nothing is created at
import time. Routers add themselves in `_routers()`. Browser sessions and CSRF: web/security.py."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from iss_plugin.bootstrap import App
from iss_plugin.domain.errors import IssError, NotAuthenticated

from .errors import status_of
from .security import SESSION_COOKIE, CsrfMiddleware, SecureCookieMiddleware, session_secret
from .throttle import LoginThrottle

SESSION_MAX_AGE = 12 * 3600  # seconds; a browser session lasts a working day


def _routers() -> list[APIRouter]:
    from . import metrics
    from .pages import login, parked, views

    return [login.router, views.router, parked.router, metrics.router]


def _is_page(request: Request) -> bool:
    """A browser page (HTML answers) rather than the JSON API or /metrics."""
    path = request.url.path
    return not (path.startswith("/api/") or path == "/metrics")


def create_app(app: App) -> FastAPI:
    from importlib.metadata import version

    from .pages.render import environment, render

    web = FastAPI(title="iss", version=version("iss"), docs_url="/api/docs", openapi_url="/api/v1/openapi.json")
    web.state.iss = app
    web.state.templates = environment()
    s = app.settings
    web.state.login_throttle = LoginThrottle(
        s.web_login_max_failures, s.web_login_max_failures_per_address, s.web_login_window_seconds
    )

    # last added runs first: secure-cookie flag, then the session, then CSRF (which reads the session)
    web.add_middleware(CsrfMiddleware)
    web.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(app.settings.data_dir),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE,
        same_site="lax",
        https_only=False,  # SecureCookieMiddleware adds Secure per request (https, or web_secure_cookies)
    )
    web.add_middleware(SecureCookieMiddleware, always=app.settings.web_secure_cookies)

    @web.exception_handler(IssError)
    async def iss_error(request: Request, error: IssError) -> Response:
        if not _is_page(request):
            return JSONResponse(error.as_dict(), status_code=status_of(error))
        if isinstance(error, NotAuthenticated):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
        status = status_of(error)
        return render(
            request, "error.html", title=str(status), status_code=status, status=status, message=error.message
        )

    @web.get("/api/v1/health", tags=["server"])
    def health() -> dict[str, str]:
        """Liveness: answers without a login."""
        return {"status": "ok", "server_id": app.server_id}

    for router in _routers():
        web.include_router(router)
    web.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")

    from .api import install_api

    install_api(web, app)
    return web
