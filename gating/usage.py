"""Usage counters in SQL. Every change is ONE atomic statement: no read-then-write, so no
concurrency can push an account past its cap (PostgreSQL and SQLite alike)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Text, bindparam, case, cast, func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from gating.models import UsageCounter, UsageRequest
from tiergate.db import DriverStatement

_KEY = ("account_id", "feature_id", "period_start")


def _insert(session: Session) -> Any:
    # Both dialects' INSERT support ON CONFLICT DO UPDATE ... WHERE and RETURNING.
    dialect = session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert(UsageCounter)


_ADD: dict[tuple[str, bool], Any] = {}


def _connection(target: Session | Connection) -> Connection:
    return target if isinstance(target, Connection) else target.connection()


def _add_statement(dialect_name: str, capped: bool) -> Any:
    """The counting upsert, built once per dialect (building it costs more than running it)."""
    key = (dialect_name, capped)
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
    target: Session | Connection | Engine,
    account_id: str,
    feature_id: str,
    period_start: datetime,
    quantity: int,
    cap: int | None,
    now: datetime,
) -> int | None:
    """Add `quantity` if the result stays within `cap` (None: no cap); the new total, or None
    when denied (then nothing was written). Given an Engine (PostgreSQL), the count is
    committed on its own at once: one round trip, the counter's row lock released with it."""
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
    capped = cap is not None
    if isinstance(target, Engine):
        statement = _ADD_COMMITTED.get(capped)
        if statement is None:
            statement = _ADD_COMMITTED[capped] = DriverStatement(
                _add_statement("postgresql", capped)
            )
        row = statement.first(target, params)
        return None if row is None else row[0]
    conn = _connection(target)
    return conn.execute(_add_statement(conn.dialect.name, capped), params).scalar_one_or_none()


_ADD_COMMITTED: dict[bool, DriverStatement] = {}


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
_USED_COMMITTED = DriverStatement(_USED)


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
    row = _USED_COMMITTED.first(engine, params)
    return 0 if row is None else row[0]


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
                status_code=0,  # 0: answer not stored yet ({"counted": total} once counted)
                response={},
                created_at=bindparam("now"),
            )
            .on_conflict_do_nothing(index_elements=["account_id", "idempotency_key"])
            .returning(requests.c.id)
        )
    return stmt


_COUNT_AND_CLAIM: dict[bool, DriverStatement] = {}


def _count_and_claim_statement(capped: bool) -> DriverStatement:
    """PostgreSQL: count the units unless the idempotency key is known, and claim the key with
    the count's outcome, in one statement (so one commit releases the counter's row lock).

    WITH added AS (INSERT INTO usage_counters ... SELECT ... WHERE NOT EXISTS (the key)
                   ON CONFLICT (...) DO UPDATE SET used = used + n WHERE used + n <= cap
                   RETURNING used),
         claim AS (INSERT INTO usage_requests (..., response = {"counted": added.used})
                   RETURNING id)
    SELECT (SELECT id FROM claim), (SELECT used FROM added)

    A known key counts nothing (NOT EXISTS) and its claim fails on the unique index, which
    aborts the whole statement; so does a concurrent request with the same key, which cannot
    see the other's uncommitted claim and may count first: then nothing of it stands either.
    """
    stmt = _COUNT_AND_CLAIM.get(capped)
    if stmt is not None:
        return stmt
    counters, requests = UsageCounter.__table__, UsageRequest.__table__
    columns = counters.c
    known = (
        select(requests.c.id)
        .where(
            requests.c.account_id == bindparam("account_id"),
            requests.c.idempotency_key == bindparam("key"),
        )
        .exists()
    )
    row = select(
        cast(bindparam("account_id"), columns.account_id.type),
        cast(bindparam("feature_id"), columns.feature_id.type),
        cast(bindparam("period_start", type_=columns.period_start.type), columns.period_start.type),
        cast(bindparam("quantity"), columns.used.type),
        cast(bindparam("now", type_=columns.updated_at.type), columns.updated_at.type),
    ).where(~known)
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
    counted = select(added.c.used).scalar_subquery()
    # Counted below the point where the answer would carry an offer (the nudge threshold, or
    # the limit): the answer is known here, so it is stored with the claim and nothing follows.
    # Otherwise the claim keeps {"counted": total} and the answer (with its offer) follows.
    limit = cast(bindparam("limit"), BigInteger)
    plain = counted < cast(bindparam("answer_below"), BigInteger)
    answer = func.json_build_object(
        "allowed", True,
        "feature", cast(bindparam("feature_id"), Text),
        "limit", limit,
        "used", counted,
        "remaining", case((limit.is_not(None), func.greatest(limit - counted, 0))),
        "reason", None,
        "message", None,
        "nudge", False,
        "offer", None,
    )  # fmt: skip
    claim = (
        postgresql.insert(requests)
        .values(
            account_id=bindparam("account_id"),
            idempotency_key=bindparam("key"),
            request_hash=bindparam("request_hash"),
            status_code=case((plain, 200), else_=0),
            response=cast(
                case((plain, answer), else_=func.json_build_object("counted", counted)),
                requests.c.response.type,
            ),
            created_at=bindparam("now"),
        )
        .returning(requests.c.id)
        .cte("claim")
    )
    stmt = _COUNT_AND_CLAIM[capped] = DriverStatement(
        select(select(claim.c.id).scalar_subquery(), select(added.c.used).scalar_subquery())
    )
    return stmt


def count_and_claim(
    engine: Engine,
    *,
    account_id: str,
    key: str,
    request_hash: str,
    feature_id: str,
    period_start: datetime,
    quantity: int,
    cap: int | None,
    now: datetime,
    limit: int | None,
    answer_below: int,
) -> tuple[int, int | None]:
    """PostgreSQL, committed on its own: (claim id, new total) in one statement; a total of
    None: the cap said no, nothing counted (the claim records the denial). Raises
    IntegrityError, having written nothing, when the key is known or claimed concurrently.

    A new total below `answer_below` is a plain allowed answer (no nudge, no offer): it is
    stored with the claim as the request's answer (`limit` and `remaining` from `limit`)."""
    params = {
        "account_id": account_id,
        "key": key,
        "request_hash": request_hash,
        "feature_id": feature_id,
        "period_start": period_start,
        "quantity": quantity,
        "cap": cap,
        "now": now,
        "limit": limit,
        "answer_below": answer_below,
    }
    claim_id, total = _count_and_claim_statement(cap is not None).first(engine, params)
    return int(claim_id), total
