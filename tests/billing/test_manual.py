"""ManualBilling beyond the shared contract: trials, superseded schedules, renewals."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from billing.manual import ManualBilling
from billing.provider import (
    ChangeRequest,
    Customer,
    Discount,
    RenewRequest,
    ScheduleRequest,
    StartRequest,
)
from tests.billing.conftest import PERIOD_END, PERIOD_START
from tests.billing.test_provider_contract import HALFWAY, PRO, STARTER, URL

ACME = Customer("acme")
MANUAL = ManualBilling()


def started(plan=STARTER, trial: int = 0):  # type: ignore[no-untyped-def]
    amount = 0 if trial else plan.amount
    request = StartRequest("chg_1", ACME, plan, (), (), PERIOD_START, trial, None, amount, URL, URL)
    result = MANUAL.start_subscription(request)
    assert result.subscription is not None
    return result.subscription


def test_manual_billing_is_named_manual_and_invoices_as_paid() -> None:
    request = StartRequest("chg_1", ACME, STARTER, (), (), PERIOD_START, 0, None, 900, URL, URL)
    result = MANUAL.start_subscription(request)
    assert MANUAL.name == "manual"
    assert result.charge is not None and result.charge.status == "paid"
    assert result.charge.external_id is None


def test_an_upgrade_supersedes_a_scheduled_downgrade_and_cancellation() -> None:
    current = started(PRO)
    scheduled = MANUAL.schedule(ScheduleRequest("chg_2", ACME, current, STARTER, None, True))
    upgraded = MANUAL.change_subscription(
        ChangeRequest(
            "chg_3", ACME, replace(scheduled, plan=STARTER), PRO, (), (), HALFWAY, None, 1000, URL
        )
    )
    assert upgraded.subscription is not None
    assert upgraded.subscription.next_plan is None
    assert not upgraded.subscription.cancel_at_period_end


def test_a_trial_renews_into_the_first_paid_period() -> None:
    trial = started(PRO, trial=14)
    renewed = MANUAL.renew(RenewRequest("chg_2", ACME, trial, None))
    assert renewed.subscription is not None and renewed.charge is not None
    assert renewed.subscription.status == "active" and renewed.subscription.trial_end is None
    assert renewed.charge.amount_paid == 2900
    assert renewed.subscription.period_start == datetime(2026, 11, 14, 12, 0, tzinfo=UTC)
    assert renewed.subscription.period_end == datetime(2026, 12, 14, 12, 0, tzinfo=UTC)


def test_a_renewal_with_a_running_promotion_is_discounted() -> None:
    renewed = MANUAL.renew(
        RenewRequest(
            "chg_2", ACME, started(PRO), Discount("loyal", percent_off=10, duration="forever")
        )
    )
    assert renewed.charge is not None and renewed.charge.amount_paid == 2610


def test_a_change_outside_the_current_period_is_a_programming_error() -> None:
    current = started()
    late = datetime(2027, 1, 1, tzinfo=UTC)
    try:
        MANUAL.change_subscription(
            ChangeRequest("chg_2", ACME, current, PRO, (), (), late, None, 0, URL)
        )
    except ValueError as exc:
        assert "within the current period" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected a ValueError")
    assert current.period_end == PERIOD_END


# ---- promotions that outlive their first charge (renewals keep them, as Stripe's coupons do) --


def _start(plan, discount, trial: int = 0):  # type: ignore[no-untyped-def]
    amount = 0 if trial else plan.amount - discount.off(plan.amount)
    request = StartRequest(
        "chg_1", ACME, plan, (), (), PERIOD_START, trial, discount, amount, URL, URL
    )
    result = MANUAL.start_subscription(request)
    assert result.subscription is not None and result.charge is not None
    assert result.charge.amount_paid == amount
    return result.subscription


def _renewals(state, count: int) -> list[int]:  # type: ignore[no-untyped-def]
    """What each of the next `count` period ends charges, the renewals chained."""
    charged = []
    for n in range(count):
        renewed = MANUAL.renew(RenewRequest(f"chg_r{n}", ACME, state, None))
        assert renewed.subscription is not None and renewed.charge is not None
        charged.append(renewed.charge.amount_paid)
        state = renewed.subscription
    return charged


def test_a_repeating_promotion_discounts_its_months_then_stops() -> None:
    three_months = Discount("spring", percent_off=20, duration="repeating", duration_in_months=3)
    state = _start(PRO, three_months)  # 2900 - 20 % = 2320 today
    assert _renewals(state, 4) == [2320, 2320, 2900, 2900]


def test_a_repeating_promotion_on_a_yearly_plan_counts_whole_years() -> None:
    yearly = replace(PRO, interval="year", unit_amount=29000)
    eighteen_months = Discount("y", percent_off=10, duration="repeating", duration_in_months=18)
    state = _start(yearly, eighteen_months)
    assert _renewals(state, 2) == [26100, 29000]  # the second year is discounted, not the third


def test_a_forever_promotion_discounts_every_renewal() -> None:
    state = _start(PRO, Discount("loyal", amount_off=500, duration="forever"))
    assert _renewals(state, 3) == [2400, 2400, 2400]


def test_a_once_promotion_on_a_trial_discounts_the_first_paid_period_only() -> None:
    state = _start(PRO, Discount("first", percent_off=50, duration="once"), trial=14)
    assert state.running_discount is not None and state.running_discount.charges_left == 1
    assert _renewals(state, 2) == [1450, 2900]


def test_a_change_to_another_plan_ends_the_running_promotion() -> None:
    state = _start(STARTER, Discount("loyal", percent_off=10, duration="forever"))
    upgraded = MANUAL.change_subscription(
        ChangeRequest("chg_2", ACME, state, PRO, (), (), HALFWAY, None, _due(state, PRO), URL)
    )
    assert upgraded.subscription is not None
    assert upgraded.subscription.running_discount is None
    assert _renewals(upgraded.subscription, 1) == [2900]


def test_a_new_promotion_on_a_change_replaces_the_running_one() -> None:
    state = _start(STARTER, Discount("loyal", percent_off=10, duration="forever"))
    two_months = Discount("pro2", percent_off=50, duration="repeating", duration_in_months=2)
    upgraded = MANUAL.change_subscription(
        ChangeRequest(
            "chg_2",
            ACME,
            state,
            PRO,
            (),
            (),
            HALFWAY,
            two_months,
            _due(state, PRO, two_months),
            URL,
        )
    )
    assert upgraded.subscription is not None
    # Given on November 15 for two months, it runs to January 15, as Stripe's coupon would:
    # the renewals of November 30 and December 30 fall inside it, January 30 does not.
    assert _renewals(upgraded.subscription, 3) == [1450, 1450, 2900]


def _due(state, plan, discount=None) -> int:  # type: ignore[no-untyped-def]
    from billing.quotes import change_quote

    return change_quote(state, plan, (), (), HALFWAY, discount).amount_due
