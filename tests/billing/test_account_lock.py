"""PostgreSQL: the account's lock (FOR NO KEY UPDATE) taken by a checkout never deadlocks with
the settling of an open Checkout page, which locks the change and then writes rows that refer
to the account (a foreign key check takes FOR KEY SHARE on it)."""

from __future__ import annotations

import threading
import time
from typing import Any

from billing import service
from billing.manual import ManualBilling
from billing.models import BillingChange, ChangeStatus, Invoice
from tests.billing.conftest import add_account
from tests.billing.test_pages import version
from tests.billing.test_stripe_pages import URLS
from tiergate.db import get_db

__all__ = ["version"]


def test_a_second_checkout_and_the_settling_of_the_first_page_do_not_deadlock(
    app: Any, postgres_url: str, clock: Any, version: int
) -> None:
    database = get_db(app)
    with database.session() as s:
        add_account(s, "newco", clock)
        s.add(
            BillingChange(  # the Checkout page opened earlier (Business), now paid on Stripe
                id="chg_first_page",
                account_id="newco",
                kind="checkout",
                status=ChangeStatus.PENDING,
                request={"tier": "business", "interval": "month", "trial_days": 14, "code": None},
                result={"outcome": "redirect", "external_id": "cs_first", "redirect_url": "x"},
                amount_due=0,
                currency="usd",
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
    settler_has_change = threading.Event()
    request_waits_for_change = threading.Event()
    errors: dict[str, str] = {}

    def settle_first_page() -> None:
        """What _settle_named_change + apply_result do for the paid page."""
        try:
            with database.session() as s:
                s.get(BillingChange, "chg_first_page", with_for_update=True)
                settler_has_change.set()
                request_waits_for_change.wait(5)
                time.sleep(0.3)  # the request is now blocked on the change row
                s.add(
                    Invoice(
                        account_id="newco",
                        provider="stripe",
                        external_id="in_first",
                        change_id="chg_first_page",
                        status="paid",
                        currency="usd",
                        amount_due=0,
                        amount_paid=0,
                        lines=[],
                        created_at=clock.now(),
                    )
                )
        except Exception as exc:  # noqa: BLE001
            errors["settling"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"

    original = service.lock_change

    def announced(session: Any, change: Any) -> None:
        request_waits_for_change.set()
        original(session, change)

    service.lock_change = announced  # type: ignore[assignment]
    settler = threading.Thread(target=settle_first_page)
    settler.start()
    try:
        assert settler_has_change.wait(5)
        with database.sessionmaker() as s:
            try:
                _, quote, _ = service.checkout_quote(s, clock, "newco", "pro", "month", "usd")
                service.checkout(
                    s,
                    clock,
                    ManualBilling(),
                    "newco",
                    "pro",
                    "month",
                    "usd",
                    expected_amount_due=quote.amount_due,
                    urls=URLS,
                )
                s.rollback()
            except Exception as exc:  # noqa: BLE001
                errors["checkout"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    finally:
        service.lock_change = original  # type: ignore[assignment]
        request_waits_for_change.set()
        settler.join(10)
    assert not errors, errors
