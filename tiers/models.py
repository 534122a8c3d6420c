"""Published catalog versions: immutable, content-addressed, audited."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tiergate.db import Base, UTCDateTime


class CatalogVersion(Base):
    __tablename__ = "catalog_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # sha256 of the document; a rollback publishes an older version's content again
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(Text)  # the YAML as reviewed, comments and all
    document: Mapped[dict[str, Any]] = mapped_column(JSON)  # canonical form (Catalog.to_document)
    author: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text, default="")
    published_at: Mapped[datetime] = mapped_column(UTCDateTime)
