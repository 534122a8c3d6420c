"""Discounts as Stripe reuses them: `discounts[N][discount]` names "an existing discount on
the object (or one of its ancestors)", and a populated `discounts` array overwrites the
subscription's discounts, so a discount overwritten away cannot be reused. A declined upgrade
with a promotion leaves the plan's own promotion in place. A change of plan ends the old plan's
promotion (so Stripe charges what was quoted); an add-on bought keeps it."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from billing.provider import ChangeRequest, Customer, Discount, PaymentDeclined, StartRequest
from billing.stripe_errors import DECLINED
from billing.stripe_provider import StripeBilling
from tests.billing.conftest import PERIOD_START, add_account
from tests.billing.stripe_fixtures import HALFWAY, fake_stripe, stripe_billing
from tests.billing.test_pages import SELF, post_form
from tests.billing.test_stripe_billing_mode import fake_subscription
from tests.billing.test_stripe_pages import Shop, gate_offer_link, shop, subscription, token
from tests.billing.test_stripe_provider import PRO, STARTER, URL, subscribe
from tests.fakestripe import FakeStripe
from tiergate.db import get_db

__all__ = ["fake_stripe", "shop", "stripe_billing"]  # fixtures used here


def test_fake_refuses_to_reuse_a_discount_no_longer_on_the_subscription(
    fake_stripe: FakeStripe,
) -> None:
    client = fake_stripe.client()
    first = client.v1.coupons.create({"percent_off": 10, "duration": "forever"})
    second = client.v1.coupons.create({"percent_off": 20, "duration": "forever"})
    sub = fake_subscription(fake_stripe, discounts=[{"coupon": first.id}])
    (old,) = sub.discounts
    client.v1.subscriptions.update(sub.id, {"discounts": [{"coupon": second.id}]})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.update(sub.id, {"discounts": [{"discount": str(old)}]})


def test_a_declined_upgrade_with_a_promotion_keeps_the_promotion_the_plan_had(
    fake_stripe: FakeStripe, stripe_billing: StripeBilling
) -> None:
    """acme pays Starter with a 10 % forever promotion; halfway an upgrade to Pro with 20 % off
    is declined: the customer is told so, and Starter keeps its 10 % (the change and its
    discounts are one call, which a decline leaves undone)."""
    loyal = Discount("loyal", percent_off=10, duration="forever")
    customer, current = subscribe(fake_stripe, stripe_billing, STARTER, discount=loyal)
    sub_id = current.external_id or ""
    before = coupons_of(fake_stripe, sub_id)
    assert before
    fake_stripe.decline_next_payment(customer.external_id or "")
    launch = Discount("launch", percent_off=20, duration="forever")
    request = ChangeRequest("chg_up", customer, current, PRO, (), (), HALFWAY, launch, 710, URL)
    with pytest.raises(PaymentDeclined) as declined:
        stripe_billing.change_subscription(request)
    assert declined.value.message == DECLINED
    assert coupons_of(fake_stripe, sub_id) == before


def coupons_of(fake: FakeStripe, sub_id: str) -> list[str]:
    """The coupons of the subscription's discounts at the fake Stripe."""
    return [fake.get(d)["source"]["coupon"] for d in fake.get(sub_id)["discounts"]]


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
