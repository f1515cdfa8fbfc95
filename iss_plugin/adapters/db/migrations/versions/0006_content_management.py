"""destination-side content management: Red Hat repository sets, sync URL overrides, product descriptions

organizations.cdn_url: where the organization's Red Hat content is synchronized from (an export location)
products.sync_url_override: a base URL every repository of the product syncs from (+ its label)
products.description: for the products CSV (hammer csv products parity)
repository_sets: the Red Hat repositories that arrived in imported bundles, offered for enabling

Revision ID: 0006
Revises: 0004_subscription_rejections (re-chained after 0005 at merge)
Create Date: 2026-12-06 18:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cdn_url", sa.Text(), nullable=True))
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sync_url_override", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("description", sa.Text(), nullable=True))
    op.create_table(
        "repository_sets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "organization_id", sa.Integer(), sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("product_label", sa.String(128), nullable=False),
        sa.Column("content_id", sa.String(64), nullable=False),
        sa.Column("repository_label", sa.String(128), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(32), nullable=False),
        sa.Column("relative_path", sa.Text(), nullable=False),
        sa.Column("backend_key", sa.String(400), nullable=False),
        sa.Column("bundle_id", sa.String(64), nullable=True),
        sa.Column("bundle_path", sa.Text(), nullable=True),
        sa.Column("imported", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("organization_id", "product_label", "repository_label"),
    )
    # Red Hat repositories already imported (pinned by an imported content view version) are offered too.
    op.execute(
        """
        INSERT INTO repository_sets (organization_id, product_label, content_id, repository_label, name,
                                     content_type, relative_path, backend_key)
        SELECT p.organization_id, p.label, p.content_id, r.label, r.name, r.content_type,
               'repos/' || p.label || '/' || r.label, r.backend_key
        FROM repositories r JOIN products p ON p.id = r.product_id
        WHERE p.redhat AND p.content_id IS NOT NULL AND EXISTS (
            SELECT 1 FROM content_view_version_repositories pin
            JOIN content_view_versions v ON v.id = pin.content_view_version_id
            WHERE pin.repository_id = r.id AND v.imported_from IS NOT NULL)
        """
    )


def downgrade() -> None:
    op.drop_table("repository_sets")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("description")
        batch_op.drop_column("sync_url_override")
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_column("cdn_url")
