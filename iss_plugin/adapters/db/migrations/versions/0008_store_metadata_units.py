"""the local store's metadata units: advisories, comps entries, modulemd documents

store_units: one row per unit (digest unique; kind, key, canonical body, NEVRAs it names)
store_repository_units: which versions of a repository hold a unit ([version_added, version_removed))
store_repository_versions.units_digest: the digest of a version's units (NULL: none)

Revision ID: 0008
Revises: 0006 (the lead re-chains at merge)
Create Date: 2026-12-06 18:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_units",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("digest", sa.String(80), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("packages", sa.Text(), nullable=False),
    )
    op.create_table(
        "store_repository_units",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "repository_id", sa.Integer(), sa.ForeignKey("store_repositories.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("unit_id", sa.Integer(), sa.ForeignKey("store_units.id"), nullable=False),
        sa.Column("version_added", sa.Integer(), nullable=False),
        sa.Column("version_removed", sa.Integer(), nullable=True),
    )
    op.create_index("ix_store_units_repo", "store_repository_units", ["repository_id", "version_removed"])
    with op.batch_alter_table("store_repository_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("units_digest", sa.String(80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("store_repository_versions", schema=None) as batch_op:
        batch_op.drop_column("units_digest")
    op.drop_index("ix_store_units_repo", table_name="store_repository_units")
    op.drop_table("store_repository_units")
    op.drop_table("store_units")
