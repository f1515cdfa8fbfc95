"""destinations.online and destinations.url: a destination the source pushes bundles to (phase 3)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 19:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("destinations") as batch:
        batch.add_column(sa.Column("online", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("url", sa.String(length=1024), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("destinations") as batch:
        batch.drop_column("url")
        batch.drop_column("online")
