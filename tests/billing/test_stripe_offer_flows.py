"""Offer flows through Stripe (the fake): Checkout's success URL, then the cross-sell."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from billing import portal
from gating.models import AccountAddOn
from tests.billing.conftest import add_account, gate_offer, set_gauge
from tests.billing.stripe_fixtures import fake_stripe  # noqa: F401
from tests.billing.test_pages import path, post_form
from tests.billing.test_stripe_pages import SELF, Shop, hosted_page, shop, subscription  # noqa: F401
from tiergate.clock import FixedClock
from tiergate.db import get_db


def _paid_gate_offer_through_checkout(
    shop: Shop,  # noqa: F811
    client: Any,
    clock: FixedClock,
) -> tuple[str, str]:
    with get_db(shop.app).session() as s:
        add_account(s, "newco", clock)
        set_gauge(s, "newco", "projects", 3, clock)
        offer = gate_offer(s, clock, "newco", "projects", used=3, requested=1)
        offer_id = offer.id
    link = path(portal.offer_link(shop.app.config, "newco", offer_id))
    page = client.get(link).get_data(as_text=True)
    response = post_form(client, page, f"/offers/{offer_id}/accept")
    assert response.status_code == 302
    pay_url = response.headers["Location"]
    assert pay_url.startswith(f"{shop.fake.api_base}/c/pay/cs_")
    status, _, back = hosted_page(pay_url, {"payment_method": "pm_card_visa"})
    assert status == 303
    return offer_id, back


def test_back_from_checkout_after_paying_a_gate_offer_the_customer_sees_the_outcome(
    shop: Shop,  # noqa: F811
    client: Any,
    clock: FixedClock,
) -> None:
    offer_id, back = _paid_gate_offer_through_checkout(shop, client, clock)
    assert urlsplit(back).path == f"/offers/{offer_id}/done"
    # The browser is back before the webhook: the page must not offer to pay again.
    first = client.get(path(back), follow_redirects=True)
    text = html.unescape(first.get_data(as_text=True))
    assert "Upgrade now" not in text, "paid on Stripe's page, asked to pay again"
    assert "You are now on Starter" in text  # confirmed with Stripe, as the billing page does


def test_after_checkout_the_cross_sell_bought_with_its_limited_link_reaches_stripe(
    shop: Shop,  # noqa: F811
    client: Any,
    clock: FixedClock,
) -> None:
    offer_id, back = _paid_gate_offer_through_checkout(shop, client, clock)
    shop.deliver()
    done = client.get(path(back), follow_redirects=True).get_data(as_text=True)
    assert "You are now on Starter" in done
    href = re.search(r'href="(/billing/addons/[^"]+)"', done)
    assert href is not None, "no cross-sell"
    url = html.unescape(href.group(1))
    addon_page = client.get(url).get_data(as_text=True)
    bought = post_form(client, addon_page, SELF, url=url.split("?", 1)[0])
    assert bought.status_code == 302, bought.get_data(as_text=True)[:400]
    outcome = client.get(bought.headers["Location"]).get_data(as_text=True)
    assert "Your add-on is active" in outcome
    with get_db(shop.app).session() as s:
        owned = s.scalars(select(AccountAddOn.addon_id).where(AccountAddOn.account_id == "newco"))
        assert list(owned) == [href.group(1).split("/billing/addons/", 1)[1].split("?", 1)[0]]
