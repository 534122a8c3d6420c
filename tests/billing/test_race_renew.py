"""PostgreSQL: `tiergate billing renew` (service.apply_period_end) while something else touches
the same subscription: a second renew run (an overlapping cron, two hosts), a customer's upgrade
accepted just after the period ended."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from billing import service
from billing.manual import ManualBilling
from billing.models import Invoice
from billing.provider import RenewRequest, Result
from gating.models import Account
from tests.billing.conftest import PERIOD_END, subscribe
from tests.billing.race_helpers import together
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
    """What `tiergate billing renew` does: one session, committed at the end."""
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
