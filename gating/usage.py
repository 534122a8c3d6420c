"""Usage counters in SQL. Every change is ONE atomic statement: no read-then-write, so no
concurrency can push an account past its cap (PostgreSQL and SQLite alike)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, cast, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from gating.models import UsageCounter, UsageRequest

_KEY = ("account_id", "feature_id", "period_start")


def _insert(session: Session) -> Any:
    # Both dialects' INSERT support ON CONFLICT DO UPDATE ... WHERE and RETURNING.
    dialect = session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert(UsageCounter)


_ADD: dict[tuple[str, bool], Any] = {}


def _add_statement(session: Session, capped: bool) -> Any:
    """The counting upsert, built once per dialect (building it costs more than running it)."""
    key = (session.get_bind().dialect.name, capped)
    stmt = _ADD.get(key)
    if stmt is None:
        table = UsageCounter.__table__  # Core, not the ORM's bulk-insert path: much cheaper
        dialect = postgresql if key[0] == "postgresql" else sqlite
        insert = dialect.insert(table).values(
            account_id=bindparam("account_id"),
            feature_id=bindparam("feature_id"),
            period_start=bindparam("period_start"),
            used=bindparam("quantity"),
            updated_at=bindparam("now"),
        )
        total = table.c.used + insert.excluded.used
        stmt = _ADD[key] = insert.on_conflict_do_update(
            index_elements=list(_KEY),
            set_={"used": total, "updated_at": insert.excluded.updated_at},
            where=(total <= bindparam("cap")) if capped else None,
        ).returning(table.c.used)
    return stmt


def add(
    session: Session,
    account_id: str,
    feature_id: str,
    period_start: datetime,
    quantity: int,
    cap: int | None,
    now: datetime,
) -> int | None:
    """Add `quantity` if the result stays within `cap` (None: no cap); the new total, or None
    when denied (then nothing was written)."""
    if cap is not None and quantity > cap:
        return None
    params = {
        "account_id": account_id,
        "feature_id": feature_id,
        "period_start": period_start,
        "quantity": quantity,
        "now": now,
        "cap": cap,
    }
    stmt = _add_statement(session, cap is not None)
    return session.connection().execute(stmt, params).scalar_one_or_none()


def set_value(
    session: Session,
    account_id: str,
    feature_id: str,
    period_start: datetime,
    value: int,
    cap: int | None,
    now: datetime,
) -> int | None:
    """Set a gauge to `value`: always allowed downwards, upwards only within `cap`."""
    if cap is not None and value > cap:
        # Only lowering is allowed above the cap: update only where value <= current.
        stmt = (
            update(UsageCounter)
            .where(*_where(account_id, feature_id, period_start), UsageCounter.used >= value)
            .values(used=value, updated_at=now)
            .returning(UsageCounter.used)
        )
        return session.execute(stmt).scalar_one_or_none()
    stmt = _insert(session).values(
        account_id=account_id,
        feature_id=feature_id,
        period_start=period_start,
        used=value,
        updated_at=now,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=list(_KEY),
        set_={"used": stmt.excluded.used, "updated_at": stmt.excluded.updated_at},
    ).returning(UsageCounter.used)
    return session.execute(stmt).scalar_one()


def release(
    session: Session,
    account_id: str,
    feature_id: str,
    period_start: datetime,
    quantity: int,
    now: datetime,
) -> int:
    """Give units back; usage never goes below zero. The new total."""
    stmt = (
        update(UsageCounter)
        .where(*_where(account_id, feature_id, period_start))
        .values(
            used=case((UsageCounter.used > quantity, UsageCounter.used - quantity), else_=0),
            updated_at=now,
        )
        .returning(UsageCounter.used)
    )
    result = session.execute(stmt).scalar_one_or_none()
    return 0 if result is None else result


_USED = select(UsageCounter.used).where(
    UsageCounter.account_id == bindparam("account_id"),
    UsageCounter.feature_id == bindparam("feature_id"),
    UsageCounter.period_start == bindparam("period_start"),
)


def used(session: Session, account_id: str, feature_id: str, period_start: datetime) -> int:
    """Units used of one feature in one period (0 when nothing was counted yet).

    Outside a transaction (a gate check whose account state came from the cache) the committed
    value is read on an autocommit connection: one round trip, no BEGIN/COMMIT. Inside one, the
    session's own view (its uncommitted writes included) is read.
    """
    params = {"account_id": account_id, "feature_id": feature_id, "period_start": period_start}
    engine = session.get_bind()
    if session.in_transaction() or not isinstance(engine, Engine):
        return session.execute(_USED, params).scalar() or 0
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return conn.execute(_USED, params).scalar() or 0


def used_many(session: Session, account_id: str, periods: dict[str, datetime]) -> dict[str, int]:
    """Usage of several features, each in its own period, in one query."""
    if not periods:
        return {}
    rows = session.execute(
        select(UsageCounter.feature_id, UsageCounter.used).where(
            UsageCounter.account_id == account_id,
            tuple_(UsageCounter.feature_id, UsageCounter.period_start).in_(list(periods.items())),
        )
    )
    found = {fid: n for fid, n in rows}
    return {fid: found.get(fid, 0) for fid in periods}


def _where(account_id: str, feature_id: str, period_start: datetime) -> tuple[Any, ...]:
    return (
        UsageCounter.account_id == account_id,
        UsageCounter.feature_id == feature_id,
        UsageCounter.period_start == period_start,
    )


_CLAIM: dict[str, Any] = {}


def claim_statement(dialect_name: str) -> Any:
    """INSERT an idempotency key unless it exists, RETURNING its id; built once per dialect."""
    stmt = _CLAIM.get(dialect_name)
    if stmt is None:
        dialect = postgresql if dialect_name == "postgresql" else sqlite
        requests = UsageRequest.__table__  # Core: cheaper than the ORM's insert
        stmt = _CLAIM[dialect_name] = (
            dialect.insert(requests)
            .values(
                account_id=bindparam("account_id"),
                idempotency_key=bindparam("key"),
                request_hash=bindparam("request_hash"),
                status_code=0,  # 0: answer not stored yet (it is, before the transaction ends)
                response={},
                created_at=bindparam("now"),
            )
            .on_conflict_do_nothing(index_elements=["account_id", "idempotency_key"])
            .returning(requests.c.id)
        )
    return stmt


_CLAIM_AND_ADD: dict[bool, Any] = {}


def _claim_and_add_statement(capped: bool) -> Any:
    """PostgreSQL: claim an idempotency key and, only if it was ours, count the units, in one
    statement (one round trip less on the consume path, which holds the counter's row lock).

    WITH claim AS (INSERT INTO usage_requests ... ON CONFLICT DO NOTHING RETURNING id),
         added AS (INSERT INTO usage_counters ... SELECT ... FROM claim
                   ON CONFLICT (...) DO UPDATE SET used = used + n WHERE used + n <= cap
                   RETURNING used)
    SELECT (SELECT id FROM claim), (SELECT used FROM added)
    """
    stmt = _CLAIM_AND_ADD.get(capped)
    if stmt is not None:
        return stmt
    counters = UsageCounter.__table__
    claim = claim_statement("postgresql").cte("claim")
    columns = counters.c
    row = select(
        cast(bindparam("account_id"), columns.account_id.type),
        cast(bindparam("feature_id"), columns.feature_id.type),
        cast(bindparam("period_start", type_=columns.period_start.type), columns.period_start.type),
        cast(bindparam("quantity"), columns.used.type),
        cast(bindparam("now", type_=columns.updated_at.type), columns.updated_at.type),
    ).select_from(claim)
    insert = postgresql.insert(counters).from_select(
        ["account_id", "feature_id", "period_start", "used", "updated_at"], row
    )
    total = columns.used + insert.excluded.used
    added = (
        insert.on_conflict_do_update(
            index_elements=list(_KEY),
            set_={"used": total, "updated_at": insert.excluded.updated_at},
            where=(total <= bindparam("cap")) if capped else None,
        )
        .returning(columns.used)
        .cte("added")
    )
    stmt = _CLAIM_AND_ADD[capped] = select(
        select(claim.c.id).scalar_subquery(), select(added.c.used).scalar_subquery()
    )
    return stmt


def claim_and_add(
    session: Session,
    *,
    account_id: str,
    key: str,
    request_hash: str,
    feature_id: str,
    period_start: datetime,
    quantity: int,
    cap: int | None,
    now: datetime,
) -> tuple[int | None, int | None] | None:
    """(claim id, new total) in one statement on PostgreSQL; None elsewhere (the caller claims
    and counts separately). A claim id of None: the key was taken, nothing counted; a total of
    None with a claim id: the cap would be exceeded, nothing counted."""
    if session.get_bind().dialect.name != "postgresql" or (cap is not None and quantity > cap):
        return None
    params = {
        "account_id": account_id,
        "key": key,
        "request_hash": request_hash,
        "feature_id": feature_id,
        "period_start": period_start,
        "quantity": quantity,
        "cap": cap,
        "now": now,
    }
    claim_id, total = (
        session.connection().execute(_claim_and_add_statement(cap is not None), params).one()
    )
    return claim_id, total
