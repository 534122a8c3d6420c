"""Statements run on the driver (tiergate.db.DriverStatement): the same rows and the same
errors as through SQLAlchemy's Connection.execute."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import DateTime, Integer, String, bindparam, event, func, literal, select, text
from sqlalchemy.exc import IntegrityError

from tiergate.db import DriverStatement, make_engine


@pytest.fixture
def engine(postgres_url):
    engine = make_engine(postgres_url)
    yield engine
    engine.dispose()


def test_a_statement_with_its_own_constants_returns_the_first_row(engine) -> None:
    statement = DriverStatement(
        select(
            func.json_build_object("id", bindparam("id", type_=String), "kind", literal("counted")),
            bindparam("n", type_=Integer) + 1,
        )
    )
    row = statement.first(engine, {"id": "acme", "n": 41})
    assert row == ({"id": "acme", "kind": "counted"}, 42)
    assert statement.first(engine, {"id": "again", "n": 0})[1] == 1  # compiled once, reused


def test_a_naive_datetime_is_refused_before_anything_is_sent(engine) -> None:
    statement = DriverStatement(select(bindparam("at", type_=DateTime(timezone=True))))
    with pytest.raises(ValueError, match="naive datetime"):
        statement.first(engine, {"at": datetime(2026, 12, 2)})
    assert statement.first(engine, {"at": datetime(2026, 12, 2, tzinfo=UTC)}) is not None


def test_a_unique_violation_is_sqlalchemys_integrity_error_and_the_pool_stays_usable(
    engine,
) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS driver_statement_keys"))
        conn.execute(text("CREATE TABLE driver_statement_keys (k text primary key)"))
    try:
        insert = DriverStatement(
            text("INSERT INTO driver_statement_keys (k) VALUES (:k) RETURNING k")
        )
        assert insert.first(engine, {"k": "a"}) == ("a",)
        with pytest.raises(IntegrityError):
            insert.first(engine, {"k": "a"})
        assert insert.first(engine, {"k": "b"}) == ("b",)  # committed on its own, each
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT k FROM driver_statement_keys ORDER BY k")).all()
            assert [r.k for r in rows] == ["a", "b"]
            # the connection the pool lends afterwards is in its usual (transactional) mode
            assert conn.connection.driver_connection.autocommit is False
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE driver_statement_keys"))


def test_with_statement_listeners_or_on_sqlite_it_runs_through_sqlalchemy(database_url) -> None:
    """Listeners (tracing, tests counting statements) see it; SQLite has no driver path."""
    engine = make_engine(database_url)
    seen: list[str] = []

    def listener(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", listener)
    try:
        row = DriverStatement(select(bindparam("n", type_=Integer) * 2)).first(engine, {"n": 21})
    finally:
        event.remove(engine, "before_cursor_execute", listener)
        engine.dispose()
    assert row == (42,)
    assert len(seen) == 1
