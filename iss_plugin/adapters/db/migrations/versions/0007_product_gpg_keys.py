"""product GPG keys: the ASCII-armored public key a product's packages are signed with

products.gpg_key: the armored key (one or more certificates), checked by gpg and rpm on input
products.gpg_key_fingerprints: its primary key fingerprints, space-separated, sorted (compared on import)

Revision ID: 0007
Revises: 0006 (re-chained at merge)
Create Date: 2026-12-06 19:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gpg_key", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("gpg_key_fingerprints", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("gpg_key_fingerprints")
        batch_op.drop_column("gpg_key")
