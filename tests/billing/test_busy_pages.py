"""What the scheduling pages (cancel, downgrade, add-on removal) say when another change of
the account is with Stripe right now (records.busy_with): the flow's own answer, never its
success sentence (the page read "Your subscription ends on November 30, 2026" although nothing
was scheduled)."""

from __future__ import annotations

from typing import Any

import pytest

from billing import portal
from billing.records import BUSY
from billing.stripe_provider import StripeBilling
from tests.billing.race_helpers import tier_offer
from tests.billing.stripe_fixtures import WEBHOOK_SECRET, fake_stripe
from tests.billing.test_pages import path, post_form
from tests.billing.test_stripe_pages import PRO, SELF, Shop, shop, subscription, token
from tiergate.db import get_db

__all__ = ["fake_stripe", "shop"]


class SecondTab(StripeBilling):
    """While the upgrade's Stripe update runs, the customer submits a form in another tab."""

    def __init__(self, base: StripeBilling, other_tab: Any) -> None:
        super().__init__(base.client, webhook_secret=WEBHOOK_SECRET, base_url="http://localhost")
        self.other_tab = other_tab
        self.answers: list[Any] = []

    def _update(self, sub_id: str, params: Any, key: str, step: str) -> Any:
        if step == "modify" and not self.answers:
            self.answers.append(self.other_tab())
        return super()._update(sub_id, params, key, step)


@pytest.mark.parametrize(
    ("form", "action"),
    [
        ("/billing/cancel", "/billing/cancel"),
        ("/billing/downgrade?tier=starter", "/billing/downgrade"),
    ],
)
def test_a_schedule_refused_as_busy_does_not_tell_the_customer_it_was_scheduled(
    shop: Shop, client: Any, form: str, action: str
) -> None:
    sub_id = shop.subscribed(PRO)
    with get_db(shop.app).session() as s:
        offer_id = tier_offer(s, shop.clock, "acme", "business")
    link = path(portal.offer_link(shop.app.config, "acme", offer_id))
    offer_page = client.get(link).get_data(as_text=True)
    sep = "&" if "?" in form else "?"
    page = client.get(f"{form}{sep}t={token(shop.app)}").get_data(as_text=True)
    assert SELF in page, page[:3000]

    def other_tab() -> Any:
        response = post_form(client, page, SELF, url=action)
        return response.status_code, response.get_data(as_text=True)

    provider = SecondTab(shop.billing, other_tab)
    shop.app.extensions["tiergate.billing"] = provider
    upgraded = post_form(client, offer_page, f"/offers/{offer_id}/accept")
    assert upgraded.status_code == 302  # the upgrade went through
    [(status, body)] = provider.answers
    assert shop.stripe_subscription(sub_id).cancel_at_period_end is False  # nothing scheduled
    sub = subscription(shop.app)
    assert (sub.tier_id, sub.cancel_at_period_end, sub.scheduled_tier_id) == (
        "business",
        False,
        None,
    )
    alert = body[body.find("<h1") : body.find("</p>")]
    assert status == 503 and BUSY in body, alert
    assert "ends on" not in alert and "You move to" not in alert, alert
