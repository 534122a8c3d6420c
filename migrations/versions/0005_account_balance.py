"""accounts.balance: the customer's invoice balance (negative: credit), Stripe's convention

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 17:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("balance", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("balance_currency", sa.String(3), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("balance_currency")
        batch.drop_column("balance")
