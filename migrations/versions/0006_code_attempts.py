"""code_attempts: refused promotion codes, to limit how many an account may try

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 18:00:00
"""

import sqlalchemy as sa
from alembic import op

import tiergate.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "code_attempts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.String(128), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("typed", sa.String(64), nullable=False),
        sa.Column("at", tiergate.db.UTCDateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_code_attempts_account_id", "code_attempts", ["account_id"])
    op.create_index("ix_code_attempts_at", "code_attempts", ["at"])


def downgrade() -> None:
    op.drop_index("ix_code_attempts_at", table_name="code_attempts")
    op.drop_index("ix_code_attempts_account_id", table_name="code_attempts")
    op.drop_table("code_attempts")
