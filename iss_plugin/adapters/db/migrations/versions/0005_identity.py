"""identity: users, roles, role permissions, user roles (per organization), API tokens; audit_log
organization and outcome; trusted_sources.organizations becomes a {source org: destination org} map

Revision ID: 0005
Revises: 0004_subscription_rejections
Create Date: 2026-12-06 17:50:00
"""

import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004_subscription_rejections"
branch_labels = None
depends_on = None

# A frozen copy of domain/policy.BUILTIN_ROLES as of this revision (migrations do not import live code).
BUILTIN_ROLES = {
    "Content Exporter": ["export_content", "view_content_views", "view_products"],
    "Content Importer": ["import_content", "view_content_views", "view_products"],
    "Viewer": ["view_content_views", "view_dashboard", "view_products"],
    "Administrator": ["admin"],
}


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("login", sa.String(length=128), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("admin", sa.Boolean(), nullable=False),
        sa.Column("service_account", sa.Boolean(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("login"),
    )
    roles = op.create_table(
        "roles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    role_permissions = op.create_table(
        "role_permissions",
        sa.Column("role_id", sa.Integer(), nullable=False),
        sa.Column("permission", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["role_id"], ["roles.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("role_id", "permission"),
    )
    op.create_table(
        "user_roles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role_id", sa.Integer(), nullable=False),
        sa.Column("organization", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["role_id"], ["roles.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "role_id", "organization"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
        sa.UniqueConstraint("user_id", "name"),
    )
    op.bulk_insert(roles, [{"id": i, "name": n, "builtin": True} for i, n in enumerate(BUILTIN_ROLES, 1)])
    op.bulk_insert(
        role_permissions,
        [{"role_id": i, "permission": p} for i, perms in enumerate(BUILTIN_ROLES.values(), 1) for p in perms],
    )
    if op.get_bind().dialect.name == "postgresql":  # explicit ids above: move the sequence past them
        op.execute("SELECT setval('roles_id_seq', (SELECT max(id) FROM roles))")

    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("organization", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("outcome", sa.String(length=16), nullable=False, server_default="success"))

    _rewrite_trust(lambda stored: {o: o for o in stored} if isinstance(stored, list) else stored)


def downgrade() -> None:
    _rewrite_trust(lambda stored: sorted(set(stored.values())) if isinstance(stored, dict) else stored)
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_column("outcome")
        batch_op.drop_column("organization")
    op.drop_table("api_tokens")
    op.drop_table("user_roles")
    op.drop_table("role_permissions")
    op.drop_table("roles")
    op.drop_table("users")


def _rewrite_trust(convert: Callable[[Any], Any]) -> None:
    """trusted_sources.organizations: a list of labels <-> an identity map {label: label}."""
    ts = sa.table("trusted_sources", sa.column("id", sa.Integer()), sa.column("organizations", sa.JSON()))
    bind = op.get_bind()
    for row_id, stored in bind.execute(sa.select(ts.c.id, ts.c.organizations)).all():
        value = json.loads(stored) if isinstance(stored, str) else stored
        bind.execute(ts.update().where(ts.c.id == row_id).values(organizations=convert(value)))
