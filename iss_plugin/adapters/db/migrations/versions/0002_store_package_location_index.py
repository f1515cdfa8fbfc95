"""store_packages.location index: the local store checks file-name clashes of new packages only

Revision ID: 0002_store_location
Revises: 0001
Create Date: 2026-11-21 23:40:00
"""

from alembic import op

revision = "0002_store_location"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("store_packages", schema=None) as batch_op:
        batch_op.create_index("ix_store_packages_location", ["location"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("store_packages", schema=None) as batch_op:
        batch_op.drop_index("ix_store_packages_location")
