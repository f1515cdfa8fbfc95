"""The web application of `iss serve`: the Jinja dashboard and the JSON API under /api/v1.

`create_app(app)` wires one FastAPI application over a bootstrap.App; nothing is created at
import time. Routers add themselves in `_routers()`."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from iss_plugin.bootstrap import App
from iss_plugin.domain.errors import IssError

from .errors import status_of


def create_app(app: App) -> FastAPI:
    from importlib.metadata import version

    web = FastAPI(title="iss", version=version("iss"), docs_url="/api/docs", openapi_url="/api/v1/openapi.json")
    web.state.iss = app

    @web.exception_handler(IssError)
    async def iss_error(request: Request, error: IssError) -> JSONResponse:
        return JSONResponse(error.as_dict(), status_code=status_of(error))

    @web.get("/api/v1/health", tags=["server"])
    def health() -> dict[str, str]:
        """Liveness: answers without a login."""
        return {"status": "ok", "server_id": app.server_id}

    from .api import install_api

    install_api(web, app)
    return web
