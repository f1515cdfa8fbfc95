from __future__ import annotations

from sqlalchemy.orm import Session

from iss_plugin.adapters.db.models import AuditLog


def audit(session: Session, actor: str, action: str, target: str, **details: object) -> None:
    session.add(AuditLog(actor=actor, action=action, target=target, details=details))
