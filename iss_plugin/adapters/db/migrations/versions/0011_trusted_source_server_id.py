"""trusted_sources.server_id: the source's iss server id, which a destination's export request is
addressed to (iss.export.requested.<server id>); null: the trusted source's name

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 03:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trusted_sources") as batch:
        batch.add_column(sa.Column("server_id", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trusted_sources") as batch:
        batch.drop_column("server_id")
