"""Shared fixtures: app -> client, a database per run, a fixed clock, the demo catalog.

The suite runs on SQLite by default. With TIERGATE_TEST_DATABASE_URL pointing at a PostgreSQL
server it creates a private database for the run (so parallel runs never collide) and drops it
at the end. Tests marked `postgres` skip on SQLite, and fail instead of skipping when
TIERGATE_REQUIRE_POSTGRES=1 (CI's PostgreSQL run), so that run cannot pass by skipping them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from tiergate import create_app
from tiergate.clock import FixedClock
from tiergate.config import PROJECT_ROOT
from tiergate.db import Base, Database, get_db, import_models
from tiers import store
from tiers.loader import load_catalog_file

DEMO_CATALOG = PROJECT_ROOT / "examples" / "catalog.yaml"
NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)


def _is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = os.environ.get("TIERGATE_TEST_DATABASE_URL")
    if os.environ.get("TIERGATE_REQUIRE_POSTGRES") == "1" and not (base and _is_postgres(base)):
        pytest.exit(
            "TIERGATE_REQUIRE_POSTGRES=1 but TIERGATE_TEST_DATABASE_URL is not PostgreSQL", 2
        )
    if not base:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'tiergate-test.sqlite3'}"
        return
    name = f"tiergate_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin_url = make_url(base).set(drivername="postgresql+psycopg")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def schema(database_url: str) -> Iterator[Database]:
    """The schema, created once per run; every test starts from empty tables."""
    import_models()
    database = Database(database_url)
    Base.metadata.create_all(database.engine)
    yield database
    database.engine.dispose()


def wipe(database: Database) -> None:
    with database.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    store.clear_cache()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def app(schema: Database, database_url: str, clock: FixedClock) -> Iterator:
    wipe(schema)
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test-secret-key-not-for-production",
            "CLOCK": clock,
            "BASE_URL": "http://localhost",
        }
    )
    yield app
    get_db(app).engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def session(app) -> Iterator[Session]:
    """A session on the app's database, committed at the end of the `with` by the caller."""
    with get_db(app).sessionmaker() as s:
        yield s


@pytest.fixture
def demo_catalog(app, clock) -> store.Published:
    """The demo catalog (examples/catalog.yaml), published as the newest version."""
    catalog, source = load_catalog_file(DEMO_CATALOG)
    with get_db(app).session() as s:
        result = store.publish(
            s, catalog, source=source, author="test", note="demo", now=clock.now()
        )
        version = result.version.version
    return store.Published(version, catalog)


@pytest.fixture
def postgres_url(database_url: str) -> str:
    """The run's PostgreSQL URL; tests that need real concurrency depend on this fixture."""
    if not _is_postgres(database_url):
        if os.environ.get("TIERGATE_REQUIRE_POSTGRES") == "1":
            pytest.fail("this test needs PostgreSQL and TIERGATE_REQUIRE_POSTGRES=1")
        pytest.skip("needs PostgreSQL: set TIERGATE_TEST_DATABASE_URL=postgresql://...")
    return database_url
