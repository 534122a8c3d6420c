"""A change of plan through Stripe that rewrites the subscription's discounts does it in the same
call as the items (`error_if_incomplete`): when Stripe is lost before that call, or the card is
declined, the customer's running promotion is still there, whether reconcile later finds the
change never applied or the same change is retried and declined, and even when its coupon can
no longer be redeemed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from billing.models import BillingChange, ChangeStatus
from billing.provider import ChangeRequest, Discount, PaymentDeclined
from billing.reconcile import reconcile
from billing.stripe_provider import StripeBilling
from tests.billing.stripe_fixtures import HALFWAY, fake_stripe, make_billing
from tests.billing.test_pages import post_form
from tests.billing.test_stripe_discount_reuse import (
    _starter_with_a_running_promotion,
    coupons_of,
)
from tests.billing.test_stripe_pages import Shop, changes, gate_offer_link, shop, subscription
from tests.billing.test_stripe_provider import PRO, STARTER, URL, subscribe
from tests.fakestripe import FakeStripe
from tiergate.db import get_db
from tiergate.exceptions import ProviderUnavailable

__all__ = ["fake_stripe", "shop"]  # fixtures used here


class CrashBeforeModify(StripeBilling):
    """StripeBilling that loses Stripe once, right before the items change ("modify")."""

    crashes = 1

    def _update(self, sub_id: str, params: Any, key: str, step: str) -> Any:
        if step == "modify" and self.crashes:
            self.crashes -= 1
            raise ProviderUnavailable("Stripe did not answer (simulated outage before modify)")
        return super()._update(sub_id, params, key, step)


def _crashing(fake: FakeStripe) -> CrashBeforeModify:
    base = make_billing(fake)
    return CrashBeforeModify(
        base.client,
        webhook_secret="whsec_tiergate_tests",
        base_url="http://localhost",
        catalog_version=lambda: 1,
    )


def test_reconcile_after_a_crash_before_the_change_keeps_the_running_promotion(
    shop: Shop, client: Any
) -> None:
    """acme pays Starter with 10 % off forever. An upgrade to Pro (which would end that
    promotion) loses Stripe before the change is made. Reconcile finds that Stripe never applied
    it and marks it failed: acme is still on Starter, and its 10 % still on the subscription
    (otherwise every renewal would charge $9.00 instead of $8.10)."""
    sub_id = _starter_with_a_running_promotion(shop)
    before = coupons_of(shop.fake, sub_id)
    assert before  # the starter_loyal coupon
    offer_id, link = gate_offer_link(shop)
    page = client.get(link).get_data(as_text=True)
    shop.app.extensions["tiergate.billing"] = _crashing(shop.fake)
    post_form(client, page, f"/offers/{offer_id}/accept")
    [change] = [c for c in changes(shop.app) if c.offer_id == offer_id]
    assert change.status is ChangeStatus.PENDING  # left for reconcile

    shop.app.extensions["tiergate.billing"] = make_billing(shop.fake)
    with get_db(shop.app).session() as s:
        reconcile(s, shop.clock, shop.billing, account_id="acme")
    with get_db(shop.app).sessionmaker() as s:
        settled = s.get(BillingChange, change.id)
        assert settled is not None and settled.status is ChangeStatus.FAILED
    assert subscription(shop.app).tier_id == "starter"
    assert coupons_of(shop.fake, sub_id) == before, "the customer's promotion was lost"


def test_a_retried_change_that_is_then_declined_puts_the_promotion_back(
    fake_stripe: FakeStripe,
) -> None:
    """The same change (same idempotency key) is retried after the crash and the card is then
    declined: the subscription keeps the promotion it had before the first try."""
    billing = _crashing(fake_stripe)
    loyal = Discount("loyal", percent_off=10, duration="forever")
    customer, current = subscribe(fake_stripe, billing, STARTER, discount=loyal)
    sub_id = current.external_id or ""
    before = coupons_of(fake_stripe, sub_id)
    assert before
    # Pro from Starter halfway, Starter credited at its price: $14.50 - $4.50 = $10.00.
    request = ChangeRequest("chg_up", customer, current, PRO, (), (), HALFWAY, None, 1000, URL)
    with pytest.raises(ProviderUnavailable):
        billing.change_subscription(request)
    fake_stripe.decline_next_payment(customer.external_id or "")
    with pytest.raises(PaymentDeclined):
        billing.change_subscription(request)  # the retry, same key
    assert coupons_of(fake_stripe, sub_id) == before, "the customer's promotion was lost"


def test_a_declined_change_keeps_a_promotion_whose_coupon_can_no_longer_be_redeemed(
    fake_stripe: FakeStripe,
) -> None:
    """acme redeemed a limited-time Dashboard coupon ("Black Friday", 10 % off forever,
    redeemable for one more day) on its Starter subscription. Two days later an upgrade to Pro
    is declined: the customer is told so, and keeps the coupon that could not be given again."""
    billing = make_billing(fake_stripe)
    customer, current = subscribe(fake_stripe, billing, STARTER)
    sub_id = current.external_id or ""
    client = fake_stripe.client()
    deadline = int((HALFWAY + timedelta(days=1)).timestamp())
    friday = client.v1.coupons.create(
        {"percent_off": 10, "duration": "forever", "redeem_by": deadline, "name": "Black Friday"}
    )
    client.v1.subscriptions.update(sub_id, {"discounts": [{"coupon": friday.id}]})
    assert coupons_of(fake_stripe, sub_id) == [friday.id]
    fake_stripe.set_time(HALFWAY + timedelta(days=2))
    fake_stripe.decline_next_payment(customer.external_id or "")
    current = billing.fetch_subscription(sub_id)
    request = ChangeRequest("chg_up", customer, current, PRO, (), (), HALFWAY, None, 1000, URL)
    with pytest.raises(PaymentDeclined):
        billing.change_subscription(request)
    assert coupons_of(fake_stripe, sub_id) == [friday.id], "the customer's promotion was lost"
