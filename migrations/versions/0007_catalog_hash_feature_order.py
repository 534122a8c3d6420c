"""catalog_versions.content_hash: recomputed with the order of features (the pricing table's
row order) in it, so publishing a catalog published before stays a no-op

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 23:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from tiers.model import Catalog
    from tiers.store import content_hash

    versions = sa.table(
        "catalog_versions",
        sa.column("version", sa.Integer()),
        sa.column("document", sa.JSON()),
        sa.column("content_hash", sa.String(64)),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(versions.c.version, versions.c.document)).all()
    for version, document in rows:
        digest = content_hash(Catalog.from_document(document))
        bind.execute(
            versions.update().where(versions.c.version == version).values(content_hash=digest)
        )


def downgrade() -> None:
    """The earlier hash ignored the order of features; it is not restored (a publish of
    identical content then makes one new version, nothing else changes)."""
