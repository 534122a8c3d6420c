"""catalog_versions.content_hash is no longer unique: publishing an older version's content
again (a rollback) makes a new version

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 03:00:00
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("catalog_versions", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_catalog_versions_content_hash"), type_="unique")
        batch_op.create_index(
            batch_op.f("ix_catalog_versions_content_hash"), ["content_hash"], unique=False
        )


def downgrade() -> None:
    """Fails when a rollback made two versions with one content (unique again)."""
    with op.batch_alter_table("catalog_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_versions_content_hash"))
        batch_op.create_unique_constraint(
            op.f("uq_catalog_versions_content_hash"), ["content_hash"]
        )
