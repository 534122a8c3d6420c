"""A provider call that already answered (with an error the customer saw) ends its change: it
is not taken for "in flight" (records.busy_with), which would refuse every other action of the
account for IN_FLIGHT (2 minutes) saying a change "is being confirmed" although nothing is."""

from __future__ import annotations

from typing import Any

from tests.billing.stripe_fixtures import fake_stripe
from tests.billing.test_pages import post_form
from tests.billing.test_stripe_pages import (
    SELF,
    STARTER,
    Shop,
    changes,
    customer_id,
    gate_offer_link,
    shop,
    subscription,
    token,
)

__all__ = ["fake_stripe", "shop"]


def test_a_retry_refused_by_stripe_does_not_block_a_cancel_for_two_minutes(
    shop: Shop, client: Any
) -> None:
    sub_id = shop.subscribed(STARTER)
    offer_id, link = gate_offer_link(shop)
    page = client.get(link).get_data(as_text=True)
    # 3-D Secure not completed / card declined: Stripe keeps the update pending (23 h).
    shop.fake.decline_next_payment(customer_id(shop.app))
    declined = post_form(client, page, f"/offers/{offer_id}/accept")
    assert "declined" in declined.get_data(as_text=True).lower()
    # The customer presses "Try again": Stripe refuses while it holds the pending update.
    again = post_form(client, client.get(link).get_data(as_text=True), f"/offers/{offer_id}/accept")
    assert again.status_code == 409, again.get_data(as_text=True)[:500]
    assert "Stripe holds that change" in again.get_data(as_text=True)
    # That request has answered: nothing of it is with Stripe any more.
    state = [(c.kind, c.status.value, c.error, c.result) for c in changes(shop.app)]
    # Now the customer gives up and cancels at the period end instead.
    cancel_page = client.get(f"/billing/cancel?t={token(shop.app)}").get_data(as_text=True)
    response = post_form(client, cancel_page, SELF, url="/billing/cancel")
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "ends on November 30, 2026" in body, (
        f"cancel answered {response.status_code}: {body[body.find('<h1') :][:400]}; changes {state}"
    )
    assert shop.stripe_subscription(sub_id).cancel_at_period_end is True
    assert subscription(shop.app).tier_id == "starter"
