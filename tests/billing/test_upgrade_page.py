"""The upgrade a signed-in customer chooses on the pricing page (or the billing page):
`/billing/upgrade?t=...&tier=pro` quotes it as an offer (trigger `pricing_page`) with the same
exact amounts as the gate's own offers, and the offer page charges them."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from billing import portal
from gating.models import Account, Offer, OfferTrigger
from tests.billing.conftest import add_account, subscribe
from tests.billing.test_pages import db, invoices, path, post_form, version

__all__ = ["db", "version"]  # fixtures used here


def _upgrade(app: Any, client: Any, account_id: str, tier: str, **extra: str) -> Any:
    token = portal.account_token(app.config, account_id)
    query = "&".join(f"{k}={v}" for k, v in extra.items())
    return client.get(f"/billing/upgrade?t={token}&tier={tier}" + (f"&{query}" if query else ""))


def test_a_paid_account_gets_an_exact_offer_for_the_tier_it_chose_and_pays_it(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    with db() as s:
        subscribe(s, "acme", clock, version)  # Starter, halfway through the period
    response = _upgrade(app, client, "acme", "pro")
    assert response.status_code == 302
    target = urlsplit(response.headers["Location"])
    offer_id = target.path.rsplit("/", 1)[1]
    with db() as s:
        offer = s.get(Offer, offer_id)
        assert offer.trigger is OfferTrigger.PRICING_PAGE
        assert (offer.from_tier_id, offer.to_tier_id, offer.amount_due_today) == (
            "starter",
            "pro",
            1000,  # 14.50 - 4.50, as the gate quotes it
        )
    page = client.get(path(response.headers["Location"])).get_data(as_text=True)
    assert "Upgrade now — pay $10.00 today" in page
    # Reloading the pricing page's link does not mint another offer.
    again = _upgrade(app, client, "acme", "pro")
    assert urlsplit(again.headers["Location"]).path == target.path
    assert post_form(client, page, f"/offers/{offer_id}/accept").status_code == 302
    with db() as s:
        assert s.get(Account, "acme").subscription.tier_id == "pro"
    assert [i.amount_paid for i in invoices(db)][-1] == 1000


def test_a_free_account_goes_to_checkout_for_the_tier_and_interval_it_chose(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    with db() as s:
        add_account(s, "newco", clock)
    response = _upgrade(app, client, "newco", "business", interval="year")
    assert response.status_code == 302
    target = urlsplit(response.headers["Location"])
    assert target.path == "/billing/checkout"
    query = parse_qs(target.query)
    assert (query["tier"], query["interval"]) == (["business"], ["year"])


def test_a_tier_that_is_not_an_upgrade_or_not_listed_is_refused_and_makes_no_offer(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    with db() as s:
        subscribe(s, "acme", clock, version, tier="pro")
    lower = _upgrade(app, client, "acme", "starter")
    assert lower.status_code == 409
    assert "not an upgrade" in lower.get_data(as_text=True)
    assert _upgrade(app, client, "acme", "nope").status_code == 404
    assert _upgrade(app, client, "acme", "team_legacy").status_code == 404  # hidden
    with db() as s:
        assert s.scalars(select(Offer)).all() == []
    forged = client.get("/billing/upgrade?t=forged&tier=business")
    assert forged.status_code in (400, 401, 403)


def test_the_billing_page_of_a_paid_account_links_each_higher_tier_to_its_exact_quote(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    import html
    import re

    with db() as s:
        subscribe(s, "acme", clock, version)
    token = portal.account_token(app.config, "acme")
    page = client.get(f"/billing?t={token}").get_data(as_text=True)
    links = re.findall(r'href="(/billing/upgrade\?[^"]+)">Upgrade to (\w+)', page)
    assert [name for _, name in links] == ["Pro", "Business"]
    offer_page = client.get(html.unescape(links[0][0]))
    assert offer_page.status_code == 302 and "/offers/off_" in offer_page.headers["Location"]


@pytest.mark.parametrize(
    ("tier", "interval"),
    [("starter", "month"), ("pro", "month"), ("starter", "year"), ("team_legacy", "month")],
)
def test_every_upgrade_link_on_the_billing_page_leads_to_a_quote(
    app: Any, client: Any, db: Any, clock: Any, version: int, tier: str, interval: str
) -> None:
    """The billing page lists a tier under "Upgrade to" only when /billing/upgrade can quote
    it: no link ends on "not an upgrade", whatever plan the account holds."""
    import html
    import re

    with db() as s:
        subscribe(s, "acme", clock, version, tier=tier, interval=interval)
    token = portal.account_token(app.config, "acme")
    page = client.get(f"/billing?t={token}").get_data(as_text=True)
    links = re.findall(r'href="(/billing/upgrade\?[^"]+)"', page)
    assert links or tier == "business"
    for link in links:
        response = client.get(html.unescape(link))
        assert response.status_code == 302, (link, response.get_data(as_text=True)[:300])
        assert "/offers/off_" in response.headers["Location"]
