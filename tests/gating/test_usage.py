"""Usage counters: every change is one atomic SQL statement within the cap."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import event, func, select

from gating import usage
from gating.models import UsageCounter
from gating.periods import GAUGE_PERIOD
from tests.factories import make_account

MONTH = datetime(2026, 11, 1, tzinfo=UTC)
DECEMBER = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def s(session, demo_catalog, clock):
    make_account(session, "acme", now=clock.now())
    return session


def add(s, clock, quantity, cap, period=MONTH, feature="api_calls"):
    return usage.add(s, "acme", feature, period, quantity, cap, clock.now())


def rows(s) -> int:
    return s.scalar(select(func.count()).select_from(UsageCounter))


def statements_of(s, action) -> list[str]:
    seen: list[str] = []
    engine = s.get_bind()

    def listener(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", listener)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    return seen


def test_add_counts_up_to_the_cap_and_returns_the_new_total(s, clock):
    assert add(s, clock, 60, cap=100) == 60
    assert add(s, clock, 40, cap=100) == 100
    assert usage.used(s, "acme", "api_calls", MONTH) == 100


def test_add_past_the_cap_is_denied_and_changes_nothing(s, clock):
    add(s, clock, 99, cap=100)
    assert add(s, clock, 2, cap=100) is None
    assert usage.used(s, "acme", "api_calls", MONTH) == 99
    assert add(s, clock, 1, cap=100) == 100


def test_a_first_use_larger_than_the_cap_writes_no_row(s, clock):
    assert add(s, clock, 101, cap=100) is None
    assert rows(s) == 0


def test_zero_cap_denies_everything(s, clock):
    assert add(s, clock, 1, cap=0) is None
    assert rows(s) == 0


def test_without_a_cap_add_always_counts(s, clock):
    assert add(s, clock, 10**12, cap=None) == 10**12
    assert add(s, clock, 10**12, cap=None) == 2 * 10**12


def test_check_and_consume_is_one_insert_on_conflict_statement(s, clock):
    add(s, clock, 1, cap=100)
    sql = statements_of(s, lambda: add(s, clock, 1, cap=100))
    assert len(sql) == 1
    assert "ON CONFLICT" in sql[0] and "RETURNING" in sql[0] and "WHERE" in sql[0]


def test_each_period_and_feature_counts_on_its_own(s, clock):
    add(s, clock, 5, cap=None)
    add(s, clock, 7, cap=None, period=DECEMBER)
    add(s, clock, 3, cap=None, feature="automation_runs")
    assert usage.used(s, "acme", "api_calls", MONTH) == 5
    assert usage.used(s, "acme", "api_calls", DECEMBER) == 7
    assert usage.used_many(s, "acme", {"api_calls": DECEMBER, "automation_runs": MONTH}) == {
        "api_calls": 7,
        "automation_runs": 3,
    }


def test_used_many_reads_every_counter_in_one_query(s, clock):
    add(s, clock, 5, cap=None)
    periods = {"api_calls": MONTH, "projects": GAUGE_PERIOD, "seats": GAUGE_PERIOD}
    sql = statements_of(s, lambda: usage.used_many(s, "acme", periods))
    assert len(sql) == 1
    assert usage.used_many(s, "acme", periods) == {"api_calls": 5, "projects": 0, "seats": 0}
    assert usage.used_many(s, "acme", {}) == {}


def test_set_value_sets_a_gauge_within_the_cap(s, clock):
    assert usage.set_value(s, "acme", "projects", GAUGE_PERIOD, 3, 3, clock.now()) == 3
    assert usage.set_value(s, "acme", "projects", GAUGE_PERIOD, 1, 3, clock.now()) == 1


def test_set_value_above_the_cap_is_denied_unchanged(s, clock):
    usage.set_value(s, "acme", "projects", GAUGE_PERIOD, 2, 3, clock.now())
    assert usage.set_value(s, "acme", "projects", GAUGE_PERIOD, 4, 3, clock.now()) is None
    assert usage.used(s, "acme", "projects", GAUGE_PERIOD) == 2


def test_set_value_above_the_cap_with_no_row_writes_nothing(s, clock):
    assert usage.set_value(s, "acme", "projects", GAUGE_PERIOD, 4, 3, clock.now()) is None
    assert rows(s) == 0


def test_a_gauge_already_over_the_cap_may_be_lowered_but_not_raised(s, clock):
    usage.set_value(s, "acme", "projects", GAUGE_PERIOD, 8, None, clock.now())
    assert usage.set_value(s, "acme", "projects", GAUGE_PERIOD, 6, 3, clock.now()) == 6
    assert usage.set_value(s, "acme", "projects", GAUGE_PERIOD, 7, 3, clock.now()) is None
    assert usage.used(s, "acme", "projects", GAUGE_PERIOD) == 6


def test_release_gives_units_back_and_never_goes_below_zero(s, clock):
    usage.set_value(s, "acme", "projects", GAUGE_PERIOD, 3, None, clock.now())
    assert usage.release(s, "acme", "projects", GAUGE_PERIOD, 2, clock.now()) == 1
    assert usage.release(s, "acme", "projects", GAUGE_PERIOD, 5, clock.now()) == 0
    assert usage.used(s, "acme", "projects", GAUGE_PERIOD) == 0


def test_release_without_a_counter_is_zero_and_writes_nothing(s, clock):
    assert usage.release(s, "acme", "projects", GAUGE_PERIOD, 1, clock.now()) == 0
    assert rows(s) == 0


def test_release_is_one_statement(s, clock):
    usage.set_value(s, "acme", "projects", GAUGE_PERIOD, 3, None, clock.now())
    sql = statements_of(
        s, lambda: usage.release(s, "acme", "projects", GAUGE_PERIOD, 1, clock.now())
    )
    assert len(sql) == 1 and sql[0].lstrip().upper().startswith("UPDATE")


def test_updates_record_when_the_counter_last_changed(s, clock):
    add(s, clock, 1, cap=None)
    later = clock.advance(hours=2)
    add(s, clock, 1, cap=None)
    assert s.scalar(select(UsageCounter.updated_at)) == later
