"""The contract every billing provider keeps, run over each provider (see conftest.PROVIDERS).

Amounts are Stripe's: Starter 9.00 -> Pro 29.00 a month, changed exactly halfway through a
30-day period, credits 4.50 and charges 14.50: 10.00 due.
"""

from __future__ import annotations

import inspect
from datetime import UTC, datetime

import pytest

from billing.provider import (
    BillingProvider,
    ChangeRequest,
    Discount,
    ItemKind,
    OneTimeRequest,
    Outcome,
    Price,
    QuoteMismatch,
    RenewRequest,
    ScheduleRequest,
    StartRequest,
    SubscriptionState,
    TrialRequest,
)
from tests.billing.conftest import PERIOD_END, PERIOD_START, DecliningBilling, Harness

HALFWAY = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)  # the fixed clock's now
STARTER = Price(ItemKind.TIER, "starter", "Starter", "month", "usd", 900)
STARTER_YEAR = Price(ItemKind.TIER, "starter", "Starter", "year", "usd", 9000)
PRO = Price(ItemKind.TIER, "pro", "Pro", "month", "usd", 2900)
PRO_YEAR = Price(ItemKind.TIER, "pro", "Pro", "year", "usd", 29000)
SEATS = Price(ItemKind.ADDON, "seat_pack", "Seat pack", "month", "usd", 2500)
ONBOARDING = Price(ItemKind.ADDON, "onboarding", "Onboarding package", None, "usd", 29900)
URL = "http://localhost/billing"


def start(
    h: Harness,
    plan: Price = STARTER,
    *,
    expected: int | None = None,
    trial: int = 0,
    discount: Discount | None = None,
    key: str = "chg_start",
) -> SubscriptionState:
    request = StartRequest(
        key,
        h.customer("acme"),
        plan,
        (),
        (),
        PERIOD_START,
        trial,
        discount,
        plan.amount if expected is None else expected,
        URL,
        URL,
    )
    result = h.finish(h.provider.start_subscription(request))
    assert result.outcome is Outcome.DONE and result.subscription is not None
    return result.subscription


def change(
    h: Harness,
    current: SubscriptionState,
    plan: Price,
    expected: int,
    addons: tuple[Price, ...] = (),
) -> tuple[SubscriptionState, int]:
    request = ChangeRequest(
        "chg_change", h.customer("acme"), current, plan, addons, (), HALFWAY, None, expected, URL
    )
    result = h.finish(h.provider.change_subscription(request))
    assert result.outcome is Outcome.DONE
    assert result.subscription is not None and result.charge is not None
    return result.subscription, result.charge.amount_paid


@pytest.mark.parametrize("provider", [DecliningBilling()], ids=["declining double"])
def test_the_declining_test_double_implements_the_interface(provider: object) -> None:
    assert_implements(provider)


def test_provider_implements_the_billing_provider_interface(provider_harness: Harness) -> None:
    assert_implements(provider_harness.provider)


def assert_implements(provider: object) -> None:
    assert isinstance(provider, BillingProvider)
    assert provider.name in ("manual", "stripe")
    for name, member in inspect.getmembers(BillingProvider, inspect.isfunction):
        if name.startswith("_"):
            continue
        expected = inspect.signature(member)
        actual = inspect.signature(getattr(type(provider), name))
        assert list(actual.parameters) == list(expected.parameters), name


def test_a_first_subscription_charges_the_full_period_from_the_start(
    provider_harness: Harness,
) -> None:
    request = StartRequest(
        "chg_a",
        provider_harness.customer("acme"),
        STARTER,
        (),
        (),
        PERIOD_START,
        0,
        None,
        900,
        URL,
        URL,
    )
    result = provider_harness.finish(provider_harness.provider.start_subscription(request))
    assert result.subscription is not None and result.charge is not None
    assert result.charge.amount_paid == 900 and result.charge.status == "paid"
    assert result.subscription.plan == STARTER
    assert result.subscription.status == "active"
    assert (result.subscription.period_start, result.subscription.period_end) == (
        PERIOD_START,
        PERIOD_END,
    )


def test_a_trial_charges_nothing_and_ends_after_its_days(provider_harness: Harness) -> None:
    state = start(provider_harness, PRO, expected=0, trial=14)
    assert state.status == "trialing"
    assert state.trial_end == datetime(2026, 11, 14, 12, 0, tzinfo=UTC)


def test_an_extended_trial_ends_later_and_its_first_charge_moves_with_it(
    provider_harness: Harness,
) -> None:
    provider = provider_harness.provider
    customer = provider_harness.customer("acme")
    current = start(provider_harness, PRO, expected=0, trial=20)  # to Nov 20, past halfway
    later = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    extended = provider.extend_trial(TrialRequest("chg_t", customer, current, later))
    assert (extended.status, extended.plan) == ("trialing", PRO)
    assert extended.trial_end == extended.period_end == later
    renewed = provider.renew(RenewRequest("chg_r", customer, extended, None))
    assert renewed.subscription is not None and renewed.charge is not None
    assert (renewed.subscription.status, renewed.charge.amount_paid) == ("active", 2900)
    assert renewed.subscription.period_start == later


def test_a_first_subscription_with_a_wrong_quote_is_refused(provider_harness: Harness) -> None:
    with pytest.raises(QuoteMismatch, match=r"not the \$8\.99 you were shown"):
        start(provider_harness, STARTER, expected=899)


def test_a_promotion_reduces_the_first_charge(provider_harness: Harness) -> None:
    discount = Discount("yearly_launch", percent_off=20)
    request = StartRequest(
        "chg_p",
        provider_harness.customer("acme"),
        PRO_YEAR,
        (),
        (),
        PERIOD_START,
        0,
        discount,
        23200,
        URL,
        URL,
    )
    result = provider_harness.finish(provider_harness.provider.start_subscription(request))
    assert result.charge is not None and result.charge.amount_paid == 23200


def test_an_upgrade_halfway_charges_the_prorated_difference_and_keeps_the_period(
    provider_harness: Harness,
) -> None:
    state, charged = change(provider_harness, start(provider_harness), PRO, 1000)
    assert charged == 1000
    assert state.plan == PRO
    assert (state.period_start, state.period_end) == (PERIOD_START, PERIOD_END)


def test_an_upgrade_with_a_wrong_quote_is_refused_before_anything_changes(
    provider_harness: Harness,
) -> None:
    current = start(provider_harness)
    with pytest.raises(QuoteMismatch):
        change(provider_harness, current, PRO, 999)


def test_switching_to_yearly_credits_unused_time_and_starts_a_yearly_period(
    provider_harness: Harness,
) -> None:
    state, charged = change(provider_harness, start(provider_harness), STARTER_YEAR, 9000 - 450)
    assert charged == 8550
    assert state.plan == STARTER_YEAR
    assert state.period_start == HALFWAY
    assert state.period_end == datetime(2027, 11, 15, 12, 0, tzinfo=UTC)


def test_adding_a_recurring_addon_is_prorated_for_the_rest_of_the_period(
    provider_harness: Harness,
) -> None:
    current = start(provider_harness)
    state, charged = change(provider_harness, current, STARTER, 1250, addons=(SEATS,))
    assert charged == 1250
    assert state.addons == (SEATS,)


def test_a_scheduled_downgrade_waits_for_the_period_end_then_renews_on_the_lower_tier(
    provider_harness: Harness,
) -> None:
    provider = provider_harness.provider
    customer = provider_harness.customer("acme")
    current = start(provider_harness, PRO, expected=2900)
    scheduled = provider.schedule(ScheduleRequest("chg_s", customer, current, STARTER, None, False))
    assert scheduled.plan == PRO and scheduled.next_plan == STARTER
    renewed = provider.renew(RenewRequest("chg_r", customer, scheduled, None))
    assert renewed.subscription is not None and renewed.charge is not None
    assert renewed.subscription.plan == STARTER and renewed.subscription.next_plan is None
    assert renewed.charge.amount_paid == 900
    assert renewed.subscription.period_start == PERIOD_END
    assert renewed.subscription.period_end == datetime(2026, 12, 31, 12, 0, tzinfo=UTC)


def test_a_cancellation_at_period_end_ends_the_subscription_without_a_charge(
    provider_harness: Harness,
) -> None:
    provider = provider_harness.provider
    customer = provider_harness.customer("acme")
    current = start(provider_harness)
    scheduled = provider.schedule(ScheduleRequest("chg_c", customer, current, None, None, True))
    assert scheduled.cancel_at_period_end
    ended = provider.renew(RenewRequest("chg_e", customer, scheduled, None))
    assert ended.subscription is not None and ended.subscription.status == "canceled"
    assert ended.charge is None or ended.charge.amount_paid == 0


def test_an_empty_schedule_clears_a_scheduled_change_and_cancellation(
    provider_harness: Harness,
) -> None:
    provider = provider_harness.provider
    customer = provider_harness.customer("acme")
    current = start(provider_harness, PRO, expected=2900)
    scheduled = provider.schedule(ScheduleRequest("chg_1", customer, current, STARTER, None, True))
    resumed = provider.schedule(ScheduleRequest("chg_2", customer, scheduled, None, None, False))
    assert resumed.next_plan is None and not resumed.cancel_at_period_end
    assert resumed.plan == PRO


def test_a_one_time_item_is_charged_in_full(provider_harness: Harness) -> None:
    request = OneTimeRequest("chg_o", provider_harness.customer("acme"), ONBOARDING, 29900)
    result = provider_harness.finish(provider_harness.provider.charge_one_time(request))
    assert result.charge is not None and result.charge.amount_paid == 29900


def test_a_one_time_item_with_a_wrong_quote_is_refused(provider_harness: Harness) -> None:
    request = OneTimeRequest("chg_o", provider_harness.customer("acme"), ONBOARDING, 100)
    with pytest.raises(QuoteMismatch):
        provider_harness.provider.charge_one_time(request)


def test_an_unknown_idempotency_key_has_no_recorded_change(provider_harness: Harness) -> None:
    assert provider_harness.provider.find_change("chg_never_used") is None
