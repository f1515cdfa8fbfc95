"""subscriptions.rejections, last_rejection: refusals in a row, and the last one's reason (reconcile backs off)

Revision ID: 0004_subscription_rejections
Revises: 0003_announced_version
Create Date: 2026-11-22 02:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_subscription_rejections"
down_revision = "0003_announced_version"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rejections", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("last_rejection", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_column("last_rejection")
        batch_op.drop_column("rejections")
