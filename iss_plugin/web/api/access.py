"""Permission checks for endpoints whose organization is in the request body (not a path or query
parameter, which `auth.require` reads): the same check through domain/policy.py, the same audit row."""

from __future__ import annotations

from fastapi import Request

from iss_plugin.bootstrap import App
from iss_plugin.domain import policy
from iss_plugin.domain.errors import Forbidden
from iss_plugin.services import audit


def authorize(app: App, request: Request, who: policy.Identity, permission: str, organization: str | None) -> None:
    try:
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
