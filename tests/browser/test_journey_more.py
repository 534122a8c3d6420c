"""More of the Trackly + tiergate journey in headless Chromium (manual billing), at phone and
desktop widths: the signed-in pricing page keeps the chosen currency, Trackly shows the plan
just bought, Back after a purchase is never a dead end, promotions are named on quotes and
invoices, and every page keeps the way back to the app."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from gating.models import Subscription, SubscriptionStatus
from tests.browser.test_upgrade_journey import (
    WORKSPACE,
    cents,
    create_project,
    journey,
    open_trackly,
)
from tests.factories import make_account
from tiergate.db import get_db

__all__ = ["journey", "open_trackly"]  # fixtures used here (browser: conftest)

pytestmark = pytest.mark.browser

WIDTHS = (375, 1280)


def returning_customer(app, clock, version: int) -> None:  # type: ignore[no-untyped-def]
    """The workspace had a plan that ended long ago: its first trial is used, so an upgrade
    from Free is paid at once."""
    with get_db(app).session() as s:
        make_account(s, WORKSPACE, now=clock.now())
        s.add(
            Subscription(
                account_id=WORKSPACE, tier_id="starter", interval="month", currency="usd",
                status=SubscriptionStatus.CANCELED, catalog_version=version,
                current_period_start=clock.now() - timedelta(days=90),
                current_period_end=clock.now() - timedelta(days=60),
                created_at=clock.now(), updated_at=clock.now(),
            )
        )  # fmt: skip


def open_billing(page, journey) -> str:
    """Trackly's "Billing" button: tiergate's billing page for the workspace; its URL."""
    page.get_by_role("button", name="Billing").click()
    page.wait_for_url(f"{journey.tiergate}/billing?**")
    return page.url


def account_token(billing_url: str) -> str:
    return parse_qs(urlsplit(billing_url).query)["t"][0]


def has_way_back(page, journey) -> bool:
    """Whether the page links to the account's billing page or back to Trackly."""
    hrefs = [a.get_attribute("href") or "" for a in page.locator("a").all()]
    return any(
        h.startswith(f"{journey.trackly}/")
        or (re.match(rf"^({re.escape(journey.tiergate)})?/billing\?", h) and "t=" in h)
        for h in hrefs
    )


def no_overflow(page) -> None:
    width = page.evaluate("innerWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width


# ---- 1. the pricing page's signed-in buttons lose the currency the customer chose --------------


@pytest.mark.parametrize("width", WIDTHS)
def test_a_euro_price_on_the_signed_in_pricing_page_leads_to_a_euro_checkout(
    journey, open_trackly, width
):
    page = open_trackly(width)
    t = account_token(open_billing(page, journey))
    page.goto(f"{journey.tiergate}/pricing?t={t}&currency=eur")
    no_overflow(page)
    price = page.inner_text("td.price-cell[data-tier=pro] .price:not([hidden]) .amount")
    assert price.startswith("\u20ac27.00")  # what the customer reads under Pro
    page.locator("a[data-cta][data-tier=pro]").click()
    page.wait_for_url(f"{journey.tiergate}/billing/checkout?**")
    no_overflow(page)
    # ... and what the checkout then asks for: the same plan in the same currency
    assert page.inner_text("[data-amount=recurring]") == "\u20ac27.00 per month"


# ---- 2. Trackly shows the old plan right after the customer paid -------------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_trackly_shows_the_plan_just_bought_from_billing_when_the_customer_comes_back(
    journey, open_trackly, width
):
    page = open_trackly(width)
    assert "Plan: Free" in page.inner_text("main")
    open_billing(page, journey)
    page.get_by_role("link", name=re.compile(r"^Starter: \$9\.00 per month$")).click()
    page.get_by_role("button", name="Start free trial").click()
    page.wait_for_url(f"{journey.tiergate}/billing/changes/**")
    assert page.inner_text("h1") == "You are now on Starter."
    assert journey.entitlements()["tier"]["id"] == "starter"
    page.get_by_role("link", name="Back to the app").click()
    page.wait_for_url(f"{journey.trackly}/projects")
    main = page.inner_text("main")
    assert "Plan: Starter" in main, main
    assert "0 of 10 used" in page.inner_text("table.usage")


def test_trackly_shows_the_plan_just_bought_from_the_pdf_offer(journey, open_trackly):
    page = open_trackly()
    create_project(page, "Website")
    page.get_by_role("link", name="PDF (upgrade)").click()
    page.wait_for_url(f"{journey.tiergate}/offers/**")
    page.locator("button.button-primary[data-pay]").click()
    page.wait_for_url(f"{journey.tiergate}/offers/*/done?**")
    page.get_by_role("link", name="Back to the app").click()
    page.wait_for_url(f"{journey.trackly}/projects")
    assert "Plan: Starter" in page.inner_text("main")
    # the PDF link is offered as included, not as an upgrade the customer just paid for
    assert page.get_by_role("link", name="PDF (upgrade)").count() == 0


# ---- 3. Back after a purchase lands on an error page with no way back ---------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_back_after_switching_to_yearly_does_not_strand_the_customer(journey, open_trackly, width):
    page = open_trackly(width)
    create_project(page, "Website")
    page.get_by_role("link", name="PDF (upgrade)").click()
    page.locator("button.button-primary[data-pay]").click()
    page.wait_for_url(f"{journey.tiergate}/offers/*/done?**")
    page.get_by_role("link", name="Back to the app").click()
    page.wait_for_url(f"{journey.trackly}/projects")
    open_billing(page, journey)
    page.get_by_role("link", name=re.compile("Switch to yearly billing")).click()
    page.get_by_role("button", name=re.compile("Switch now")).click()
    page.wait_for_url(f"{journey.tiergate}/billing/changes/**")
    response = page.go_back()  # the customer checks what they just agreed to
    assert response is not None
    assert response.status < 400 or has_way_back(page, journey), page.inner_text("main")


def test_back_after_starting_a_trial_does_not_strand_the_customer(journey, open_trackly):
    page = open_trackly()
    open_billing(page, journey)
    page.get_by_role("link", name=re.compile(r"^Starter: \$9\.00 per month$")).click()
    page.get_by_role("button", name="Start free trial").click()
    page.wait_for_url(f"{journey.tiergate}/billing/changes/**")
    response = page.go_back()
    assert response is not None
    # It says "change plans from the billing page" but links only to the anonymous pricing page.
    assert response.status < 400 or has_way_back(page, journey), page.inner_text("main")


# ---- 4. quotes and invoices show a promotion's internal id -------------------------------------


def test_the_yearly_switch_quote_names_the_promotion_not_its_catalog_id(
    journey, open_trackly, app, clock, demo_catalog
):
    returning_customer(app, clock, demo_catalog.version)
    page = open_trackly()
    create_project(page, "Website")
    page.get_by_role("link", name="PDF (upgrade)").click()
    page.locator("button.button-primary[data-pay]").click()  # Starter, monthly, paid now
    page.wait_for_url(f"{journey.tiergate}/offers/*/done?**")
    # An offer link opens that offer only: the billing pages are opened from the app.
    assert page.get_by_role("link", name="Billing details").count() == 0
    page.get_by_role("link", name="Back to the app").click()
    page.wait_for_url(f"{journey.trackly}/**")
    open_billing(page, journey)
    page.get_by_role("link", name=re.compile(r"Upgrade to Pro")).click()
    page.locator("button.button-primary[data-pay]").click()  # Pro, monthly
    page.wait_for_url(f"{journey.tiergate}/offers/*/done?**")
    page.get_by_role("link", name="Billing details").click()
    page.get_by_role("link", name=re.compile("Switch to yearly billing")).click()
    page.wait_for_url(f"{journey.tiergate}/billing/yearly?**")
    lines = page.inner_text("table.invoice-lines")
    assert "-$58.00" in lines  # the promotion is in the quote ...
    assert "yearly_launch" not in lines, lines  # ... under its name, not its catalog id


def test_the_yearly_switch_invoice_names_the_promotion_not_its_catalog_id(
    journey, open_trackly, app, clock, demo_catalog
):
    returning_customer(app, clock, demo_catalog.version)
    page = open_trackly()
    create_project(page, "Website")
    page.get_by_role("link", name="PDF (upgrade)").click()
    page.locator("button.button-primary[data-pay]").click()  # Starter, monthly, paid now
    page.wait_for_url(f"{journey.tiergate}/offers/*/done?**")
    # An offer link opens that offer only: the billing pages are opened from the app.
    assert page.get_by_role("link", name="Billing details").count() == 0
    page.get_by_role("link", name="Back to the app").click()
    page.wait_for_url(f"{journey.trackly}/**")
    open_billing(page, journey)
    page.get_by_role("link", name=re.compile(r"Upgrade to Pro")).click()
    page.wait_for_url(f"{journey.tiergate}/offers/**")
    page.locator(".alternative button[data-pay]").click()  # Pro yearly, with 20 % off
    page.wait_for_url(f"{journey.tiergate}/offers/*/done?**")
    lines = page.inner_text("table.invoice-lines")
    charged = int(page.locator("[data-charged]").get_attribute("data-charged"))
    assert charged == 22300 and cents(page.inner_text(".charged")) == 22300
    assert "yearly_launch" not in lines, lines
    assert "20 % off your first year" in lines


# ---- 5. removing an add-on loses the way back to Trackly ---------------------------------------


def test_removing_an_addon_keeps_the_way_back_to_trackly(journey, open_trackly):
    page = open_trackly(375)
    open_billing(page, journey)
    page.get_by_role("link", name=re.compile(r"^Starter: \$9\.00 per month$")).click()
    page.get_by_role("button", name="Start free trial").click()
    page.wait_for_url(f"{journey.tiergate}/billing/changes/**")
    page.get_by_role("link", name="Billing details").click()
    page.locator("ul.addons li", has_text="Seat pack").get_by_role("link", name="Add").click()
    page.get_by_role("button", name=re.compile("Add now")).click()
    page.wait_for_url(f"{journey.tiergate}/billing/changes/**")
    page.get_by_role("link", name="Billing details").click()
    page.get_by_role("button", name="Remove at period end").click()
    page.wait_for_load_state()
    assert "ends on" in page.inner_text("h1")
    back = page.get_by_role("link", name="Back to the app")
    assert back.count() == 1, page.inner_text("main")
    assert back.get_attribute("href") == f"{journey.trackly}/projects"


# ---- 6. the downgrade confirmation's wording --------------------------------------------------


def test_the_downgrade_confirmation_reads_as_a_sentence(journey, open_trackly):
    page = open_trackly()
    open_billing(page, journey)
    page.get_by_role("link", name=re.compile(r"^Pro: \$29\.00 per month$")).click()
    page.get_by_role("button", name="Start free trial").click()
    page.wait_for_url(f"{journey.tiergate}/billing/changes/**")
    page.get_by_role("link", name="Billing details").click()
    page.get_by_role("link", name=re.compile("Move down to Starter")).click()
    page.get_by_role("button", name=re.compile("Move to Starter on")).click()
    page.wait_for_load_state()
    heading = page.inner_text("h1")
    assert heading.startswith("You move to Starter")
    assert "Starter per month" not in heading, heading  # "You move to Starter per month on ..."


# ---- 7. a downgrade page left open while another tab upgrades ---------------------------------


def test_a_downgrade_page_left_open_while_another_tab_upgrades_shows_the_loss_again(
    journey, open_trackly
):
    page = open_trackly()
    open_billing(page, journey)
    page.get_by_role("link", name=re.compile(r"^Pro: \$29\.00 per month$")).click()
    page.get_by_role("button", name="Start free trial").click()
    page.wait_for_url(f"{journey.tiergate}/billing/changes/**")
    page.get_by_role("link", name="Billing details").click()
    page.wait_for_url(f"{journey.tiergate}/billing?**")
    billing = page.url
    page.get_by_role("link", name=re.compile("Move down to Starter")).click()
    page.wait_for_url(f"{journey.tiergate}/billing/downgrade?**")
    assert page.inner_text("h1") == "Move from Pro to Starter"
    # A second tab of the same browser: Business bought from the billing page.
    other = page.context.new_page()
    other.goto(billing)
    other.get_by_role("link", name=re.compile("Upgrade to Business")).click()
    other.wait_for_url(f"{journey.tiergate}/offers/**")
    other.locator("button.button-primary[data-pay]").click()
    other.wait_for_url(f"{journey.tiergate}/offers/*/done?**")
    assert journey.entitlements()["tier"]["id"] == "business"
    # Back in the first tab, the page still offers the move from Pro.
    with page.expect_navigation() as confirmed:
        page.get_by_role("button", name=re.compile("Move to Starter on")).click()
    assert confirmed.value is not None and confirmed.value.status == 409
    assert "Your plan changed since this page was opened" in page.inner_text("[role=alert]")
    assert page.inner_text("h1") == "Move from Business to Starter"
    assert "Single sign-on (SAML)" in page.locator("li.lost-feature").all_inner_texts()
    assert journey.entitlements()["tier"]["id"] == "business"  # nothing scheduled, nothing lost
    assert page.get_by_role("link", name="Keep my current plan").count() == 1
    # Confirming the page as it reads now schedules the move.
    page.get_by_role("button", name=re.compile("Move to Starter on")).click()
    page.wait_for_load_state()
    assert page.inner_text("h1").startswith("You move to Starter")
