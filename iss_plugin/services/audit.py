"""The audit log: who did what, when, in which organization, with which outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from iss_plugin.adapters.db.models import AuditLog
from iss_plugin.adapters.db.uow import UnitOfWork

OUTCOMES = ("success", "denied", "failed", "rejected")


def audit(
    session: Session,
    actor: str,
    action: str,
    target: str,
    *,
    organization: str | None = None,
    outcome: str = "success",
    **details: Any,
) -> None:
    """One row, in the caller's transaction (it commits or rolls back with the change it records)."""
    session.add(
        AuditLog(actor=actor, action=action, target=target, details=details, organization=organization, outcome=outcome)
    )


def record(
    uow: UnitOfWork,
    actor: str,
    action: str,
    target: str,
    *,
    organization: str | None = None,
    outcome: str,
    **details: Any,
) -> None:
    """One row in its own transaction: for what failed (a denial, a login failure), whose own
    transaction rolls back."""
    with uow:
        audit(uow.session, actor, action, target, organization=organization, outcome=outcome, **details)
        uow.commit()


def list_audit(
    uow: UnitOfWork,
    *,
    since: datetime | None = None,
    organization: str | None = None,
    action: str | None = None,
    organizations: frozenset[str] | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Newest first. `organizations` (the caller's visible ones; None: all) narrows to those rows."""
    with uow:
        q = select(AuditLog).order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(limit)
        if since is not None:
            q = q.where(AuditLog.at >= since)
        if organization is not None:
            q = q.where(AuditLog.organization == organization)
        if action is not None:
            q = q.where(AuditLog.action.startswith(action) if action.endswith(".") else AuditLog.action == action)
        if organizations is not None:
            q = q.where(AuditLog.organization.in_(sorted(organizations)))
        return [
            {
                "at": r.at,
                "actor": r.actor,
                "action": r.action,
                "target": r.target,
                "organization": r.organization,
                "outcome": r.outcome,
                "details": r.details,
            }
            for r in uow.session.scalars(q)
        ]
