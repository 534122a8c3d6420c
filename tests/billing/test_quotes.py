"""Quotes: Stripe's amounts for each kind of change, in integer arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing.proration import add_interval
from billing.provider import Discount, SubscriptionState
from billing.quotes import change_quote, next_period_end, renewal_quote, start_quote
from tests.billing.conftest import PERIOD_END, PERIOD_START
from tests.billing.test_provider_contract import HALFWAY, PRO, PRO_YEAR, SEATS, STARTER

CURRENT = SubscriptionState(STARTER, (), "active", PERIOD_START, PERIOD_END)


@pytest.mark.parametrize(
    ("start", "interval", "expected"),
    [
        (datetime(2026, 1, 31, tzinfo=UTC), "month", datetime(2026, 2, 28, tzinfo=UTC)),
        (datetime(2028, 1, 31, tzinfo=UTC), "month", datetime(2028, 2, 29, tzinfo=UTC)),
        (datetime(2026, 12, 15, tzinfo=UTC), "month", datetime(2027, 1, 15, tzinfo=UTC)),
        (datetime(2028, 2, 29, tzinfo=UTC), "year", datetime(2029, 2, 28, tzinfo=UTC)),
    ],
)
def test_periods_end_on_the_same_day_clamped_to_the_month(start, interval, expected) -> None:  # type: ignore[no-untyped-def]
    assert add_interval(start, interval) == expected


def test_an_unknown_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="'week'"):
        add_interval(PERIOD_START, "week")


def test_an_upgrade_halfway_credits_half_the_old_price_and_charges_half_the_new() -> None:
    quote = change_quote(CURRENT, PRO, (), (), HALFWAY, None)
    assert [line.amount for line in quote.lines] == [-450, 1450]
    assert quote.amount_due == 1000


def test_an_unchanged_item_is_not_prorated() -> None:
    current = SubscriptionState(STARTER, (SEATS,), "active", PERIOD_START, PERIOD_END)
    quote = change_quote(current, PRO, (SEATS,), (), HALFWAY, None)
    assert {line.item_id for line in quote.lines} == {"pro", "starter"}


def test_a_promotion_discounts_only_the_plans_charge() -> None:
    quote = start_quote(PRO_YEAR, (SEATS,), (), PERIOD_START, 0, Discount("p", percent_off=20))
    assert quote.amount_due == 29000 - 5800 + 2500


def test_an_amount_off_promotion_never_makes_the_charge_negative() -> None:
    quote = start_quote(STARTER, (), (), PERIOD_START, 0, Discount("p", amount_off=5000))
    assert quote.amount_due == 0


def test_a_net_credit_is_never_charged_as_a_negative_amount() -> None:
    current = SubscriptionState(PRO, (), "active", PERIOD_START, PERIOD_END)
    assert change_quote(current, STARTER, (), (), HALFWAY, None).amount_due == 0


def test_a_renewal_invoices_the_scheduled_plan() -> None:
    current = SubscriptionState(
        PRO, (SEATS,), "active", PERIOD_START, PERIOD_END, next_plan=STARTER, next_addons=()
    )
    quote = renewal_quote(current, None)
    assert quote.amount_due == 900
    assert quote.period_start == PERIOD_END


def test_a_currency_change_is_refused() -> None:
    euro = SubscriptionState(STARTER, (), "active", PERIOD_START, PERIOD_END)
    with pytest.raises(ValueError, match="currency"):
        change_quote(
            euro, PRO.__class__(PRO.kind, "pro", "Pro", "month", "eur", 2700), (), (), HALFWAY, None
        )


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ((2027, 1, 31), (2027, 2, 28), (2027, 3, 31)),  # the 31st survives a short February
        ((2027, 2, 28), (2027, 3, 31), (2027, 4, 30)),
        ((2027, 3, 28), (2027, 4, 28), (2027, 5, 28)),
        ((2026, 10, 31), (2026, 11, 14), (2026, 12, 14)),  # after a trial the anchor moves
    ],
)
def test_renewals_keep_the_billing_anchor_day(start, end, expected) -> None:  # type: ignore[no-untyped-def]
    def at(ymd: tuple[int, int, int]) -> datetime:
        return datetime(*ymd, 12, 0, tzinfo=UTC)

    assert next_period_end(at(start), at(end), "month") == at(expected)


def test_the_first_renewal_after_a_trial_is_anchored_on_the_trials_end() -> None:
    """A 30-day trial from March 31 ends on April 30: the first paid month runs to May 30 (as
    Stripe bills it), not to May 31 as if the trial had been a month billed on the 31st."""
    start, end = datetime(2027, 3, 31, tzinfo=UTC), datetime(2027, 4, 30, tzinfo=UTC)
    trial = SubscriptionState(PRO, (), "trialing", start, end, trial_end=end)
    first = renewal_quote(trial, None)
    assert (first.period_start, first.period_end) == (end, datetime(2027, 5, 30, tzinfo=UTC))
    paid = SubscriptionState(PRO, (), "active", end, first.period_end, trial_end=end)
    assert renewal_quote(paid, None).period_end == datetime(2027, 6, 30, tzinfo=UTC)
