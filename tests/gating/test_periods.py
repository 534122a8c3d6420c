"""Usage periods: calendar month/day in UTC, the billing-period anchor, gauges never reset."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing.quotes import next_period_end
from gating.periods import GAUGE_PERIOD, add_months, billing_bounds, current_period
from tiers.model import Feature, FeatureKind, ResetPeriod


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


MONTHLY = Feature("api_calls", "API calls", FeatureKind.COUNTER, resets=ResetPeriod.MONTH)
DAILY = Feature("exports", "Exports", FeatureKind.COUNTER, resets=ResetPeriod.DAY)
BILLING = Feature("runs", "Runs", FeatureKind.COUNTER, resets=ResetPeriod.BILLING_PERIOD)
GAUGE = Feature("projects", "Projects", FeatureKind.GAUGE)


def test_monthly_counter_period_is_the_calendar_month_in_utc():
    assert current_period(MONTHLY, at(2026, 11, 30, 23, 59), None) == (
        at(2026, 11, 1),
        at(2026, 12, 1),
    )
    assert current_period(MONTHLY, at(2026, 12, 31, 23, 59), None)[1] == at(2027, 1, 1)


def test_daily_counter_period_is_the_utc_day():
    assert current_period(DAILY, at(2026, 11, 15, 0, 0), None) == (
        at(2026, 11, 15),
        at(2026, 11, 16),
    )


def test_gauges_use_one_period_that_never_resets():
    assert current_period(GAUGE, at(2030, 1, 1), None) == (GAUGE_PERIOD, None)


def test_billing_period_counter_follows_the_subscription_period():
    anchor = (at(2026, 11, 10, 8), at(2026, 12, 10, 8), "month")
    assert current_period(BILLING, at(2026, 11, 20), anchor) == (anchor[0], anchor[1])


def test_billing_period_without_subscription_falls_back_to_the_calendar_month():
    assert current_period(BILLING, at(2026, 11, 20), None) == (at(2026, 11, 1), at(2026, 12, 1))


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (at(2027, 1, 15), (at(2026, 12, 31), at(2027, 1, 31))),
        (at(2027, 2, 28, 12), (at(2027, 2, 28), at(2027, 3, 31))),
        (at(2027, 3, 1), (at(2027, 2, 28), at(2027, 3, 31))),
        (at(2027, 5, 30), (at(2027, 4, 30), at(2027, 5, 31))),
    ],
)
def test_billing_period_rolls_forward_from_a_day_31_anchor_clamping_like_stripe(now, expected):
    anchor = (at(2026, 10, 31), at(2026, 11, 30), "month")
    assert billing_bounds(now, anchor) == expected


def test_yearly_billing_period_rolls_forward_by_years():
    anchor = (at(2024, 2, 29), at(2025, 2, 28), "year")
    assert billing_bounds(at(2026, 6, 1), anchor) == (at(2026, 2, 28), at(2027, 2, 28))


def test_add_months_clamps_to_the_last_day():
    assert add_months(at(2026, 1, 31), 1) == at(2026, 2, 28)
    assert add_months(at(2028, 1, 31), 1) == at(2028, 2, 29)
    assert add_months(at(2026, 11, 15), 14) == at(2028, 1, 15)


def test_period_end_is_when_the_count_resets_even_across_a_year_boundary():
    assert current_period(DAILY, at(2026, 12, 31, 23, 59, 59), None) == (
        at(2026, 12, 31),
        at(2027, 1, 1),
    )


def test_stored_billing_period_is_used_as_is_until_it_ends():
    anchor = (at(2026, 10, 31), at(2026, 11, 30))
    assert billing_bounds(at(2026, 11, 29, 23, 59), anchor) == anchor


def test_anchor_without_interval_is_inferred_from_the_period_length():
    monthly = (at(2026, 10, 31), at(2026, 11, 30))
    yearly = (at(2025, 11, 10), at(2026, 11, 10))
    assert billing_bounds(at(2027, 1, 15), monthly) == (at(2026, 12, 31), at(2027, 1, 31))
    assert billing_bounds(at(2027, 1, 15), yearly) == (at(2026, 11, 10), at(2027, 11, 10))


def test_a_clamped_stored_start_does_not_lose_the_day_31_anchor():
    # Stored period Feb 28 -> Mar 31 of a subscription anchored on the 31st.
    anchor = (at(2027, 2, 28), at(2027, 3, 31), "month")
    assert billing_bounds(at(2027, 5, 1), anchor) == (at(2027, 4, 30), at(2027, 5, 31))
    assert billing_bounds(at(2027, 5, 31), anchor) == (at(2027, 5, 31), at(2027, 6, 30))


def test_rolling_forward_keeps_the_time_of_day_of_the_anchor():
    anchor = (at(2026, 10, 10, 8, 30), at(2026, 11, 10, 8, 30), "month")
    assert billing_bounds(at(2027, 3, 10, 8, 29), anchor) == (
        at(2027, 2, 10, 8, 30),
        at(2027, 3, 10, 8, 30),
    )
    assert billing_bounds(at(2027, 3, 10, 8, 30), anchor)[0] == at(2027, 3, 10, 8, 30)


@pytest.mark.parametrize("months_later", range(0, 40))
def test_rolled_period_always_contains_now_and_is_one_interval_long(months_later):
    anchor = (at(2026, 1, 31, 5), at(2026, 2, 28, 5), "month")
    now = add_months(at(2026, 3, 15), months_later)
    start, end = billing_bounds(now, anchor)
    assert start <= now < end
    assert end == add_months(start, 1, 31)


def test_rolled_period_after_an_irregular_stored_period_is_anchored_on_its_end():
    # A 14-day trial Nov 20 -> Dec 4 stored as the period: billing renews it to Dec 4 -> Jan 4
    # (billing/quotes.py next_period_end), so the gate counts from Dec 4, not from Nov 20.
    trial = (at(2026, 11, 20), at(2026, 12, 4), "month")
    assert billing_bounds(at(2026, 12, 5), trial) == (at(2026, 12, 4), at(2027, 1, 4))
    assert billing_bounds(at(2027, 2, 10), trial) == (at(2027, 2, 4), at(2027, 3, 4))
    # A trial ending on the 31st anchors there, clamped in short months like a regular period.
    to_31st = (at(2027, 1, 17), at(2027, 1, 31), "month")
    assert billing_bounds(at(2027, 3, 5), to_31st) == (at(2027, 2, 28), at(2027, 3, 31))


@pytest.mark.parametrize(
    "stored",
    [
        (at(2026, 11, 20), at(2026, 12, 4)),  # a trial
        (at(2027, 1, 17), at(2027, 1, 31)),  # a trial ending on the 31st
        (at(2027, 1, 31), at(2027, 2, 28)),  # regular, clamped end
        (at(2027, 2, 28), at(2027, 3, 31)),  # regular, clamped start
        (at(2026, 10, 10, 8, 30), at(2026, 11, 10, 8, 30)),
    ],
)
def test_rolled_periods_follow_the_renewals_billing_records(stored):
    start, end = stored
    for _ in range(14):  # each rolled period is the one billing would record next
        following = next_period_end(start, end, "month")
        assert billing_bounds(end, (*stored, "month")) == (end, following)
        start, end = end, following


def test_a_trial_as_long_as_a_clamped_month_still_anchors_on_its_end():
    """30 days from January 29 end on February 28, which is also where a month from the 29th
    would end. Billing renews out of a trial on the trial's end (billing/quotes.py
    renewal_quote: Feb 28 -> Mar 28), so the gate's billing-period count must roll over on the
    28th as well, not on the 29th as if January 29 were the anchor."""
    trial = (at(2027, 1, 29), at(2027, 2, 28), "month", at(2027, 2, 28))
    assert billing_bounds(at(2027, 3, 1), trial) == (at(2027, 2, 28), at(2027, 3, 28))
    assert billing_bounds(at(2027, 3, 28), trial) == (at(2027, 3, 28), at(2027, 4, 28))
    # The same dates as a regular period (no trial) keep the anchor on the 29th.
    regular = (at(2027, 1, 29), at(2027, 2, 28), "month", None)
    assert billing_bounds(at(2027, 3, 1), regular) == (at(2027, 2, 28), at(2027, 3, 29))
    # A trial ending inside the stored period (a trial extended by hand) is not its anchor.
    extended = (at(2027, 1, 29), at(2027, 2, 28), "month", at(2027, 2, 20))
    assert billing_bounds(at(2027, 3, 1), extended) == (at(2027, 2, 28), at(2027, 3, 29))
