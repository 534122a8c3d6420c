"""Database wiring: one engine and session factory per app, a session per request."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app, g
from psycopg.pq import TransactionStatus
from sqlalchemy import DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def make_engine(url: str, echo: bool = False) -> Engine:
    """An engine with sane pool settings for SQLite and PostgreSQL."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite"):
        engine = create_engine(
            url, echo=echo, connect_args={"timeout": 30, "check_same_thread": False}
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    engine = create_engine(url, echo=echo, pool_size=10, max_overflow=20, pool_recycle=1800)
    _ping_when_idle(engine)
    return engine


IDLE_PING_SECONDS = 10.0


def _ping_when_idle(engine: Engine) -> None:
    """Test a pooled connection before use only when it sat idle for a while.

    SQLAlchemy's pool_pre_ping costs a round trip on every checkout, a large share of a gate
    check. Under load connections return within milliseconds, and a connection that died while
    idle (database restarted, firewall timeout) is the common case, so ping only those. A
    connection that dies mid-use still fails that one request (answered 503, see errors.py), and
    SQLAlchemy then drops every connection in the pool that was opened before the failure.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["tiergate.idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("tiergate.idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return
        try:
            cursor = dbapi_conn.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
            dbapi_conn.rollback()
        except Exception as exc:
            raise DisconnectionError(f"pooled connection is gone: {exc}") from exc


class DriverStatement:
    """A Core statement compiled once for PostgreSQL and run straight on the driver (psycopg),
    autocommitted: one round trip, committed on its own, nothing held after it.

    For the gate's hottest statements (a consume's count, a check's counter read), SQLAlchemy's
    `Connection.execute` cost about as much CPU as the round trip itself: the cache key of the
    statement's tree computed on every call, the isolation level set and reset on the pooled
    connection, the result wrapped. Here the SQL and its constant parameters are made once;
    each call checks a connection out of the engine's pool (its checkout events run, such as
    the idle ping), sends the statement, and returns the first row. Parameters go to psycopg as
    given, without SQLAlchemy's type processing: plain values only (str, int, None, aware
    datetimes; no JSON documents).

    Errors are SQLAlchemy's, as from `Connection.execute` (a unique violation is an
    `IntegrityError`; a connection refused, or lost mid-statement, is raised with
    `connection_invalidated`, which the API answers 503, and a lost one makes the pool replace
    every connection opened before it, as after a database restart). While the engine has
    statement listeners (tracing, a test counting statements) the statement runs through
    `Connection.execute`, so that they see it.
    """

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._compiled: tuple[str, dict[str, Any]] | None = None

    def first(self, engine: Engine, params: Mapping[str, Any]) -> Any:
        """The statement's first row (a tuple), or None."""
        listened = engine.dispatch.before_cursor_execute or engine.dispatch.after_cursor_execute
        if listened or engine.dialect.name != "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                return conn.execute(self.statement, dict(params)).first()
        sql, constants = self._compiled or self._compile(engine)
        values = {**constants, **params}
        for value in params.values():
            if type(value) is datetime and value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")  # as UTCDateTime
        try:
            raw = engine.raw_connection()
        except engine.dialect.loaded_dbapi.Error as exc:  # the database refused a new one
            # wrapped as Connection.execute wraps it (a refused connection answers 503)
            Connection._handle_dbapi_exception_noconnection(exc, engine.dialect, engine)
        try:
            driver: Any = raw.driver_connection
            driver.autocommit = True
            try:
                return driver.execute(sql, values).fetchone()
            finally:
                if not driver.closed and driver.info.transaction_status is TransactionStatus.IDLE:
                    driver.autocommit = False  # as the pool lends it (a lost one is dropped)
        except engine.dialect.loaded_dbapi.Error as exc:
            lost = engine.dialect.is_disconnect(exc, raw, None)
            if lost:  # as Connection.execute: this one, and every one opened before it
                engine.pool._invalidate(raw, exc)
            raise DBAPIError.instance(
                sql,
                values,
                exc,
                engine.dialect.loaded_dbapi.Error,
                connection_invalidated=lost,
                dialect=engine.dialect,
            ) from exc
        finally:
            raw.close()

    def _compile(self, engine: Engine) -> tuple[str, dict[str, Any]]:
        compiled = self.statement.compile(dialect=engine.dialect)
        # the values SQLAlchemy bound itself (literals in the statement: JSON keys, constants)
        constants = {
            name: bind.effective_value
            for name, bind in compiled.binds.items()
            if bind.value is not None or bind.callable is not None
        }
        self._compiled = (compiled.string, constants)
        return self._compiled


class Database:
    """The engine and session factory of one app; stored in app.extensions['tiergate.db']."""

    def __init__(self, url: str, echo: bool = False) -> None:
        self.url = url
        self.engine = make_engine(url, echo)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error.

        Not a `session.begin()` block: a billing flow commits its intent before it calls a
        remote payment processor, and the session must stay usable after that commit."""
        with self.sessionmaker() as session:
            try:
                yield session
            except BaseException:
                session.rollback()
                raise
            session.commit()

    def create_all(self) -> None:
        import_models()
        Base.metadata.create_all(self.engine)


def import_models() -> None:
    """Import every models module so Base.metadata knows all tables."""
    import billing.models  # noqa: F401
    import gating.models  # noqa: F401
    import tiers.models  # noqa: F401


def init_app(app: Flask) -> None:
    app.extensions["tiergate.db"] = Database(app.config["DATABASE_URL"], app.config["SQL_ECHO"])
    app.teardown_appcontext(_close_session)


def get_db(app: Flask | None = None) -> Database:
    return (app or current_app).extensions["tiergate.db"]


def get_session() -> Session:
    """The request's session (created on first use, closed at teardown)."""
    if "db_session" not in g:
        g.db_session = get_db().sessionmaker()
    return g.db_session


def _close_session(exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is None:
        return
    if not session.in_transaction() and not session.identity_map:
        return  # it holds no connection and no objects (a gate answer from the cache)
    if exc is not None:
        session.rollback()
    session.close()
