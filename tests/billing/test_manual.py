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
