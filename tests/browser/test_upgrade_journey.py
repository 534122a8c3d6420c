"""The end user's upgrade journey in headless Chromium, across Trackly (examples/hostapp) and
tiergate, each on its own live port, with manual billing (no Stripe key).

Trackly's free tier holds 3 projects; the 4th sends the browser to tiergate's offer page, whose
amounts must be the ones the offer API quotes and the ones charged (UPSELL.md rules 5 and 7).
"""

from __future__ import annotations

import re
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from werkzeug.serving import BaseWSGIServer, make_server

from examples.hostapp import create_hostapp
from gating import apikeys
from tiergate.db import get_db

pytestmark = pytest.mark.browser

WORKSPACE = "acme"
UPGRADE = "button.button-primary[data-pay]"
MONEY = re.compile(r"\$(\d[\d,]*)\.(\d\d)")


@dataclass(frozen=True)
class Journey:
    tiergate: str
    trackly: str
    api_key: str

    def offer(self, offer_id: str) -> dict[str, Any]:
        """The offer as tiergate's API quotes it to the host app."""
        response = requests.get(
            f"{self.tiergate}/v1/offers/{offer_id}",
            params={"account_id": WORKSPACE},
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=5,
        )
        response.raise_for_status()
        return response.json()

    def entitlements(self) -> dict[str, Any]:
        response = requests.get(
            f"{self.tiergate}/v1/accounts/{WORKSPACE}/entitlements",
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=5,
        )
        response.raise_for_status()
        return response.json()


@contextmanager
def serving(server: BaseWSGIServer) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def journey(app, demo_catalog, clock, tmp_path) -> Iterator[Journey]:
    """tiergate and Trackly on their own ports; tiergate's links use its real address."""
    with get_db(app).session() as session:
        _, key = apikeys.create_key(session, clock, name="trackly", scopes=["gate", "accounts"])
    # Bind first: the customer links tiergate builds must carry the port it really serves on.
    tiergate_server = make_server("127.0.0.1", 0, app, threaded=True)
    tiergate_url = f"http://127.0.0.1:{tiergate_server.server_port}"
    app.config["BASE_URL"] = tiergate_url
    trackly = create_hostapp(
        {
            "TESTING": True,
            "SECRET_KEY": "trackly-test",
            "DATABASE": str(tmp_path / "trackly.db"),
            "TIERGATE_URL": tiergate_url,
            "TIERGATE_API_KEY": key,
        }
    )
    trackly_server = make_server("127.0.0.1", 0, trackly, threaded=True)
    trackly_url = f"http://127.0.0.1:{trackly_server.server_port}"
    app.config["BILLING_RETURN_ORIGINS"] = trackly_url  # "Back to the app" may go to Trackly
    with serving(tiergate_server), serving(trackly_server):
        yield Journey(tiergate_url, trackly_url, key)


@pytest.fixture
def open_trackly(journey, page_at):
    """`open_trackly(width)`: a page signed in to Trackly as the free workspace `acme`."""

    def open_page(width: int = 1280):
        page = page_at(width)
        page.set_default_timeout(10_000)
        page.goto(journey.trackly)
        page.fill("input[name=workspace]", WORKSPACE)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{journey.trackly}/projects")
        return page

    return open_page


def create_project(page, name: str) -> None:
    page.fill("input[name=name]", name)
    page.get_by_role("button", name="Create project").click()
    page.wait_for_load_state()


def hit_the_project_limit(page, journey: Journey) -> str:
    """Create the 3 free projects and try a 4th: the browser lands on the offer; its id."""
    for name in ("Website", "Mobile app", "Launch"):
        create_project(page, name)
        assert page.url == f"{journey.trackly}/projects"
    assert "3 of 3 used" in page.inner_text("table.usage")
    create_project(page, "One too many")
    page.wait_for_url(f"{journey.tiergate}/offers/**")
    return urlsplit(page.url).path.rsplit("/", 1)[-1]


def cents(text: str) -> int:
    """The first dollar amount in `text`, in cents: "$1,234.50 per month" -> 123450."""
    found = MONEY.search(text)
    assert found, f"no amount in {text!r}"
    return int(found.group(1).replace(",", "")) * 100 + int(found.group(2))


def shown(page, amount: str) -> str:
    return page.inner_text(f"[data-amount='{amount}']").strip()


def test_the_fourth_project_offers_starter_at_the_quoted_price_and_upgrading_raises_the_limit(
    journey, open_trackly
):
    page = open_trackly()
    offer_id = hit_the_project_limit(page, journey)
    offer = journey.offer(offer_id)
    query = parse_qs(urlsplit(page.url).query)
    assert query["return_url"] == [f"{journey.trackly}/projects"]

    # UPSELL 5: exact numbers, in the customer's usage terms, equal to the API's quote.
    assert page.inner_text("h1") == "Upgrade to Starter"
    assert page.inner_text("[data-unlocked]") == "3 of 3 projects used \u2192 10 projects"
    assert (offer["usage"]["text"], offer["to"]["limit_text"]) == (
        "3 of 3 projects used",
        "10 projects",
    )
    # A first plan starts with Starter's 14-day trial (as at checkout): nothing today.
    assert shown(page, "new_recurring") == "$9.00 per month"
    assert shown(page, "due_today") == "$0.00"
    assert shown(page, "next_renewal") == "$9.00 on November 29, 2026"
    assert offer["display"]["next_renewal"] == "$9.00 on November 29, 2026"
    assert "Starter starts with a 14-day free trial: nothing is charged today" in page.inner_text(
        "main"
    )
    assert cents(shown(page, "new_recurring")) == offer["new_recurring_amount"] == 900
    assert cents(shown(page, "due_today")) == offer["amount_due_today"] == 0
    assert cents(shown(page, "next_renewal")) == offer["next_renewal_amount"] == 900
    button = page.locator(UPGRADE)
    assert button.inner_text() == "Upgrade now \u2014 pay $0.00 today"
    assert button.get_attribute("data-pay") == str(offer["amount_due_today"])
    # UPSELL 7 and 1: "Not now" is there; at most one add-on and one alternative.
    assert page.get_by_role("button", name="Not now").is_visible()
    assert page.locator("input[name=addon]").count() <= 1
    assert page.locator(".alternative").count() <= 1
    # The one alternative: Starter paid yearly, at the amount the API quoted for it.
    yearly = offer["yearly_alternative"]
    yearly_button = page.locator(".alternative button[data-pay]")
    assert yearly_button.inner_text() == "Pay yearly \u2014 $0.00 today"
    assert yearly_button.get_attribute("data-pay") == str(yearly["amount_due_today"]) == "0"
    assert "nothing today, then $90.00 on November 29, 2026" in page.inner_text(".alternative")

    # Keyboard: Tab reaches the upgrade button, with a visible focus ring, and Enter presses it.
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.matches('button.button-primary[data-pay]')"):
            break
    else:
        pytest.fail("Tab never reached the upgrade button")
    assert page.evaluate("getComputedStyle(document.activeElement).boxShadow") != "none"
    page.keyboard.press("Enter")
    page.wait_for_url(f"{journey.tiergate}/offers/{offer_id}/done?**")

    # The amount charged is the amount shown; one post-purchase add-on at most.
    assert page.inner_text("h1") == "You are now on Starter."
    charged = page.locator("[data-charged]")
    assert charged.get_attribute("data-charged") == str(offer["amount_due_today"])
    assert charged.inner_text() == "$0.00"
    assert page.locator("aside.cross-sell").count() <= 1
    # Accepted now; the funnel counts it paid at the trial's first charge.
    assert journey.offer(offer_id)["status"] == "accepted"
    assert journey.entitlements()["tier"]["id"] == "starter"

    # Back in Trackly the limit is 10, and the 4th project goes through.
    back = page.get_by_role("link", name="Back to the app")
    assert back.get_attribute("href") == f"{journey.trackly}/projects"
    back.click()
    page.wait_for_url(f"{journey.trackly}/projects")
    assert "Plan: Starter" in page.inner_text("main")
    assert "3 of 10 used" in page.inner_text("table.usage")
    create_project(page, "Fourth")
    assert page.url == f"{journey.trackly}/projects"
    assert "Project 'Fourth' created." in page.inner_text("p.flash")
    assert "4 of 10 used" in page.inner_text("table.usage")


def test_not_now_goes_back_to_trackly_and_the_next_refusal_explains_instead_of_prompting(
    journey, open_trackly
):
    page = open_trackly()
    offer_id = hit_the_project_limit(page, journey)
    page.get_by_role("button", name="Not now").click()
    page.wait_for_url(f"{journey.trackly}/projects")
    assert journey.offer(offer_id)["status"] == "dismissed"

    # During the cooldown the 4th project is still refused, with the reason, on Trackly's page.
    with page.expect_response(f"{journey.trackly}/projects") as refused:
        create_project(page, "One too many")
    assert refused.value.status == 402
    assert page.url == f"{journey.trackly}/projects"
    assert page.inner_text("h1") == "Upgrade needed"
    reason = page.inner_text("main p")
    assert reason.startswith("Free includes 3 projects and 3 are used")
    assert (
        "Upgrade to Starter: $9.00 / month, starting with a free trial (nothing due today)."
        in reason
    )
    # The upgrade stays one (unprompted) link away, and comes back to Trackly too.
    upgrade = page.get_by_role("link", name="See the upgrade").get_attribute("href")
    assert upgrade.startswith(f"{journey.tiergate}/offers/")
    assert parse_qs(urlsplit(upgrade).query)["return_url"] == [f"{journey.trackly}/projects"]
    page.get_by_role("link", name="Back to projects").click()
    page.wait_for_url(f"{journey.trackly}/projects")
    assert "3 of 3 used" in page.inner_text("table.usage")
    assert page.locator("li").count() == 3
    assert "One too many" not in page.inner_text("main")


def _png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def test_the_offer_page_fits_a_phone_and_a_desktop(journey, open_trackly, artifacts):
    page = open_trackly(375)
    hit_the_project_limit(page, journey)
    for width in (375, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        assert page.evaluate("document.documentElement.scrollWidth") <= page.evaluate("innerWidth")
        for name in ("Upgrade now \u2014 pay $0.00 today", "Not now"):
            box = page.get_by_role("button", name=name).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, name
        path = artifacts / f"offer-{width}.png"
        page.screenshot(path=str(path), full_page=True)
        shot_width, shot_height = _png_size(path)
        assert shot_width == width
        assert 300 <= shot_height <= 3000


def test_the_billing_button_opens_tiergates_billing_page_with_a_way_back(journey, open_trackly):
    page = open_trackly()
    page.get_by_role("button", name="Billing").click()
    page.wait_for_url(f"{journey.tiergate}/billing?**")
    assert page.inner_text("h1") == "Billing"
    assert page.inner_text(".current-plan") == "You are on the Free plan."
    assert page.get_by_role("link", name=re.compile(r"^Starter: \$9\.00 per month$")).count() == 1
    back = page.get_by_role("link", name="Back to the app")
    assert back.get_attribute("href") == f"{journey.trackly}/projects"
    back.click()
    page.wait_for_url(f"{journey.trackly}/projects")
    assert page.inner_text("h1") == f"Projects of {WORKSPACE}"
