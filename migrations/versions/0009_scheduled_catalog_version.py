"""subscriptions.scheduled_catalog_version: a change scheduled for the period end keeps the
price of the catalog it was scheduled under

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 03:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scheduled_catalog_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_column("scheduled_catalog_version")
