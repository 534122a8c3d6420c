"""A Checkout page Stripe expired (after 24 hours) is not offered again: choosing the same plan
makes a new page that can be paid."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.billing.conftest import add_account
from tests.billing.stripe_fixtures import fake_stripe
from tests.billing.test_pages import SELF, post_form
from tests.billing.test_stripe_pages import Shop, account_path, shop
from tiergate.db import get_db

__all__ = ["fake_stripe", "shop"]


def _checkout(shop: Shop, client: Any) -> str:
    link = account_path(shop.app, "newco").replace(
        "/billing?", "/billing/checkout?tier=business&interval=month&"
    )
    page = client.get(link).get_data(as_text=True)
    response = post_form(client, page, SELF, url="/billing/checkout")
    assert response.status_code == 302, response.get_data(as_text=True)[:1500]
    return str(response.headers["Location"].rsplit("/", 1)[1])


def test_the_same_plan_chosen_after_its_checkout_page_expired_gets_a_payable_page(
    shop: Shop, client: Any
) -> None:
    shop.fake.reset(now=shop.clock.now())
    with get_db(shop.app).session() as s:
        add_account(s, "newco", shop.clock)
    first = _checkout(shop, client)
    shop.clock.advance(hours=25)
    shop.fake.advance(timedelta(hours=25))
    shop.deliver()  # checkout.session.expired: acknowledged, not handled
    assert shop.fake.get(first)["status"] == "expired"
    again = _checkout(shop, client)
    assert shop.fake.get(again)["status"] == "open", "sent back to the expired Checkout page"
