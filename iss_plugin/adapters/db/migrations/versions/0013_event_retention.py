"""event retention: processed_events.at index (the pruning and the Events page read by age) and
pruned_event_counts (what retention removed, so /metrics' event counters never go down)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 07:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("processed_events") as batch:
        batch.create_index("ix_processed_events_at", ["at"], unique=False)
    op.create_table(
        "pruned_event_counts",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", "outcome"),
    )


def downgrade() -> None:
    op.drop_table("pruned_event_counts")
    with op.batch_alter_table("processed_events") as batch:
        batch.drop_index("ix_processed_events_at")
