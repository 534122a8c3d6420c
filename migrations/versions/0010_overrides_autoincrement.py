"""overrides.id is never given again: on SQLite the table is rebuilt with AUTOINCREMENT, so
removing the newest override and adding another gives the new one its own id (a retry or a
script removing the old id gets 404 and leaves the new override alone)

PostgreSQL's sequences never give an id twice: nothing to do there.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 03:20:00
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _sqlite() -> bool:
    return op.get_context().dialect.name == "sqlite"


def upgrade() -> None:
    """Copies every row with its id, the index and the reference to accounts; SQLite starts
    the table's sequence at the highest id kept."""
    if not _sqlite():
        return
    with op.batch_alter_table(
        "overrides", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ):
        pass


def downgrade() -> None:
    """Rebuilds the table as it was (its primary key unnamed: SQLite ignores the name)."""
    if not _sqlite():
        return
    with op.batch_alter_table(
        "overrides", recreate="always", table_kwargs={"sqlite_autoincrement": False}
    ):
        pass
