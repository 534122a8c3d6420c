"""PostgreSQL + the fake Stripe: `tiergate billing renew` reading a Stripe renewal while the
renewal's invoice.paid webhook records the same invoice (both run at the period end)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from billing import service, webhooks
from billing.stripe_provider import StripeBilling
from tests.billing.conftest import PERIOD_END
from tests.billing.race_helpers import ERRORS, together
from tests.billing.stripe_fixtures import WEBHOOK_SECRET, fake_stripe
from tests.billing.test_stripe_pages import STARTER, Shop, local_invoices, shop
from tiergate.clock import FixedClock
from tiergate.db import get_db

__all__ = ["fake_stripe", "shop"]


class SlowStripe(StripeBilling):
    """The webhook's re-fetch of the subscription takes a moment (a Stripe round trip)."""

    def __init__(self, base: StripeBilling) -> None:
        super().__init__(base.client, webhook_secret=WEBHOOK_SECRET, base_url="http://localhost")

    def fetch_subscription(self, external_id: str) -> Any:
        time.sleep(0.6)
        return super().fetch_subscription(external_id)


def test_renew_and_the_renewals_invoice_paid_webhook_at_once_do_not_crash_renew(
    shop: Shop, postgres_url: str
) -> None:
    sub_id = shop.subscribed(STARTER)
    shop.fake.advance_to_period_end(sub_id)  # Stripe renews: invoice.paid for the new period
    [paid] = [
        e
        for e in shop.fake.events
        if e["id"] not in shop.delivered
        and e["type"] == "invoice.paid"
        and e["data"]["object"].get("billing_reason") == "subscription_cycle"
    ]
    later = FixedClock(PERIOD_END + timedelta(minutes=1))
    database = get_db(shop.app)

    def webhook() -> Any:
        with shop.app.app_context():
            return webhooks.process(database, later, SlowStripe(shop.billing), paid).status

    def renew() -> Any:
        time.sleep(0.2)  # the webhook has recorded the invoice, not yet committed
        with shop.app.app_context(), database.session() as s:
            provider = StripeBilling(
                shop.billing.client, webhook_secret=WEBHOOK_SECRET, base_url="http://localhost"
            )
            return [r.message for r in service.apply_period_end(s, later, provider)]

    outcomes = together(webhook, renew)
    renewal = [i for i in local_invoices(shop.app) if i.amount_paid == 900]
    assert isinstance(outcomes[1], list), (
        f"renew crashed: {outcomes[1]} (webhook: {outcomes[0]}); {[str(e) for e in ERRORS][-1:]}"
    )
    assert len(renewal) == 2, [(i.external_id, i.amount_paid) for i in renewal]
