"""The pricing page in headless Chromium: the JS interval switch, keyboard use, narrow screens."""

from __future__ import annotations

import struct

import pytest

pytestmark = pytest.mark.browser

PRO_PRICE = "td.price-cell[data-tier='pro'] .price:not([hidden]) .value"


def open_pricing(page_at, live_server, width: int, query: str = "", javascript: bool = True):
    page = page_at(width, javascript=javascript)
    page.goto(f"{live_server}/pricing{query}")
    return page


def test_interval_switch_changes_prices_without_a_reload(live_server, demo_catalog, page_at):
    page = open_pricing(page_at, live_server, 1280, "?currency=eur")
    assert page.inner_text(PRO_PRICE) == "€27.00"
    page.evaluate("window.__notReloaded = true")
    yearly = page.get_by_role("button", name="Yearly")
    yearly.click()
    assert page.inner_text(PRO_PRICE) == "€270.00"
    assert page.evaluate("window.__notReloaded") is True
    assert yearly.get_attribute("aria-pressed") == "true"
    assert page.get_by_role("button", name="Monthly").get_attribute("aria-pressed") == "false"
    assert page.url.endswith("/pricing?currency=eur&interval=year")
    assert page.get_attribute("[data-cta][data-tier='pro']", "data-interval") == "year"
    # The currency form now reloads into yearly prices.
    assert page.input_value("form.currency-form [name='interval']") == "year"
    assert page.inner_text("[data-interval-status]") == "Showing yearly prices."
    addon = page.inner_text("[data-addon='extended_support'] .addon-price")
    assert addon.strip() == "€450.00 / year"


def test_interval_switch_carries_the_interval_into_plan_links_that_name_it(
    live_server, demo_catalog, page_at
):
    page = open_pricing(page_at, live_server, 1280)
    # A plan link as a caller's PlanLinks makes it (tiers/pricing.py), next to one without.
    page.evaluate(
        """document.querySelector("td.cta-cell").insertAdjacentHTML("beforeend",
        '<a data-cta data-follows-interval id="checkout" ' +
        'href="/billing/checkout?tier=pro&interval=month">Go</a>' +
        '<a data-cta id="down" href="/billing/downgrade?tier=starter&interval=month">Down</a>')"""
    )
    page.get_by_role("button", name="Yearly").click()
    assert page.get_attribute("#checkout", "href").endswith(
        "/billing/checkout?tier=pro&interval=year"
    )
    # A move down keeps the subscription's own interval: switching there would bill now.
    assert page.get_attribute("#down", "href") == "/billing/downgrade?tier=starter&interval=month"
    contact = "[data-cta][data-tier='enterprise']"
    assert page.get_attribute(contact, "href") == "https://trackly.example/contact-sales"


def test_keyboard_reaches_the_switch_and_enter_and_space_activate_it(
    live_server, demo_catalog, page_at
):
    page = open_pricing(page_at, live_server, 1280)
    page.evaluate("window.__notReloaded = true")
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.matches('[data-interval-choice][value=year]')"):
            break
    else:
        pytest.fail("Tab never reached the Yearly button")
    outline = page.evaluate("getComputedStyle(document.activeElement).boxShadow")
    assert outline != "none"  # a visible focus ring
    page.keyboard.press("Enter")
    assert page.inner_text(PRO_PRICE) == "$290.00"
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.value") == "month"
    page.keyboard.press("Space")
    assert page.inner_text(PRO_PRICE) == "$29.00"
    assert page.evaluate("window.__notReloaded") is True


def test_without_javascript_the_switch_reloads_into_yearly_prices(
    live_server, demo_catalog, page_at
):
    page = open_pricing(page_at, live_server, 1280, "?currency=eur", javascript=False)
    page.get_by_role("button", name="Yearly").click()
    page.wait_for_url("**interval=year**")
    assert "currency=eur" in page.url
    assert page.inner_text(PRO_PRICE) == "€270.00"


def test_no_horizontal_page_overflow_at_375px(live_server, demo_catalog, page_at):
    for query in ("", "?interval=year&current=starter"):
        page = open_pricing(page_at, live_server, 375, query)
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        # The table scrolls inside its own box, with the feature names kept in view.
        wrap = page.locator(".table-wrap")
        assert wrap.evaluate("el => el.scrollWidth > el.clientWidth")
        wrap.evaluate("el => el.scrollLeft = 400")
        box = page.locator("tr[data-feature='projects'] th").bounding_box()
        assert 0 <= box["x"] < 40


def _png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


@pytest.mark.parametrize("width", [1280, 375])
def test_screenshots_of_the_full_page(live_server, demo_catalog, page_at, artifacts, width):
    page = open_pricing(page_at, live_server, width, "?interval=year")
    path = artifacts / f"pricing-{width}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 50_000
    shot_width, shot_height = _png_size(path)
    assert shot_width == width
    assert 1200 <= shot_height <= 4500
