"""Stripe's billing mode: since API version 2025-09-30.clover a new subscription (through the
API, Checkout, or a preview) is `flexible` unless `billing_mode[type]=classic` is given
(https://docs.stripe.com/changelog/clover/2025-09-30/billing-mode-default-flexible). Flexible
mode credits the amount previously debited (discounted) and leaves one-time items added with an
update pending; tiergate's quotes follow the classic arithmetic, so every subscription it
creates asks for classic. The fake defaults to flexible too and refuses to prorate one."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from billing.provider import StartRequest
from billing.stripe_provider import StripeBilling
from tests.billing.stripe_fixtures import HALFWAY, fake_stripe, stripe_billing, stripe_customer
from tests.billing.test_stripe_pages import Shop, shop
from tests.billing.test_stripe_provider import PRO, URL
from tests.billing.test_stripe_schedules import year_ends, yearly_switching_to_monthly
from tests.fakestripe import FakeStripe

__all__ = ["fake_stripe", "shop", "stripe_billing"]  # fixtures used here


def _posts(fake: FakeStripe, path: str) -> list[dict[str, Any]]:
    return [r.params for r in fake.requests if r.method == "POST" and r.path == path]


def fake_subscription(fake: FakeStripe, **extra: Any) -> Any:
    """A $10.00 monthly subscription made at the fake Stripe directly (`extra`: its params)."""
    client = fake.client()
    product = client.v1.products.create({"name": "Pro"})
    price = client.v1.prices.create(
        {
            "product": product.id,
            "currency": "usd",
            "unit_amount": 1000,
            "recurring": {"interval": "month"},
        }
    )
    customer = client.v1.customers.create({"email": "a@example.com"})
    fake.attach_card(customer.id)
    items = [{"price": price.id}]
    return client.v1.subscriptions.create({"customer": customer.id, "items": items, **extra})


def test_the_fake_makes_flexible_subscriptions_unless_told_classic(
    fake_stripe: FakeStripe,
) -> None:
    assert fake_subscription(fake_stripe).billing_mode.type == "flexible"
    classic = fake_subscription(fake_stripe, billing_mode={"type": "classic"})
    assert classic.billing_mode.type == "classic"


def test_the_fake_refuses_to_prorate_a_flexible_subscription_it_does_not_model(
    fake_stripe: FakeStripe,
) -> None:
    sub = fake_subscription(fake_stripe)
    item = sub["items"].data[0]
    with pytest.raises(stripe.InvalidRequestError) as refused:
        fake_stripe.client().v1.subscriptions.update(
            sub.id, {"items": [{"id": item.id, "quantity": 2}]}
        )
    assert refused.value.param == "billing_mode"


def test_checkout_asks_for_the_classic_billing_mode(
    fake_stripe: FakeStripe, stripe_billing: StripeBilling
) -> None:
    customer = stripe_customer(fake_stripe, "acme")
    request = StartRequest("chg_1", customer, PRO, (), (), HALFWAY, 0, None, 2900, URL, URL)
    stripe_billing.start_subscription(request)
    (params,) = _posts(fake_stripe, "/v1/checkout/sessions")
    assert params["subscription_data"]["billing_mode"] == {"type": "classic"}


def test_the_interval_switchs_new_subscription_asks_for_the_classic_billing_mode(
    shop: Shop,
) -> None:
    yearly = yearly_switching_to_monthly(shop)
    year_ends(shop, yearly)
    assert shop.billing.continue_switch(yearly, "chg_next") is not None
    (params,) = _posts(shop.fake, "/v1/subscriptions")
    assert params["billing_mode"] == {"type": "classic"}
