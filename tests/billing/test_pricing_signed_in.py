"""The pricing page opened with the customer's signed link (`/pricing?t=...`, the token of the
billing page): their plan is marked, and each button leads to its exact quote."""

from __future__ import annotations

import html
import re
from typing import Any

from billing import portal
from gating.models import Offer, OfferTrigger
from tests.billing.conftest import add_account, subscribe
from tests.billing.test_pages import db, version

__all__ = ["db", "version"]  # fixtures used here


def _buttons(page: str) -> list[str]:
    """Where the plan buttons that are links lead."""
    return [html.unescape(h) for h in re.findall(r'href="([^"]+)" data-cta', page)]


def test_a_paid_customer_sees_their_plan_and_upgrade_buttons_that_quote_exactly(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    with db() as s:
        subscribe(s, "acme", clock, version)  # Starter
    token = portal.account_token(app.config, "acme")
    page = client.get(f"/pricing?t={token}").get_data(as_text=True)
    assert "Your plan" in page
    hrefs = _buttons(page)
    upgrades = [h for h in hrefs if h.startswith("/billing/upgrade?")]
    assert any("tier=pro" in h for h in upgrades) and any("tier=business" in h for h in upgrades)
    assert any(h.startswith("/billing/cancel?") for h in hrefs)  # Free: leaving the plan
    pro = next(h for h in upgrades if "tier=pro" in h)
    offer = client.get(pro)
    assert offer.status_code == 302 and "/offers/off_" in offer.headers["Location"]
    with db() as s:
        [made] = s.query(Offer).all()
        assert (made.trigger, made.to_tier_id) == (OfferTrigger.PRICING_PAGE, "pro")


def test_a_free_customer_is_sent_to_checkout_for_the_plan_chosen(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    with db() as s:
        add_account(s, "newco", clock)
    token = portal.account_token(app.config, "newco")
    page = client.get(f"/pricing?t={token}&interval=year").get_data(as_text=True)
    business = next(h for h in _buttons(page) if "tier=business" in h)
    response = client.get(business)
    assert response.status_code == 302
    assert "/billing/checkout?" in response.headers["Location"]
    assert "interval=year" in response.headers["Location"]


def test_an_expired_or_forged_link_still_shows_the_plans_and_says_why_buttons_are_off(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    response = client.get("/pricing?t=forged")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "This billing link is not valid" in page or "not valid" in page
    assert not any(h.startswith("/billing/") for h in _buttons(page))
