"""Discounts as Stripe reuses them: `discounts[N][discount]` names "an existing discount on
the object (or one of its ancestors)", and a populated `discounts` array overwrites the
subscription's discounts, so a discount overwritten away cannot be reused. A declined upgrade
with a promotion puts the plan's own promotion back by its coupon. A change of plan ends the
old plan's promotion (so Stripe charges what was quoted); an add-on bought keeps it."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from billing.provider import ChangeRequest, Customer, Discount, PaymentDeclined, StartRequest
from billing.stripe_errors import DECLINED
from billing.stripe_provider import StripeBilling
from tests.billing.conftest import PERIOD_START, add_account
from tests.billing.stripe_fixtures import HALFWAY, fake_stripe, stripe_billing, stripe_customer
from tests.billing.test_pages import SELF, post_form
from tests.billing.test_stripe_pages import Shop, gate_offer_link, shop, subscription, token
from tests.billing.test_stripe_provider import PRO, STARTER, URL
from tests.fakestripe import FakeStripe
from tiergate.db import get_db

__all__ = ["fake_stripe", "shop", "stripe_billing"]  # fixtures used here


def _product_and_price(fake: FakeStripe) -> tuple[Any, Any]:
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
    return product, price


def test_fake_refuses_to_reuse_a_discount_no_longer_on_the_subscription(
    fake_stripe: FakeStripe,
) -> None:
    _, price = _product_and_price(fake_stripe)
    client = fake_stripe.client()
    first = client.v1.coupons.create({"percent_off": 10, "duration": "forever"})
    second = client.v1.coupons.create({"percent_off": 20, "duration": "forever"})
    customer = client.v1.customers.create({"email": "a@example.com"})
    fake_stripe.attach_card(customer.id)
    sub = client.v1.subscriptions.create(
        {
            "customer": customer.id,
            "items": [{"price": price.id}],
            "discounts": [{"coupon": first.id}],
        }
    )
    (old,) = sub.discounts
    client.v1.subscriptions.update(sub.id, {"discounts": [{"coupon": second.id}]})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.update(sub.id, {"discounts": [{"discount": str(old)}]})


def test_a_declined_upgrade_with_a_promotion_keeps_the_promotion_the_plan_had(
    fake_stripe: FakeStripe, stripe_billing: StripeBilling
) -> None:
    """acme pays Starter with a 10 % forever promotion; halfway an upgrade to Pro with 20 % off
    is declined: the customer is told so, and Starter keeps its 10 % (docs/billing.md: "If the
    card is declined, the subscription's previous discounts are put back")."""
    fake_stripe.reset(now=PERIOD_START)
    customer = stripe_customer(fake_stripe, "acme")
    loyal = Discount("loyal", percent_off=10, duration="forever")
    start = StartRequest(
        "chg_start", customer, STARTER, (), (), PERIOD_START, 0, loyal, 810, URL, URL
    )
    started = stripe_billing.start_subscription(start)
    assert started.external_id is not None
    fake_stripe.complete_checkout(started.external_id)
    result = stripe_billing.checkout_result(started.external_id)
    assert result.subscription is not None and result.subscription.external_id is not None
    sub_id = result.subscription.external_id
    coupons_before = [
        fake_stripe.get(d)["source"]["coupon"] for d in fake_stripe.get(sub_id)["discounts"]
    ]
    fake_stripe.set_time(HALFWAY)
    fake_stripe.decline_next_payment(customer.external_id or "")
    launch = Discount("launch", percent_off=20, duration="forever")
    request = ChangeRequest(
        "chg_up", customer, result.subscription, PRO, (), (), HALFWAY, launch, 710, URL
    )
    with pytest.raises(PaymentDeclined) as declined:
        stripe_billing.change_subscription(request)
    assert declined.value.message == DECLINED
    after = [fake_stripe.get(d)["source"]["coupon"] for d in fake_stripe.get(sub_id)["discounts"]]
    assert after == coupons_before


def _starter_with_a_running_promotion(shop: Shop) -> str:
    """acme paid Starter with 10 % off forever at Checkout; the clock is halfway through."""
    shop.fake.reset(now=PERIOD_START)
    with get_db(shop.app).session() as s:
        add_account(s, "acme", shop.clock)
    customer = Customer("acme", "acme@example.com", "acme")
    loyal = Discount("starter_loyal", percent_off=10, duration="forever")
    start = StartRequest(
        "chg_start", customer, STARTER, (), (), PERIOD_START, 0, loyal, 810, URL, URL
    )
    started = shop.billing.start_subscription(start)
    assert started.external_id is not None
    shop.fake.complete_checkout(started.external_id)
    shop.deliver()
    shop.fake.set_time(HALFWAY)
    sub = subscription(shop.app)
    assert sub.stripe_subscription_id is not None
    assert shop.fake.get(sub.stripe_subscription_id)["discounts"]
    return sub.stripe_subscription_id


def test_a_plan_with_a_running_promotion_is_upgraded_at_the_amount_quoted(
    shop: Shop, client: Any
) -> None:
    """The offer quotes Pro from Starter at its price ($10.00 today: Starter's unused half
    credited at its price). Stripe charges exactly that: the change ends Starter's promotion
    first, as ManualBilling does, instead of refusing with "the amount due is now $10.45"."""
    sub_id = _starter_with_a_running_promotion(shop)
    offer_id, link = gate_offer_link(shop)
    page = client.get(link).get_data(as_text=True)
    assert "Upgrade now — pay $10.00 today" in page
    response = post_form(client, page, f"/offers/{offer_id}/accept")
    assert response.status_code == 302, response.get_data(as_text=True)
    assert [i.amount_paid for i in shop.stripe_invoices()] == [810, 1000]
    assert subscription(shop.app).tier_id == "pro"
    assert shop.fake.get(sub_id)["discounts"] == []


def test_a_plan_with_a_running_promotion_switches_to_yearly_at_the_amount_quoted(
    shop: Shop, client: Any
) -> None:
    sub_id = _starter_with_a_running_promotion(shop)
    page = client.get(f"/billing/yearly?t={token(shop.app)}").get_data(as_text=True)
    assert "Switch now — pay $85.50 today" in page
    response = post_form(client, page, SELF, url="/billing/yearly")
    assert response.status_code in (200, 302), response.get_data(as_text=True)
    assert [i.amount_paid for i in shop.stripe_invoices()] == [810, 8550]
    assert subscription(shop.app).interval == "year"
    assert shop.fake.get(sub_id)["discounts"] == []


def test_an_addon_bought_keeps_the_running_promotion(shop: Shop, client: Any) -> None:
    sub_id = _starter_with_a_running_promotion(shop)
    before = shop.fake.get(sub_id)["discounts"]
    page = client.get(f"/billing/addons/seat_pack?t={token(shop.app)}").get_data(as_text=True)
    response = post_form(client, page, SELF, url="/billing/addons/seat_pack")
    assert response.status_code in (200, 302), response.get_data(as_text=True)
    assert len(shop.stripe_invoices()) == 2
    assert shop.fake.get(sub_id)["discounts"] == before
