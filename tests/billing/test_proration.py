"""billing/proration.py: Stripe's proration formula in integers, line by line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.proration import (
    Discount,
    Item,
    LineKind,
    add_interval,
    prorate,
    prorate_change,
    prorate_interval_switch,
    round_div,
    start_period,
)

START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)
HALFWAY = START + (END - START) / 2


def test_stripes_documented_example_halfway_from_10_to_20_usd_is_500_due():
    result = prorate_change(
        [Item("basic", 1000, name="Basic")],
        [Item("premium", 2000, name="Premium")],
        START,
        END,
        HALFWAY,
    )
    assert [line.amount for line in result.lines] == [-500, 1000]
    assert [line.kind for line in result.lines] == [LineKind.CREDIT, LineKind.DEBIT]
    assert result.total == 500
    assert result.lines[0].description == "Unused time on Basic after 16 Nov 2026"
    assert result.lines[1].description == "Remaining time on Premium after 16 Nov 2026"
    assert (result.period_start, result.period_end) == (START, END)


def test_change_at_period_start_costs_the_full_difference():
    result = prorate_change([Item("starter", 900)], [Item("pro", 2900)], START, END, START)
    assert result.total == 2000


def test_change_at_period_end_costs_nothing():
    result = prorate_change([Item("starter", 900)], [Item("pro", 2900)], START, END, END)
    assert result.total == 0
    assert [line.amount for line in result.lines] == [0, 0]


def test_downgrade_gives_a_credit_as_a_negative_total_and_nothing_due():
    result = prorate_change([Item("pro", 2900)], [Item("starter", 900)], START, END, HALFWAY)
    assert result.total == -1000
    assert result.amount_due == 0


def test_unchanged_items_make_no_lines_and_changed_add_on_quantities_do():
    before = [Item("starter", 900), Item("seat_pack", 2500), Item("support", 4900)]
    after = [Item("pro", 2900), Item("seat_pack", 2500, quantity=2), Item("support", 4900)]
    result = prorate_change(before, after, START, END, HALFWAY)
    assert [(line.price_id, line.amount, line.quantity) for line in result.lines] == [
        ("starter", -450, 1),
        ("seat_pack", -1250, 1),
        ("seat_pack", 2500, 2),
        ("pro", 1450, 1),
    ]
    assert result.total == 2250


def test_each_line_rounds_half_away_from_zero():
    # One third of a 30-day period remains: 1000 / 3 = 333.33 -> 333; 2000 / 3 = 666.67 -> 667.
    end = START + timedelta(days=30)
    result = prorate_change([Item("a", 1000)], [Item("b", 2000)], START, end, end - timedelta(10))
    assert [line.amount for line in result.lines] == [-333, 667]
    assert round_div(5, 2) == 3
    assert round_div(-5, 2) == -3
    assert round_div(7, -2) == -4
    assert round_div(4, 3) == 1


def test_percent_promotion_discounts_the_debit_of_its_price_rounded_half_up():
    promo = Discount("launch", percent_off=25)
    result = prorate_change(
        [Item("starter", 900)], [Item("pro", 2900, discount=promo)], START, END, HALFWAY
    )
    # debit 1450, 25 % = 362.5 -> 363; the credit is never discounted.
    assert [(line.kind, line.amount) for line in result.lines] == [
        (LineKind.CREDIT, -450),
        (LineKind.DEBIT, 1450),
        (LineKind.DISCOUNT, -363),
    ]
    assert result.total == 637


def test_amount_off_promotion_is_capped_at_its_line():
    promo = Discount("big", amount_off=5000)
    result = prorate_change([Item("a", 900)], [Item("b", 2900, discount=promo)], START, END, END)
    assert [line.amount for line in result.lines] == [0, 0]


def test_interval_switch_credits_unused_month_and_charges_a_full_year_from_today():
    yearly_promo = Discount("yearly_launch", percent_off=20)
    before = [Item("starter", 900), Item("support", 4900)]
    after = [Item("pro", 29000, discount=yearly_promo), Item("support", 49000)]
    result = prorate_interval_switch(before, after, START, END, HALFWAY, "year")
    assert [(line.price_id, line.kind, line.amount) for line in result.lines] == [
        ("starter", LineKind.CREDIT, -450),
        ("support", LineKind.CREDIT, -2450),
        ("pro", LineKind.CHARGE, 29000),
        ("pro", LineKind.DISCOUNT, -5800),
        ("support", LineKind.CHARGE, 49000),
    ]
    assert result.period_start == HALFWAY
    assert result.period_end == datetime(2027, 11, 16, tzinfo=UTC)
    assert result.total == 69300


def test_start_period_charges_full_price_for_one_interval():
    result = start_period([Item("pro", 2900)], datetime(2027, 1, 31, tzinfo=UTC), "month")
    assert result.total == 2900
    assert result.period_end == datetime(2027, 2, 28, tzinfo=UTC)


def test_add_interval_clamps_to_the_end_of_short_months():
    assert add_interval(datetime(2028, 2, 29, tzinfo=UTC), "year") == datetime(
        2029, 2, 28, tzinfo=UTC
    )
    assert add_interval(datetime(2026, 12, 15, tzinfo=UTC), "month") == datetime(
        2027, 1, 15, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="unknown interval 'week'"):
        add_interval(START, "week")


def test_prorate_single_amount_matches_the_debit_line():
    assert prorate(2000, START, END, HALFWAY) == 1000


@pytest.mark.parametrize(
    ("before", "after", "start", "end", "at", "message"),
    [
        ([Item("a", 900)], [Item("b", 1000)], END, START, START, "must end after it starts"),
        ([Item("a", 900)], [Item("b", 1000)], START, END, END + timedelta(1), "outside the period"),
        ([Item("a", -1)], [Item("b", 1000)], START, END, START, "items_before\\[0\\].amount"),
        ([Item("a", 9.5)], [], START, END, START, "integer minor units, not float"),  # type: ignore[arg-type]
        ([], [Item("b", 10, quantity=0)], START, END, START, "quantity must be a positive"),
        ([], [Item("b", 10), Item("b", 20)], START, END, START, "appears twice"),
        ([], [Item("b", 10)], START.replace(tzinfo=None), END, START, "timezone-aware"),
        ([], [Item("b", 10, discount=Discount("x", 150))], START, END, START, "1..100"),
    ],
)
def test_bad_input_is_refused_with_what_and_where(before, after, start, end, at, message):
    with pytest.raises(ValueError, match=message):
        prorate_change(before, after, start, end, at)


# ---- properties -------------------------------------------------------------------------------

amounts = st.integers(min_value=0, max_value=10**9)
quantities = st.integers(min_value=1, max_value=1000)
seconds_in_period = st.integers(min_value=1, max_value=400 * 86400)


@st.composite
def changes(draw: st.DrawFn):
    length = draw(seconds_in_period)
    start = START
    end = start + timedelta(seconds=length)
    at = start + timedelta(seconds=draw(st.integers(min_value=0, max_value=length)))
    ids = ["tier", "addon_a", "addon_b"]
    before = [Item(i, draw(amounts), draw(quantities)) for i in ids if draw(st.booleans())]
    after = [Item(i, draw(amounts), draw(quantities)) for i in ids if draw(st.booleans())]
    return before, after, start, end, at


@given(changes())
def test_every_line_is_an_integer_no_larger_than_its_full_price(change):
    before, after, start, end, at = change
    full = {("old", i.price_id): i.total for i in before} | {
        ("new", i.price_id): i.total for i in after
    }
    for line in prorate_change(before, after, start, end, at).lines:
        assert type(line.amount) is int
        side = "old" if line.kind is LineKind.CREDIT else "new"
        assert abs(line.amount) <= full[(side, line.price_id)]


@given(changes())
def test_changed_at_period_start_the_total_is_new_minus_old(change):
    before, after, start, end, _ = change
    result = prorate_change(before, after, start, end, start)
    assert result.total == sum(i.total for i in after) - sum(i.total for i in before)


@given(changes(), st.integers(min_value=0, max_value=400 * 86400))
def test_lines_shrink_toward_zero_as_the_proration_date_moves_later(change, step):
    before, after, start, end, at = change
    later = min(end, at + timedelta(seconds=step))
    early = prorate_change(before, after, start, end, at).lines
    late = prorate_change(before, after, start, end, later).lines
    assert [line.price_id for line in early] == [line.price_id for line in late]
    for a, b in zip(early, late, strict=True):
        assert abs(b.amount) <= abs(a.amount)
        assert (a.amount >= 0) == (b.amount >= 0) or b.amount == 0
    # Each line is rounded on its own (as Stripe does), so the total is monotone up to one
    # minor unit per line.
    delta = sum(i.total for i in after) - sum(i.total for i in before)
    if delta >= 0:
        assert sum(b.amount for b in late) <= sum(a.amount for a in early) + len(early)


@given(st.integers(min_value=-(10**15), max_value=10**15), st.integers(1, 10**9))
def test_round_div_is_within_half_and_symmetric(n, d):
    q = round_div(n, d)
    assert abs(2 * (n - q * d)) <= d
    assert round_div(-n, d) == -q
