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


def test_upgrade_is_repeatable(database_url, tmp_path):
    url, drop = _fresh_database(database_url, tmp_path)
    try:
        upgrade(url)
        upgrade(url)  # already at head: a no-op, not an error
    finally:
        drop()
