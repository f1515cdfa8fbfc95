"""Is the bus reachable, does the content backend answer: for the overview page."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from iss_plugin.adapters.bus.connection import is_memory_url, make_kombu_connection
from iss_plugin.adapters.db.models import Repository
from iss_plugin.bootstrap import App


@dataclass(frozen=True)
class Health:
    bus: str
    bus_ok: bool
    backend: str
    backend_ok: bool


def _redacted(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest


def check(app: App) -> Health:
    bus_url = app.settings.bus.url
    bus_ok = True
    if not is_memory_url(bus_url):
        try:
            with make_kombu_connection(app.settings.bus) as conn:
                conn.ensure_connection(max_retries=1)
        except Exception:
            bus_ok = False
    backend = app.settings.backend
    try:
        with app.uow() as uow:  # the database answers, and the backend knows a repository of it
            key = uow.session.scalar(select(Repository.backend_key).limit(1))
            if key is not None:
                uow.backend.latest_version(key)
        backend_ok = True
    except Exception:
        backend_ok = False
    where = app.settings.pulp.url if backend == "pulp" else str(app.settings.store_path)
    return Health(_redacted(bus_url), bus_ok, f"{backend} ({where})", backend_ok)
