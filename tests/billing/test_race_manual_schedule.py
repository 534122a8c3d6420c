"""PostgreSQL, ManualBilling: a cancel (or downgrade) submitted while a purchase of the same
account is being recorded. The scheduling flows (records.schedule_change) take the account's
lock too (they did not, and the cancel ended the add-on just paid for)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from billing import downgrade, service
from billing.manual import ManualBilling
from billing.models import Invoice
from gating.models import Account, AccountAddOn
from tests.billing.conftest import subscribe
from tests.billing.race_helpers import together
from tests.billing.test_pages import version
from tests.billing.test_stripe_pages import URLS
from tiergate.clock import FixedClock
from tiergate.db import get_db

__all__ = ["version"]


def test_a_cancel_submitted_while_an_addon_is_bought_does_not_take_the_paid_addon_away(
    app: Any, postgres_url: str, clock: Any, version: int
) -> None:
    database = get_db(app)
    with database.session() as s:
        subscribe(s, "acme", clock, version, tier="pro")
    with app.app_context(), database.sessionmaker() as s:
        _, due = service.addon_quote(s, clock, "acme", "extended_support", clock.now())

    def buy() -> Any:
        with app.app_context(), database.session() as s:
            r = service.buy_addon(
                s,
                FixedClock(clock.now() + timedelta(seconds=20)),  # the form was shown earlier
                ManualBilling(),
                "acme",
                "extended_support",
                proration_date=clock.now(),
                expected_amount_due=due,
                urls=URLS,
            )
            time.sleep(0.5)  # the worker is descheduled before its commit (a busy machine)
            return r.status.value, r.charged

    def cancel() -> Any:
        time.sleep(0.2)  # the purchase has been recorded, not yet committed
        with app.app_context(), database.session() as s:
            later = FixedClock(clock.now() + timedelta(seconds=21))
            return downgrade.cancel(s, later, ManualBilling(), "acme").status.value

    outcomes = together(buy, cancel)
    with database.sessionmaker() as s:
        rows = list(s.scalars(select(AccountAddOn).where(AccountAddOn.account_id == "acme")))
        paid = [i.amount_paid for i in s.scalars(select(Invoice))]
        sub = s.get(Account, "acme").subscription
    active = [(r.addon_id, r.active, r.ended_at) for r in rows]
    assert paid == [due], paid
    assert active and all(a for _, a, _ in active), (
        f"outcomes {outcomes}: {due} paid for extended support, but its row is {active}; "
        f"the subscription's cancel_at_period_end is {sub.cancel_at_period_end}"
    )
