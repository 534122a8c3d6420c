"""An add-on the customer removed (it ends at the period end) is not brought back by another
change made now: buying another add-on ends it at once, its unused time credited, and the add-on
page says so before the customer confirms."""

from __future__ import annotations

import html
import re
from typing import Any

from billing import portal, service
from tests.billing.stripe_fixtures import fake_stripe
from tests.billing.test_pages import SELF, post_form
from tests.billing.test_plan_life import MANUAL, _paid_starter_with_support, _renewal_at_period_end
from tests.billing.test_stripe_pages import STARTER, account_path, amount_on, shop, token
from tiergate.db import get_db

__all__ = ["fake_stripe", "shop"]  # fixtures used here


def test_buying_an_addon_ends_one_the_customer_removed_instead_of_bringing_it_back(
    app: Any, client: Any, clock: Any, demo_catalog: Any
) -> None:
    _paid_starter_with_support(app, clock)
    with get_db(app).session() as s:
        removed = service.remove_addon(s, clock, MANUAL, "acme", "extended_support")
    assert removed.message == "The add-on ends on December 29, 2026."
    clock.advance(minutes=5)
    token = portal.account_token(app.config, "acme")
    page = client.get(f"/billing/addons/seat_pack?t={token}").get_data(as_text=True)
    text = " ".join(re.sub(r"<[^>]+>", " ", html.unescape(page)).split())
    assert "Extended support, which you removed, ends now instead of on December 29" in text
    assert post_form(client, page, SELF, url="/billing/addons/seat_pack").status_code == 302
    renewal = _renewal_at_period_end(app, clock)
    assert "extended_support" not in [line["item_id"] for line in renewal.lines]
    assert "seat_pack" in [line["item_id"] for line in renewal.lines]


def test_through_stripe_the_removed_addon_ends_with_the_purchase_at_the_amount_shown(
    shop: Any, client: Any
) -> None:
    """The same through Stripe: Extended support bought, then removed (Stripe already carries
    the next period's items); buying the Seat pack ends it now, and Stripe charges exactly
    the amount the page showed, its credit included."""
    sub_id = shop.subscribed(STARTER)
    support = client.get(f"/billing/addons/extended_support?t={token(shop.app)}")
    page = support.get_data(as_text=True)
    assert post_form(client, page, SELF, url="/billing/addons/extended_support").status_code == 302
    shop.deliver()
    remove = client.get(account_path(shop.app)).get_data(as_text=True)
    done = post_form(client, remove, "/billing/addons/extended_support/remove")
    assert "The add-on ends on" in html.unescape(done.get_data(as_text=True))
    shop.deliver()
    page = client.get(f"/billing/addons/seat_pack?t={token(shop.app)}").get_data(as_text=True)
    assert "which you removed, ends now" in html.unescape(page)
    shown = amount_on(page, r"Add now — pay (\S+) today")
    response = post_form(client, page, SELF, url="/billing/addons/seat_pack")
    assert response.status_code == 302, response.get_data(as_text=True)
    assert shop.stripe_invoices()[-1].amount_paid == shown
    items = {i.price.lookup_key for i in shop.stripe_subscription(sub_id)["items"].data}
    assert not any("extended_support" in key for key in items), items


def test_a_removed_addon_can_be_kept_before_the_period_end(
    app: Any, client: Any, clock: Any, demo_catalog: Any
) -> None:
    """The customer removed Extended support, then changes their mind before the period end:
    the billing page says when it ends and offers "Keep it"; kept, it renews with the plan."""
    _paid_starter_with_support(app, clock)
    with get_db(app).session() as s:
        service.remove_addon(s, clock, MANUAL, "acme", "extended_support")
    page = client.get(f"/billing?t={portal.account_token(app.config, 'acme')}")
    text = html.unescape(page.get_data(as_text=True))
    assert "Extended support:\n    ends on December 29, 2026" in text
    kept = post_form(client, text, "/billing/addons/extended_support/keep")
    assert "Extended support stays: it renews with your plan." in html.unescape(
        kept.get_data(as_text=True)
    )
    page = client.get(f"/billing?t={portal.account_token(app.config, 'acme')}")
    assert "Remove at period end" in page.get_data(as_text=True)
    renewal = _renewal_at_period_end(app, clock)
    assert "extended_support" in [line["item_id"] for line in renewal.lines]


def test_through_stripe_a_removed_addon_kept_stays_on_the_subscription(
    shop: Any, client: Any
) -> None:
    sub_id = shop.subscribed(STARTER)
    support = client.get(f"/billing/addons/extended_support?t={token(shop.app)}")
    page = support.get_data(as_text=True)
    assert post_form(client, page, SELF, url="/billing/addons/extended_support").status_code == 302
    shop.deliver()
    remove = client.get(account_path(shop.app)).get_data(as_text=True)
    post_form(client, remove, "/billing/addons/extended_support/remove")
    shop.deliver()
    keep = client.get(account_path(shop.app)).get_data(as_text=True)
    done = post_form(client, keep, "/billing/addons/extended_support/keep")
    assert "stays: it renews with your plan" in html.unescape(done.get_data(as_text=True))
    shop.deliver()
    shop.fake.advance_to_period_end(sub_id)
    shop.deliver()
    items = {i.price.lookup_key for i in shop.stripe_subscription(sub_id)["items"].data}
    assert any("extended_support" in key for key in items), items
