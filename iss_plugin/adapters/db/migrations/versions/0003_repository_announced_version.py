"""repositories.announced_version: the newest version an iss.repository.changed.v1 event announced

Revision ID: 0003_announced_version
Revises: 0002_store_location
Create Date: 2026-11-21 23:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_announced_version"
down_revision = "0002_store_location"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("repositories", schema=None) as batch_op:
        batch_op.add_column(sa.Column("announced_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("repositories", schema=None) as batch_op:
        batch_op.drop_column("announced_version")
