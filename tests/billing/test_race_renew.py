"""PostgreSQL: `tiergate billing renew` (service.apply_period_end) while something else touches
the same subscription: a second renew run (an overlapping cron, two hosts), a customer's upgrade
accepted just after the period ended."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select, text

from billing import records, service
from billing.manual import ManualBilling
from billing.models import Invoice
from billing.provider import RenewRequest, Result
from gating.models import Account
from tests.billing.conftest import PERIOD_END, subscribe
from tests.billing.race_helpers import ERRORS, together
from tests.billing.test_pages import version
from tiergate.clock import FixedClock
from tiergate.db import get_db

__all__ = ["version"]


class SlowRenewals(ManualBilling):
    """Manual billing in a renew run with many due accounts before this one (each renewal
    takes a while): the run's transaction stays open longer."""

    def renew(self, request: RenewRequest) -> Result:
        time.sleep(0.5)
        return super().renew(request)


def _renew_run(app: Any, clock: Any, provider: Any) -> list[str]:
    """What `tiergate billing renew` does: one session, each renewal committed on its own."""
    with app.app_context(), get_db(app).session() as s:
        return [r.message for r in service.apply_period_end(s, clock, provider)]


def test_two_overlapping_renew_runs_charge_a_period_once(
    app: Any, postgres_url: str, clock: Any, version: int
) -> None:
    database = get_db(app)
    with database.session() as s:
        subscribe(s, "acme", clock, version)  # Starter, 9.00 a month, period ends Nov 30
    later = FixedClock(PERIOD_END + timedelta(hours=1))
    outcomes = together(
        lambda: _renew_run(app, later, SlowRenewals()),
        lambda: _renew_run(app, later, ManualBilling()),
    )
    with database.sessionmaker() as s:
        invoices = list(s.scalars(select(Invoice).where(Invoice.account_id == "acme")))
        sub = s.get(Account, "acme").subscription
    assert len(invoices) == 1, (
        f"runs answered {outcomes}; {len(invoices)} renewal invoices "
        f"{[i.amount_paid for i in invoices]} for the period ending {PERIOD_END:%b %d}; the "
        f"subscription now runs to {sub.current_period_end:%b %d}"
    )


class SlowLastRenewal(ManualBilling):
    """Manual billing whose renewal of `slow` takes a second (the processor, a busy host)."""

    def __init__(self, slow: str) -> None:
        self.slow = slow

    def renew(self, request: RenewRequest) -> Result:
        if request.customer.account_id == self.slow:
            time.sleep(1.0)
        return super().renew(request)


def _due(app: Any, clock: Any, version: int, *accounts: str) -> FixedClock:
    """The accounts on Starter, their periods ended in the order given; the clock just after."""
    with get_db(app).session() as s:
        for i, account_id in enumerate(accounts):
            end = PERIOD_END - timedelta(hours=len(accounts) - i)
            subscribe(s, account_id, clock, version, period_end=end)
    return FixedClock(PERIOD_END + timedelta(hours=1))


def test_a_renew_run_holds_only_the_account_it_is_renewing(
    app: Any, postgres_url: str, clock: Any, version: int
) -> None:
    """While a run renews charlie (slowly), alpha, renewed earlier in the run, is renewed for
    everyone to see and free: a change of alpha's plan is not kept waiting until the run
    ends."""
    later = _due(app, clock, version, "alpha", "bravo", "charlie")
    database = get_db(app)

    def change_alpha() -> Any:
        time.sleep(0.5)  # alpha and bravo renewed, charlie's renewal under way
        with database.session() as s:
            s.execute(text("SET LOCAL lock_timeout = '200ms'"))
            records.lock_account(s, "alpha")  # what every change of alpha's plan takes first
            return s.get(Account, "alpha").subscription.current_period_end

    outcomes = together(lambda: _renew_run(app, later, SlowLastRenewal("charlie")), change_alpha)
    assert not ERRORS, outcomes
    assert outcomes[1] > PERIOD_END, outcomes
    assert len(outcomes[0]) == 3, outcomes


def test_two_overlapping_renew_runs_over_several_accounts_renew_each_once(
    app: Any, postgres_url: str, clock: Any, version: int
) -> None:
    """Two runs at once over three due accounts, renewal by renewal: each period is renewed
    by one of them, and charged once."""
    later = _due(app, clock, version, "alpha", "bravo", "charlie")
    outcomes = together(
        lambda: _renew_run(app, later, SlowRenewals()),
        lambda: _renew_run(app, later, SlowRenewals()),
    )
    assert not ERRORS, outcomes
    with get_db(app).sessionmaker() as s:
        for account_id in ("alpha", "bravo", "charlie"):
            invoices = list(s.scalars(select(Invoice).where(Invoice.account_id == account_id)))
            sub = s.get(Account, account_id).subscription
            assert len(invoices) == 1 and sub.current_period_end > PERIOD_END, (
                f"{account_id}: {len(invoices)} invoice(s), period to "
                f"{sub.current_period_end:%b %d}; runs answered {outcomes}"
            )
    renewed = sorted(m.split()[1] for run in outcomes for m in run if m.startswith("Renewed"))
    assert renewed == ["alpha", "bravo", "charlie"], outcomes
