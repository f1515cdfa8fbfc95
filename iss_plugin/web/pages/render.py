"""One Jinja2 environment (autoescape on, StrictUndefined) and `render`, which adds what every page
shows: the server id, the nav, the logged-in user and the session's CSRF token."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

from iss_plugin.web.security import csrf_token

NAV = (
    ("/", "Overview"),
    ("/destinations", "Destinations"),
    ("/content-views", "Content views"),
    ("/repositories", "Repositories"),
    ("/events", "Events"),
    ("/transfers", "Exports & imports"),
    ("/parked", "Parked"),
    ("/audit", "Audit log"),
)


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("iss_plugin.web", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        auto_reload=False,
    )
    env.filters.update(when=when, duration=duration, size=size, short=short, pretty=pretty)
    return env


def render(request: Request, template: str, *, title: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    env: Environment = request.app.state.templates
    identity = getattr(request.state, "identity", None)
    session = request.session if "session" in request.scope else {}
    page = env.get_template(template).render(
        title=title,
        server_id=request.app.state.iss.server_id,
        nav=NAV,
        active=request.url.path,
        user=identity.login if identity is not None else None,
        csrf_token=csrf_token(session),
        **context,
    )
    return HTMLResponse(page, status_code=status_code)


def when(value: datetime | None) -> str:
    if value is None:
        return ""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def size(value: int | None) -> str:
    if value is None:
        return "-"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"


def pretty(payload: str) -> str:
    """A JSON payload indented for reading; anything else as it is (the template escapes both)."""
    try:
        return json.dumps(json.loads(payload), indent=2, ensure_ascii=False)
    except ValueError:
        return payload


def short(value: str | None) -> str:
    """Digests shortened (versions stay as they are)."""
    if not value:
        return "-"
    return value if len(value) <= 20 else value[:16] + "…"
