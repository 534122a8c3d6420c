"""account_addons.catalog_version: the catalog version an add-on's price comes from

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 16:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("account_addons") as batch:
        batch.add_column(sa.Column("catalog_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("account_addons") as batch:
        batch.drop_column("catalog_version")
