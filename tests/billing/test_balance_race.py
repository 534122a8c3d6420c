"""PostgreSQL: two requests charging the same account at once (two tabs, two workers) take the
account's lock before quoting, so a credit is never spent twice."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from billing import service
from billing.manual import ManualBilling
from billing.models import Invoice
from billing.provider import OneTimeRequest, Result
from gating.models import Account
from tests.billing.conftest import subscribe
from tests.billing.test_pages import version
from tests.billing.test_stripe_pages import URLS
from tiergate.db import get_db

__all__ = ["version"]


class _Slow(ManualBilling):
    """Manual billing whose charge waits until both requests have quoted (the interleaving
    two workers can have)."""

    def __init__(self, barrier: threading.Barrier) -> None:
        super().__init__()
        self.barrier = barrier

    def charge_one_time(self, request: OneTimeRequest) -> Result:
        self.barrier.wait(timeout=10)
        return super().charge_one_time(request)


def test_a_credit_is_not_spent_twice_by_two_concurrent_purchases(
    app: Any, postgres_url: str, clock: Any, version: int
) -> None:
    database = get_db(app)
    with database.session() as s:
        subscribe(s, "acme", clock, version)
        account = s.get(Account, "acme")
        account.balance, account.balance_currency = -400, "usd"
    barrier = threading.Barrier(2)
    provider = _Slow(barrier)
    outcomes: list[str] = []

    def buy(offset: int) -> None:
        at = clock.now() - timedelta(seconds=offset)  # two add-on pages, two forms
        with database.sessionmaker() as s:
            try:
                result = service.buy_addon(
                    s,
                    clock,
                    provider,
                    "acme",
                    "onboarding",
                    proration_date=at,
                    expected_amount_due=29500,
                    urls=URLS,
                )
                s.commit()
                outcomes.append(result.status.value)
            except Exception as exc:  # noqa: BLE001 - a refusal is a fine outcome here
                s.rollback()
                outcomes.append(f"refused: {type(exc).__name__}")

    threads = [threading.Thread(target=buy, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with database.sessionmaker() as s:
        paid = list(s.scalars(select(Invoice).where(Invoice.account_id == "acme")))
        balance = s.get(Account, "acme").balance
    credit_used = sum(29900 - i.amount_paid for i in paid)
    assert credit_used <= 400, (
        f"outcomes {outcomes}: invoices {[i.amount_paid for i in paid]} used {credit_used} of a "
        f"400 credit; balance now {balance}"
    )
