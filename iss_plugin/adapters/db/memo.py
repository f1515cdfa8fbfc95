"""Values remembered for the rest of one transaction (a fan-out asks the same question once per
subscription: the same content view, the same authorization, the same bundle).

The memo belongs to the session's current transaction: a commit or rollback starts a fresh one, so
nothing read in one transaction answers a question in the next. It holds its values strongly,
which also keeps their ORM objects (and the collections already loaded on them) in the session's
identity map, which otherwise only references them weakly."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

_KEY = "iss.transaction_memo"


def transaction_memo(session: Session) -> dict[Any, Any]:
    tx = session.get_transaction()
    if tx is None:  # no transaction yet: nothing to share
        return {}
    held = session.info.get(_KEY)
    if held is None or held[0] is not tx:
        held = (tx, {})
        session.info[_KEY] = held
    memo: dict[Any, Any] = held[1]
    return memo
