"""transaction_memo: shared within one transaction, fresh after its commit or rollback."""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from iss_plugin.adapters.db.memo import transaction_memo


def test_a_memo_lives_as_long_as_its_transaction():
    with Session(create_engine("sqlite://")) as session:
        assert transaction_memo(session) == {}  # no transaction yet: nothing is kept
        transaction_memo(session)["k"] = "not kept"
        session.execute(text("SELECT 1"))
        transaction_memo(session)["k"] = 1
        assert transaction_memo(session) == {"k": 1}
        session.commit()
        session.execute(text("SELECT 1"))
        assert transaction_memo(session) == {}
        transaction_memo(session)["k"] = 2
        session.rollback()
        session.execute(text("SELECT 1"))
        assert transaction_memo(session) == {}
