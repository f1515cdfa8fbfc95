"""users.session_generation: a counter carried in every dashboard session cookie and bumped when
the user is disabled or its password is changed, so cookies issued before stay refused after a
re-enable or with the new password (existing users start at 0)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 06:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("session_generation", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_generation")
