"""Migration 0005 on SQLite and PostgreSQL: built-in roles seeded, trust lists become identity
maps (and back on downgrade), audit rows gain organization and outcome."""

import json

from alembic import command
from sqlalchemy import select, text

from iss_plugin.adapters.db import migrate
from iss_plugin.adapters.db.engine import make_engine, make_session_factory
from iss_plugin.adapters.db.identity_models import Role, RolePermission
from iss_plugin.adapters.db.models import AuditLog, TrustedSource
from iss_plugin.domain.policy import BUILTIN_ROLES


def test_0005_upgrades_and_downgrades_trust_lists(database_url):
    migrate.upgrade(database_url, "0004_subscription_rejections")
    engine = make_engine(database_url)
    try:
        with engine.begin() as c:
            c.execute(
                text(
                    "INSERT INTO trusted_sources (name, public_key, fingerprint, organizations, created) "
                    "VALUES ('src', 'pem', 'sha256:1', :orgs, CURRENT_TIMESTAMP)"
                ),
                {"orgs": '["ACME", "LAB"]'},
            )
            c.execute(
                text(
                    "INSERT INTO audit_log (at, actor, action, target, details) VALUES (CURRENT_TIMESTAMP, 'a', 'x', 't', '{}')"
                )
            )
        migrate.upgrade(database_url, "0005")
        assert migrate.current(database_url) == "0005"
        with make_session_factory(engine)() as s:
            assert s.scalars(select(TrustedSource.organizations)).one() == {"ACME": "ACME", "LAB": "LAB"}
            assert [(r.outcome, r.organization) for r in s.scalars(select(AuditLog))] == [("success", None)]
            roles = {r.name: ({p.permission for p in r.permissions}, r.builtin) for r in s.scalars(select(Role))}
            assert roles == {name: (set(perms), True) for name, perms in BUILTIN_ROLES.items()}
            s.add(Role(name="Mine", permissions=[RolePermission(permission="view_products")]))  # ids continue
            s.commit()
        command.downgrade(migrate.alembic_config(database_url), "0004_subscription_rejections")
        with engine.connect() as c:
            stored = c.execute(text("SELECT organizations FROM trusted_sources")).scalar_one()
        assert (stored if isinstance(stored, list) else json.loads(stored)) == ["ACME", "LAB"]
    finally:
        engine.dispose()
