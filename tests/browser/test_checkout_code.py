"""A promotion code typed on the checkout page, in Chromium: the discount and the lower amount
appear before paying, the amount charged is the amount shown, and a wrong code says why."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from billing import portal
from billing.models import Invoice
from tests.billing.conftest import add_account
from tests.billing.test_pages import WELCOME
from tests.conftest import DEMO_CATALOG
from tiergate.db import get_db
from tiers import store
from tiers.loader import load_catalog_file


def checkout_url(app: Any, clock: Any, base: str, tmp_path: Any) -> str:
    source_path = tmp_path / "catalog.yaml"
    source_path.write_text(DEMO_CATALOG.read_text().replace("promotions:\n", WELCOME, 1))
    catalog, source = load_catalog_file(source_path)
    with get_db(app).session() as s:
        store.publish(s, catalog, source=source, author="t", note="code", now=clock.now())
        add_account(s, "newco", clock)
    token = portal.account_token(app.config, "newco")
    return f"{base}/billing/checkout?t={token}&tier=business&interval=month"


def test_a_typed_code_lowers_the_amount_shown_and_that_amount_is_charged(
    app: Any, clock: Any, live_server: str, page_at: Any, tmp_path: Any
) -> None:
    page = page_at(1280)
    page.goto(checkout_url(app, clock, live_server, tmp_path))
    assert page.locator('[data-amount="due_today"]').inner_text() == "$79.00"
    page.get_by_label("Promotion code").fill("welcome25")
    page.get_by_label("Promotion code").press("Enter")  # the keyboard is enough
    page.wait_for_load_state()
    assert page.locator('[data-amount="discount"]').inner_text() == "-$19.75"
    assert page.locator('[data-amount="due_today"]').inner_text() == "$59.25"
    assert page.get_by_text("Promotion (code WELCOME25)").is_visible()
    page.get_by_role("button", name="Subscribe — pay $59.25 today").click()
    page.wait_for_load_state()
    with get_db(app).sessionmaker() as s:
        [invoice] = s.scalars(select(Invoice).where(Invoice.account_id == "newco")).all()
    assert invoice.amount_paid == 5925


def test_a_wrong_code_is_explained_next_to_the_field_and_the_full_price_stays(
    app: Any, clock: Any, live_server: str, page_at: Any, tmp_path: Any
) -> None:
    page = page_at(375)
    page.goto(checkout_url(app, clock, live_server, tmp_path))
    field = page.get_by_label("Promotion code")
    field.fill("SPRING")
    field.press("Enter")
    page.wait_for_load_state()
    alert = page.get_by_role("alert")
    assert alert.inner_text() == "The promotion code 'SPRING' does not exist."
    assert page.get_by_label("Promotion code").get_attribute("aria-invalid") == "true"
    assert page.locator('[data-amount="due_today"]').inner_text() == "$79.00"


def offer_url(app: Any, clock: Any, base: str, tmp_path: Any) -> str:
    """acme on Starter at 10 of 10 projects, with Pro codes running: the gate's offer link."""
    from tests.billing.conftest import gate_offer, set_gauge, subscribe
    from tests.billing.test_pages import publish_upgrade_codes

    publish_upgrade_codes(app, clock, tmp_path)
    with get_db(app).session() as s:
        subscribe(s, "acme", clock, store.load(s).version)
        set_gauge(s, "acme", "projects", 10, clock)
        offer_id = gate_offer(s, clock, "acme", "projects", used=10, requested=1).id
    return portal.offer_link(app.config, "acme", offer_id).replace("http://localhost", base)


def test_a_code_typed_on_the_offer_page_is_the_amount_charged_on_a_phone(
    app: Any, clock: Any, live_server: str, page_at: Any, tmp_path: Any
) -> None:
    page = page_at(375)
    page.goto(offer_url(app, clock, live_server, tmp_path))
    assert page.locator('[data-amount="due_today"]').inner_text().startswith("$10.00")
    field = page.get_by_label("Promotion code")
    field.fill("prohalf")
    field.press("Enter")
    page.wait_for_load_state()
    assert page.locator('[data-amount="due_today"]').inner_text().startswith("$2.75")
    assert page.get_by_text("Code PROHALF (Half off your first Pro month)").is_visible()
    button = page.get_by_role("button", name="Upgrade now — pay $2.75 today")
    box = button.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375  # fits
    button.click()
    page.wait_for_load_state()
    with get_db(app).sessionmaker() as s:
        [invoice] = s.scalars(select(Invoice).where(Invoice.account_id == "acme")).all()
    assert invoice.amount_paid == 275


def test_a_wrong_code_on_the_offer_page_is_explained_and_the_price_stays(
    app: Any, clock: Any, live_server: str, page_at: Any, tmp_path: Any
) -> None:
    page = page_at(1280)
    page.goto(offer_url(app, clock, live_server, tmp_path))
    field = page.get_by_label("Promotion code")
    field.fill("OLD10")
    field.press("Enter")
    page.wait_for_load_state()
    assert page.get_by_role("alert").inner_text() == "The promotion code 'OLD10' has expired."
    assert page.get_by_label("Promotion code").get_attribute("aria-invalid") == "true"
    assert page.locator('[data-amount="due_today"]').inner_text().startswith("$10.00")
