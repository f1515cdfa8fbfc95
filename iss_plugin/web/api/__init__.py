"""The JSON API under /api/v1: routers, and the task pool they share (made by install_api)."""

from __future__ import annotations

from fastapi import FastAPI

from iss_plugin.bootstrap import App

from . import bundles, destinations, hooks, push, streams, transfers, uploads, users
from .runner import TaskRunner


def install_api(web: FastAPI, app: App) -> None:
    for module in (transfers, bundles, streams, push, uploads, destinations, hooks, users):
        web.include_router(module.router)
    web.state.bundle_digests = bundles.DigestCache()
    pool = TaskRunner(app)
    web.state.task_runner = pool
    pool.start()  # here, not in a startup handler: a lifespan= given to FastAPI would skip those
    web.router.add_event_handler("shutdown", pool.shutdown)
