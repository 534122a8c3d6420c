"""The gate service: check, consume, gauges, idempotency, resets, and concurrency."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, func, select

from gating import service
from gating.models import UsageCounter, UsageRequest
from tests.factories import add_addon, make_account, set_usage
from tiergate.db import get_db
from tiergate.exceptions import Conflict, InvalidRequest, NotFound

SETTINGS = service.GateSettings(past_due_grace_days=7, base_url="http://localhost")


@pytest.fixture
def db(app, demo_catalog):
    return get_db(app)


def run(db, clock, fn, *args, **kwargs):
    with db.session() as s:
        return fn(s, clock, *args, settings=SETTINGS, **kwargs)


def counters(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(UsageCounter))


def test_consume_within_the_limit_counts_and_reports_remaining(db, clock):
    with db.session() as s:
        make_account(s, "acme", now=clock.now())
    d = run(db, clock, service.consume, "acme", "projects", 2)
    assert (d.allowed, d.used, d.limit, d.remaining) == (True, 2, 3, 1)


def test_consume_at_limit_is_denied_with_cheapest_sufficient_offer(db, clock):
    with db.session() as s:
        make_account(s, "acme", now=clock.now())
        set_usage(s, "acme", "projects", 3, now=clock.now())
    d = run(db, clock, service.consume, "acme", "projects", 1)
    assert (d.allowed, d.reason, d.used) == (False, "limit_reached", 3)
    assert d.offer["to"]["tier"] == "starter"
    assert "3 of 3 projects used" in d.message
    assert run(db, clock, service.check, "acme", "projects").used == 3  # nothing recorded


def test_boolean_feature_not_in_tier_is_denied_with_an_unlocking_offer(db, clock):
    with db.session() as s:
        make_account(s, "acme", now=clock.now(), tier="starter")
    d = run(db, clock, service.check, "acme", "sso")
    assert (d.allowed, d.reason, d.offer["to"]["tier"]) == (
        False,
        "feature_not_in_tier",
        "business",
    )


def test_check_records_nothing(db, clock):
    with db.session() as s:
        make_account(s, "acme", now=clock.now())
    d = run(db, clock, service.check, "acme", "api_calls", 10)
    assert d.allowed and d.used == 0
    assert counters(db) == 0


def test_crossing_the_nudge_threshold_is_allowed_with_a_nudge_offer(db, clock):
    with db.session() as s:
        make_account(s, "acme", now=clock.now(), tier="starter")
        set_usage(s, "acme", "projects", 7, now=clock.now())
    d = run(db, clock, service.consume, "acme", "projects", 1)
    assert d.allowed and d.nudge and d.offer["trigger"] == "nudge"


def test_overage_allowance_is_honoured_then_the_hard_cap_holds(db, clock):
    with db.session() as s:
        make_account(s, "acme", now=clock.now(), tier="pro")
    assert run(db, clock, service.consume, "acme", "api_calls", 104_999).allowed
    assert run(db, clock, service.consume, "acme", "api_calls", 1).allowed
    assert not run(db, clock, service.consume, "acme", "api_calls", 1).allowed


def test_addon_raises_the_limit(db, clock):
    with db.session() as s:
        make_account(s, "acme", now=clock.now(), tier="starter")
        add_addon(s, "acme", "seat_pack", now=clock.now())
    assert run(db, clock, service.consume, "acme", "seats", 10).allowed
    assert not run(db, clock, service.consume, "acme", "seats", 1).allowed


def test_unlimited_feature_always_counts(db, clock):
    with db.session() as s:
        make_account(s, "acme", now=clock.now(), tier="business")
    d = run(db, clock, service.consume, "acme", "projects", 10**9)
    assert d.allowed and d.limit is None and d.remaining is None


def test_monthly_counter_resets_at_the_calendar_month_boundary(db, clock):
    clock.set(datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC))
    with db.session() as s:
        make_account(s, "acme", now=clock.now())
    assert run(db, clock, service.consume, "acme", "api_calls", 1000).allowed
    assert not run(db, clock, service.consume, "acme", "api_calls", 1).allowed
    clock.advance(seconds=1)
    d = run(db, clock, service.consume, "acme", "api_calls", 1)
    assert d.allowed and d.used == 1


def test_billing_period_counter_resets_at_the_account_anchor(db, clock):
    start = datetime(2026, 11, 10, 8, tzinfo=UTC)
    with db.session() as s:
        make_account(s, "acme", now=clock.now(), tier="starter", period_start=start)
    assert run(db, clock, service.consume, "acme", "automation_runs", 1000).allowed
    assert not run(db, clock, service.consume, "acme", "automation_runs", 1).allowed
    clock.set(datetime(2026, 12, 10, 8, tzinfo=UTC))  # the next period starts
    assert run(db, clock, service.consume, "acme", "automation_runs", 1).used == 1


def test_gauges_never_reset(db, clock):
    with db.session() as s:
        make_account(s, "acme", now=clock.now())
    run(db, clock, service.consume, "acme", "projects", 3)
    clock.advance(days=400)
    assert not run(db, clock, service.consume, "acme", "projects", 1).allowed


def test_gauge_set_and_release_never_go_below_zero(db, clock):
    with db.session() as s:
        make_account(s, "acme", now=clock.now())
    assert run(db, clock, service.set_gauge, "acme", "projects", 2).used == 2
    assert not run(db, clock, service.set_gauge, "acme", "projects", 4).allowed
    assert run(db, clock, service.release, "acme", "projects", 5).used == 0
    assert run(db, clock, service.set_gauge, "acme", "projects", 0).used == 0


def test_gauge_above_a_new_lower_limit_can_only_go_down(db, clock):
    with db.session() as s:
        make_account(s, "acme", now=clock.now())
        set_usage(s, "acme", "projects", 8, now=clock.now())  # e.g. after a downgrade
    assert not run(db, clock, service.consume, "acme", "projects", 1).allowed
    assert run(db, clock, service.set_gauge, "acme", "projects", 6).used == 6
    assert not run(db, clock, service.set_gauge, "acme", "projects", 7).allowed


def test_idempotent_retry_returns_the_first_answer_and_counts_once(db, clock):
    with db.session() as s:
        make_account(s, "acme", now=clock.now())
    first = run(db, clock, service.consume, "acme", "api_calls", 5, "req-1")
    again = run(db, clock, service.consume, "acme", "api_calls", 5, "req-1")
    assert first == again
    assert run(db, clock, service.check, "acme", "api_calls").used == 5


def test_idempotency_key_reused_for_another_request_is_a_conflict(db, clock):
    with db.session() as s:
        make_account(s, "acme", now=clock.now())
    run(db, clock, service.consume, "acme", "api_calls", 5, "req-1")
    with pytest.raises(Conflict, match="different request"):
        run(db, clock, service.consume, "acme", "api_calls", 6, "req-1")
    assert run(db, clock, service.check, "acme", "api_calls").used == 5


@pytest.mark.parametrize(
    ("feature", "quantity", "error", "message"),
    [
        ("projects", 0, InvalidRequest, "quantity must be between 1"),
        ("projects", -1, InvalidRequest, "quantity must be between 1"),
        ("projects", 10**13, InvalidRequest, "quantity must be between 1"),
        ("projects", True, InvalidRequest, "whole number"),
        ("projects", 1.5, InvalidRequest, "whole number"),
        ("sso", 1, InvalidRequest, "boolean feature"),
        ("projets", 1, NotFound, "did you mean 'projects'"),
    ],
)
def test_bad_consume_input_is_refused_and_changes_nothing(
    db, clock, feature, quantity, error, message
):
    with db.session() as s:
        make_account(s, "acme", now=clock.now())
    with pytest.raises(error, match=message):
        run(db, clock, service.consume, "acme", feature, quantity, "k")
    assert counters(db) == 0
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(UsageRequest)) == 0


def test_unknown_account_is_not_found_with_how_to_create_it(db, clock):
    with pytest.raises(NotFound, match="PUT /v1/accounts/ghost"):
        run(db, clock, service.check, "ghost", "projects")


def test_entitlements_lists_every_feature_with_usage_and_reset(db, clock):
    with db.session() as s:
        make_account(s, "acme", now=clock.now(), tier="starter")
        set_usage(s, "acme", "projects", 4, now=clock.now())
    body = run(db, clock, service.entitlements, "acme")
    assert body["tier"] == {"id": "starter", "name": "Starter"}
    assert body["features"]["projects"]["used"] == 4
    assert body["features"]["projects"]["remaining"] == 6
    assert body["features"]["api_calls"]["resets_at"] == datetime(2026, 12, 1, tzinfo=UTC)
    assert body["features"]["sso"] == {
        "type": "boolean",
        "enabled": False,
        "limit": None,
        "used": None,
        "remaining": None,
        "resets_at": None,
        "nudge_at": None,
        "source": "tier",
    }


def test_boolean_check_stays_within_a_small_number_of_queries(db, clock):
    with db.session() as s:
        make_account(s, "acme", now=clock.now(), tier="business")
    run(db, clock, service.check, "acme", "sso")  # warm the catalog cache
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        assert run(db, clock, service.check, "acme", "sso").allowed
        run(db, clock, service.consume, "acme", "projects", 1)
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert len(statements) <= 4 + 5, statements


def _hammer(db, clock, threads: int, attempts: int, work) -> list:
    results: list = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(attempts):
            outcome = work(n, i)
            with lock:
                results.append(outcome)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return results


@pytest.mark.parametrize("backend", ["postgres", "any"])
def test_concurrent_consumers_end_at_exactly_the_limit(request, db, clock, backend):
    if backend == "postgres":
        request.getfixturevalue("postgres_url")
    with db.session() as s:
        make_account(s, "acme", now=clock.now(), tier="starter")  # 1,000 runs per period

    def work(n, i):
        return run(db, clock, service.consume, "acme", "automation_runs", 7).allowed

    results = _hammer(db, clock, threads=16, attempts=12, work=work)
    assert sum(results) == 1000 // 7  # 142 grants of 7 = 994; one more would pass 1,000
    assert run(db, clock, service.check, "acme", "automation_runs").used == 142 * 7


def test_concurrent_retries_of_one_idempotency_key_count_once(db, clock, postgres_url):
    with db.session() as s:
        make_account(s, "acme", now=clock.now(), tier="starter")

    def work(n, i):
        return run(db, clock, service.consume, "acme", "api_calls", 3, f"key-{i}").used

    results = _hammer(db, clock, threads=12, attempts=10, work=work)
    assert len(results) == 120
    assert run(db, clock, service.check, "acme", "api_calls").used == 3 * 10


def test_concurrent_gauge_consume_and_release_stay_consistent(db, clock, postgres_url):
    with db.session() as s:
        make_account(s, "acme", now=clock.now(), tier="pro")  # 50 projects

    def work(n, i):
        if n % 2 == 0:
            return ("add", run(db, clock, service.consume, "acme", "projects", 1).allowed)
        return ("release", run(db, clock, service.release, "acme", "projects", 1).used >= 0)

    results = _hammer(db, clock, threads=16, attempts=20, work=work)
    final = run(db, clock, service.check, "acme", "projects").used
    added = sum(1 for kind, ok in results if kind == "add" and ok)
    assert 0 <= final <= 50
    assert final <= added
    assert all(ok for kind, ok in results if kind == "release")
