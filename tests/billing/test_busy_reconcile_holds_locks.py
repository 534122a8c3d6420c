"""`tiergate billing reconcile` locks a pending change (and its account) only to settle it,
and commits each one: a customer who pays on a Checkout page left open and comes back to the
billing page does not wait for the rest of the run (it waited for the whole run)."""

from __future__ import annotations

import threading
import time
from typing import Any

from billing import portal, service
from billing.reconcile import reconcile
from billing.stripe_provider import StripeBilling
from tests.billing.conftest import add_account
from tests.billing.stripe_fixtures import WEBHOOK_SECRET, fake_stripe
from tests.billing.test_pages import path
from tests.billing.test_stripe_pages import STARTER, Shop, hosted_page, shop
from tiergate.db import get_db

__all__ = ["fake_stripe", "shop"]

COMPARE_SECONDS = 3.0  # reconcile's pass over the other subscriptions (many, in production)


class SlowCompare(StripeBilling):
    def __init__(self, base: StripeBilling, comparing: threading.Event) -> None:
        super().__init__(base.client, webhook_secret=WEBHOOK_SECRET, base_url="http://localhost")
        self.comparing = comparing

    def fetch_subscription(self, external_id: str) -> Any:
        self.comparing.set()
        time.sleep(COMPARE_SECONDS)
        return super().fetch_subscription(external_id)


def test_a_customer_back_from_checkout_does_not_wait_for_the_whole_reconcile_run(
    shop: Shop, client: Any
) -> None:
    shop.subscribed(STARTER)  # acme: one of the Stripe subscriptions reconcile compares
    database = get_db(shop.app)
    with database.session() as s:
        add_account(s, "newco", shop.clock)
    with shop.app.app_context(), database.session() as s:
        quote = service.checkout_quote(s, shop.clock, "newco", "business", "month", "usd", None)[1]
        started = service.checkout(
            s,
            shop.clock,
            shop.billing,
            "newco",
            "business",
            "month",
            "usd",
            expected_amount_due=quote.amount_due,
            urls=service.Urls("http://localhost/billing?t=x", "http://localhost/billing"),
        )
    assert started.redirect_url
    comparing = threading.Event()
    finished: dict[str, float] = {}

    def run_reconcile() -> None:
        with shop.app.app_context(), database.session() as s:
            reconcile(s, shop.clock, SlowCompare(shop.billing, comparing))
        finished["reconcile"] = time.monotonic()

    thread = threading.Thread(target=run_reconcile)
    thread.start()
    assert comparing.wait(10)
    began = time.monotonic()
    status, _, back = hosted_page(started.redirect_url, {"payment_method": "pm_card_visa"})
    assert status == 303
    back_path = path(back).replace("t=x", "t=" + portal.account_token(shop.app.config, "newco"))
    returned = client.get(back_path)
    waited = time.monotonic() - began
    thread.join(30)
    assert "Payment received" in returned.get_data(as_text=True)
    assert waited < COMPARE_SECONDS / 2, (
        f"the customer's return page took {waited:.1f} s: it waited for reconcile's locks "
        f"(reconcile finished {finished.get('reconcile', 0) - began:.1f} s after the payment)"
    )
