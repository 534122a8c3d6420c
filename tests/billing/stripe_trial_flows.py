"""Driving the newest trial flows on the fake Stripe without delivering webhooks."""

# ruff: noqa: F811
from __future__ import annotations

import html
import re
from typing import Any

from billing import portal
from tests.billing.conftest import add_account, gate_offer, set_gauge
from tests.billing.stripe_fixtures import fake_stripe  # noqa: F401
from tests.billing.test_pages import path, post_form
from tests.billing.test_stripe_pages import SELF, Shop, hosted_page, shop, subscription  # noqa: F401
from tiergate.clock import FixedClock
from tiergate.db import get_db

__all__ = ["fake_stripe", "shop"]


def trial_from_offer(
    shop: Shop, client: Any, clock: FixedClock, feature: str = "projects", used: int = 3,
    extra: dict[str, str] | None = None,
) -> tuple[str, str]:  # fmt: skip
    """newco (Free) takes a trial from the gate's offer through Checkout and comes back: the
    return link settles it (no webhook delivered). Returns (offer id, success page path)."""
    with get_db(shop.app).session() as s:
        add_account(s, "newco", clock)
        set_gauge(s, "newco", feature, used, clock)
        offer_id = gate_offer(s, clock, "newco", feature, used=used, requested=1).id
    link = path(portal.offer_link(shop.app.config, "newco", offer_id))
    page = client.get(link).get_data(as_text=True)
    response = post_form(client, page, f"/offers/{offer_id}/accept", extra)
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    status, _, back = hosted_page(response.headers["Location"], {"payment_method": "pm_card_visa"})
    assert status == 303
    done = client.get(path(back))
    assert done.status_code == 200, done.get_data(as_text=True)[:300]
    assert subscription(shop.app, "newco").status.value == "trialing"
    return offer_id, path(back)


def buy_cross_sell(client: Any, back: str) -> None:
    done = client.get(back, follow_redirects=True).get_data(as_text=True)
    href = re.search(r'href="(/billing/addons/[^"]+)"', done)
    assert href is not None, "no cross-sell"
    url = html.unescape(href.group(1))
    addon_page = client.get(url).get_data(as_text=True)
    bought = post_form(client, addon_page, SELF, url=url.split("?", 1)[0])
    assert bought.status_code == 302, bought.get_data(as_text=True)[:400]


EXTEND = {"kind": "trial_extension", "days": 7, "reason": "asked for more time to evaluate"}


def extend(client: Any, make_api_key: Any, days: int = 7) -> Any:
    key = make_api_key("accounts")
    return client.post(
        "/v1/accounts/newco/overrides",
        json={**EXTEND, "days": days},
        headers={"Authorization": f"Bearer {key}"},
    )
