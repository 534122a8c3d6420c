"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

import uuid

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tiergate.db import Base, import_models, make_engine
from tiergate.migrate import upgrade


def _fresh_database(database_url: str, tmp_path) -> tuple[str, callable]:
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'migrated.sqlite3'}", lambda: None
    name = f"tiergate_migr_{uuid.uuid4().hex[:8]}"
    admin = create_engine(make_url(database_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    return url, drop


def test_upgrade_to_head_matches_the_models(database_url, tmp_path):
    url, drop = _fresh_database(database_url, tmp_path)
    try:
        upgrade(url)
        import_models()
        engine = make_engine(url)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        engine.dispose()
        assert diff == [], f"models and migrations differ; add a migration: {diff}"
    finally:
        drop()


def test_upgrade_to_head_gives_sqlite_tables_the_same_id_rule_as_the_models(tmp_path):
    """On SQLite, the tables whose ids are never given twice (AUTOINCREMENT: an override's
    id, which API callers remove it by) are the same after the migrations as in a database
    created from the models. compare_metadata does not look at this."""

    def never_reused(url: str) -> set[str]:
        engine = make_engine(url)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
            names = {name for name, sql in rows if "AUTOINCREMENT" in (sql or "").upper()}
        engine.dispose()
        return names

    migrated = f"sqlite:///{tmp_path / 'migrated.sqlite3'}"
    upgrade(migrated)
    created = f"sqlite:///{tmp_path / 'created.sqlite3'}"
    import_models()
    engine = make_engine(created)
    Base.metadata.create_all(engine)
    engine.dispose()
    assert "overrides" in never_reused(created)
    assert never_reused(migrated) == never_reused(created)


def test_upgrade_is_repeatable(database_url, tmp_path):
    url, drop = _fresh_database(database_url, tmp_path)
    try:
        upgrade(url)
        upgrade(url)  # already at head: a no-op, not an error
    finally:
        drop()


def test_0007_recomputes_catalog_hashes_with_the_feature_order(database_url, tmp_path):
    """A version published before 0007 (its hash ignored the order of features) matches the
    same catalog afterwards: publishing it again stays a no-op."""
    import hashlib
    import json
    from datetime import UTC, datetime
    from pathlib import Path

    from sqlalchemy import JSON, column, insert, select, table
    from sqlalchemy.orm import Session

    from tiers import store
    from tiers.loader import load_catalog_text

    url, drop = _fresh_database(database_url, tmp_path)
    try:
        upgrade(url, "0006")
        catalog = load_catalog_text(
            (Path(__file__).parents[2] / "examples" / "catalog.yaml").read_text()
        )
        document = catalog.to_document()
        old = hashlib.sha256(
            json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
        versions = table(
            "catalog_versions",
            column("version"),
            column("content_hash"),
            column("source"),
            column("document", JSON()),
            column("author"),
            column("note"),
            column("published_at"),
        )
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(
                insert(versions).values(
                    version=1, content_hash=old, source="...", document=document, author="a",
                    note="before 0007", published_at=datetime(2026, 11, 1, tzinfo=UTC),
                )
            )  # fmt: skip
        upgrade(url)
        with engine.connect() as conn:
            stored = conn.execute(select(versions.c.content_hash)).scalar_one()
        assert stored == store.content_hash(catalog) != old
        import_models()
        with Session(engine) as session:
            again = store.publish(
                session, catalog, source="...", author="a", note="deploy",
                now=datetime(2026, 12, 1, tzinfo=UTC),
            )  # fmt: skip
            assert not again.created and again.version.version == 1
        engine.dispose()
    finally:
        drop()
