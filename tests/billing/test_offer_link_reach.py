"""The billing page's own upgrade: billing page -> offer -> accept -> done -> cross-sell."""

from __future__ import annotations

import html
import re

from billing import portal
from tests.billing.conftest import set_gauge, subscribe
from tests.billing.test_pages import SELF, path, post_form
from tiergate.db import get_db


def test_a_cross_sell_bought_after_an_upgrade_from_the_billing_page_keeps_the_way_back(
    app, client, clock, demo_catalog
) -> None:
    # docs/billing.md: "An offer reached from the billing page ("Upgrade to ...") keeps the way
    # back to it": through the done page, its cross-sell and the add-on's outcome page (the
    # cross-sell's link was limited to the add-on, and the outcome page was a dead end).
    with get_db(app).session() as s:
        subscribe(s, "acme", clock, int(demo_catalog.version))
        set_gauge(s, "acme", "projects", 10, clock)
    billing = client.get(path(portal.account_link(app.config, "acme")))
    text = billing.get_data(as_text=True)
    up = re.search(r'href="([^"]*/billing/upgrade\?[^"]*tier=pro[^"]*)"', text)
    assert up is not None, "no Upgrade to Pro link on the billing page"
    offer = client.get(html.unescape(up.group(1)))
    assert offer.status_code == 302
    offer_url = path(offer.headers["Location"])
    offer_id = offer_url.split("/offers/", 1)[1].split("?", 1)[0]
    page = client.get(offer_url).get_data(as_text=True)
    accepted = post_form(client, page, f"/offers/{offer_id}/accept")
    assert accepted.status_code == 302, accepted.get_data(as_text=True)[:500]
    done = client.get(accepted.headers["Location"]).get_data(as_text=True)
    assert "Billing details" in done  # the way back, kept so far
    href = re.search(r'href="(/billing/addons/[^"]+)"', done)
    assert href is not None, "no cross-sell on the done page"
    addon_page = client.get(html.unescape(href.group(1))).get_data(as_text=True)
    addon_path = html.unescape(href.group(1)).split("?", 1)[0]
    bought = post_form(client, addon_page, SELF, url=addon_path)
    assert bought.status_code == 302, bought.get_data(as_text=True)[:500]
    outcome = client.get(bought.headers["Location"]).get_data(as_text=True)
    assert "Your add-on is active" in outcome
    assert "Billing details" in outcome, "the customer came from the billing page: no way back"
