"""Customer-facing pages in headless Chromium (tiergate alone, manual billing): what a careful
customer reads on the signed-in pricing page, the add-on page and the billing page is what is
charged, and Back after paying says what was bought."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from billing import portal
from billing.models import Invoice
from billing.webhooks import record_invoice
from gating.models import Account
from tests.billing.conftest import PERIOD_END, subscribe
from tiergate.db import get_db

pytestmark = pytest.mark.browser

PRICE = "td.price-cell[data-tier='{}'] .price:not([hidden]) .value"


def billing_url(app: Any, base: str, path: str = "/billing", **query: str) -> str:
    """A signed billing link for `acme` (as POST /v1/accounts/acme/billing_link gives it)."""
    app.config["BASE_URL"] = base  # the redirects tiergate builds point at the live port
    token = portal.account_token(app.config, "acme")
    return f"{base}{path}?{urlencode({'t': token, **query})}"


def paid(app: Any) -> list[int]:
    with get_db(app).sessionmaker() as s:
        rows = s.scalars(select(Invoice).where(Invoice.account_id == "acme").order_by(Invoice.id))
        return [i.amount_paid for i in rows]


def test_a_euro_subscriber_sees_euro_prices_on_the_signed_in_pricing_page(
    app, clock, demo_catalog, live_server, page_at
):
    """A customer paying Starter in euros opens the pricing page from the app
    (`/pricing?t=<billing link token>`, docs/integration.md): every price is in euros, the
    currency the plan is billed in, and "Upgrade" under Pro quotes the price read there."""
    with get_db(app).session() as s:
        subscribe(s, "acme", clock, demo_catalog.version, currency="eur")
    page = page_at(1280)
    page.goto(billing_url(app, live_server, "/pricing"))
    shown = page.inner_text(PRICE.format("pro"))
    page.locator("a[data-cta][data-tier=pro]").click()
    page.wait_for_url(f"{live_server}/offers/**")
    quoted = page.inner_text("[data-amount=new_recurring]")
    assert quoted == "€27.00 per month"
    assert quoted.startswith(shown), f"pricing page showed {shown!r}, the offer quotes {quoted!r}"


def test_back_after_buying_the_onboarding_package_says_it_was_bought(
    app, clock, demo_catalog, live_server, page_at
):
    """The customer buys the one-time Onboarding package ($299.00) from the billing page, then
    presses Back a minute later: the page says it was bought and that its button buys it
    again; the customer does not, and is charged once."""
    with get_db(app).session() as s:
        subscribe(s, "acme", clock, demo_catalog.version)
    page = page_at(375)
    page.goto(billing_url(app, live_server))
    page.locator("ul.addons li", has_text="Onboarding package").get_by_role(
        "link", name="Add"
    ).click()
    page.get_by_role("button", name="Add now — pay $299.00 today").click()
    page.wait_for_url(f"{live_server}/billing/changes/**")
    assert page.locator("[data-charged]").inner_text() == "$299.00"
    clock.advance(minutes=1)  # the customer reads the receipt, then goes back
    page.go_back()
    page.reload()  # what the browser shows after Back: the page is not cached
    assert "You bought Onboarding package on" in page.inner_text("main")
    assert page.get_by_role("button", name="Add now — pay $299.00 today").count() == 0
    assert page.get_by_role("button", name="Buy again — pay $299.00 today").count() == 1
    assert paid(app) == [29900]


def test_an_unpaid_invoice_is_listed_with_the_amount_owed(
    app, clock, demo_catalog, live_server, page_at
):
    """A Stripe renewal failed: the subscription is past due and Stripe's invoice for $29.00
    is open. The billing page asks the customer to pay it, and its invoice list shows it as
    unpaid with the $29.00 due."""
    with get_db(app).session() as s:
        subscribe(s, "acme", clock, demo_catalog.version, tier="pro", status="past_due")
        account = s.get(Account, "acme")
        account.subscription.past_due_since = clock.now()
        record_invoice(
            s,
            clock,
            account,
            {
                "id": "in_renewal_failed",
                "object": "invoice",
                "status": "open",
                "currency": "usd",
                "amount_due": 2900,
                "amount_paid": 0,
                "billing_reason": "subscription_cycle",
                "created": int(PERIOD_END.timestamp()) - 3600,
                "lines": {"data": [{"description": "1 × Pro (at $29.00 / month)", "amount": 2900}]},
            },
        )
    page = page_at(375)
    page.goto(billing_url(app, live_server))
    assert "Your last payment failed" in page.inner_text("[role=alert]")
    row = page.locator("table.invoices tr").first
    assert "Unpaid" in row.inner_text()
    assert row.locator("td.amount").inner_text() == "$29.00 due"


def test_a_refused_form_page_keeps_the_way_back_to_the_app(
    app, clock, demo_catalog, live_server, page_at
):
    """The customer's session cookie is gone when they press "Upgrade now" (the browser dropped
    it, or the page stayed open past the CSRF token's hour): the form is refused, nothing is
    charged, the page says so in plain words and keeps the way back to the app."""
    from tests.billing.conftest import gate_offer, set_gauge

    app.config["BILLING_RETURN_ORIGINS"] = "https://app.example"
    back = "https://app.example/projects"
    with get_db(app).session() as s:
        subscribe(s, "acme", clock, demo_catalog.version)
        set_gauge(s, "acme", "projects", 10, clock)
        offer_id = gate_offer(s, clock, "acme", "projects", used=10, requested=1).id
    app.config["BASE_URL"] = live_server
    page = page_at(375)
    page.goto(portal.offer_link(app.config, "acme", offer_id, back))
    page.context.clear_cookies()
    with page.expect_response(f"{live_server}/offers/{offer_id}/accept") as answer:
        page.locator("button.button-primary[data-pay]").click()
    assert answer.value.status == 400
    assert paid(app) == []
    hrefs = page.locator("main a").evaluate_all("links => links.map(a => a.href)")
    assert back in hrefs, f"{page.inner_text('main')!r} links only to {hrefs}"
    assert "nothing was changed or charged" in page.inner_text("main")


def test_a_new_customer_follows_the_yearly_alternative_and_pays_the_yearly_amount_shown(
    app, clock, demo_catalog, live_server, page_at
):
    """A free account subscribing to Business monthly reads when it renews and for how much,
    and the yearly alternative with its saving; following "Pay yearly" opens the same page
    billed yearly, whose amount due today is the amount charged."""
    from tests.billing.conftest import add_account

    with get_db(app).session() as s:
        add_account(s, "acme", clock)
    page = page_at(375)
    page.goto(billing_url(app, live_server, "/billing/checkout", tier="business", interval="month"))
    assert page.inner_text("[data-amount=next_renewal]") == "$79.00 on December 15, 2026"
    alternative = page.locator(".alternative")
    assert "Or pay yearly: $790.00 per year, saving $158.00." in alternative.inner_text()
    assert alternative.locator("[data-amount=yearly_due_today]").inner_text() == "$632.00"
    alternative.get_by_role("link", name="Pay yearly").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Subscribe to Business").is_visible()
    assert page.inner_text("[data-amount=recurring]") == "$790.00 per year"
    assert page.inner_text("[data-amount=due_today]") == "$632.00"
    assert page.inner_text("[data-amount=next_renewal]") == "$790.00 on November 15, 2027"
    assert page.locator(".alternative").count() == 0  # already yearly
    page.get_by_role("button", name="Subscribe — pay $632.00 today").click()
    page.wait_for_load_state()
    assert paid(app) == [63200]
