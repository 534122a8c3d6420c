"""The signed-in pricing page: every enabled button leads to a page that works."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest

from billing import portal
from tests.billing.conftest import subscribe
from tiergate.db import get_db

STATES = {
    "trialing": dict(tier="starter", status="trialing"),
    "past_due": dict(tier="starter", status="past_due"),
    "canceling": dict(tier="pro", cancel=True),
    "yearly": dict(tier="pro", interval="year"),
    "scheduled_down": dict(tier="pro", scheduled="starter"),
    "business": dict(tier="business"),
    "yearly_starter": dict(tier="starter", interval="year"),
    "eur_pro": dict(tier="pro", currency="eur"),
}


@pytest.mark.parametrize("state", list(STATES))
@pytest.mark.parametrize("tab", ["month", "year"])
def test_every_pricing_button_of_a_signed_in_account_works(
    app, client, clock, demo_catalog, state, tab
) -> None:
    spec = dict(STATES[state])
    cancel = spec.pop("cancel", False)
    scheduled = spec.pop("scheduled", None)
    status = spec.get("status", "active")
    with get_db(app).session() as s:
        account = subscribe(s, "acme", clock, int(demo_catalog.version), **spec)
        sub = account.subscription
        sub.cancel_at_period_end = cancel
        sub.scheduled_tier_id = scheduled
        if status == "trialing":
            sub.trial_end = clock.now() + timedelta(days=5)
        if status == "past_due":
            sub.past_due_since = clock.now() - timedelta(days=1)
    token = portal.account_token(app.config, "acme")
    page = client.get(f"/pricing?t={token}&interval={tab}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    cells = re.findall(r'<td class="cta-cell[^"]*">(.*?)</td>', text, re.S)
    assert cells
    failures = []
    for cell in cells:
        m = re.search(r'href="(/billing[^"]+)"', cell)
        if not m:
            continue
        url = html.unescape(m.group(1))
        answer = client.get(url)
        if answer.status_code >= 400:
            body = re.sub(r"<[^>]+>", " ", answer.get_data(as_text=True))
            failures.append(
                (
                    url.split("?")[0],
                    re.search(r"t=[^&]*&?(.*)", url).group(1),
                    answer.status_code,
                    " ".join(body.split())[-300:],
                )
            )
    assert not failures, failures


def test_a_tier_not_sold_at_the_plans_interval_says_so_not_that_it_lacks_a_feature(
    app, client, clock
) -> None:  # type: ignore[no-untyped-def]
    """Business sold yearly only: for a monthly Starter customer it is neither an upgrade
    quoted now nor a move down, and the disabled button says why (it lacks nothing)."""
    from tests.tiers.test_subscribers import DEMO_TEXT, publish_text

    yearly_only = DEMO_TEXT.replace("      month: {usd: 7900, eur: 7500}\n", "", 1)
    with get_db(app).session() as s:
        version = publish_text(s, clock, yearly_only, "business yearly only")
        subscribe(s, "acme", clock, version, tier="starter")
    token = portal.account_token(app.config, "acme")
    page = client.get(f"/pricing?t={token}&interval=year").get_data(as_text=True)
    note = re.search(r'id="cta-note-business">([^<]*)<', page)
    assert note is not None
    assert "not sold with your billing interval" in html.unescape(note.group(1))


def _price_cell(page: str, tier: str) -> str:
    match = re.search(rf'<td class="price-cell[^"]*" data-tier="{tier}">(.*?)</td>', page, re.S)
    assert match, f"no price cell for {tier}"
    return re.sub(r"\s+", " ", match.group(1))


def test_a_customer_whose_tier_left_the_newest_catalog_is_told_they_keep_it(
    app, client, clock, demo_catalog
) -> None:  # type: ignore[no-untyped-def]
    """Team (legacy) exists only in version 1; version 2 drops it. The customer keeps it
    (pinned), and the page says it is a plan no longer sold."""
    from tests.tiers.test_subscribers import demo_v2_text, publish_text

    with get_db(app).session() as s:
        subscribe(s, "legacy", clock, demo_catalog.version, tier="team_legacy")
        publish_text(s, clock, demo_v2_text(), "v2")
    token = portal.account_token(app.config, "legacy")
    page = client.get(f"/pricing?t={token}").get_data(as_text=True)
    assert "Team (legacy)" in page and "a plan we no longer sell" in page
    assert "Unknown tier" not in page


def test_a_grandfathered_customer_sees_the_price_they_pay_on_their_own_plan(
    app, client, clock, demo_catalog
) -> None:  # type: ignore[no-untyped-def]
    """Pro costs 29.00 in version 1 (the customer's) and 32.00 in version 2: their column,
    marked "Your plan", states 29.00; a visitor sees 32.00."""
    from tests.tiers.test_subscribers import DEMO_TEXT, publish_text

    with get_db(app).session() as s:
        subscribe(s, "acme", clock, demo_catalog.version, tier="pro")
        dearer = DEMO_TEXT.replace("month: {usd: 2900, eur: 2700}", "month: {usd: 3200, eur: 2700}")
        publish_text(s, clock, dearer, "v2")
    token = portal.account_token(app.config, "acme")
    page = client.get(f"/pricing?t={token}").get_data(as_text=True)
    assert "Your plan" in page
    assert "$29.00" in _price_cell(page, "pro")
    assert "$32.00" in _price_cell(client.get("/pricing").get_data(as_text=True), "pro")


def _plain(page: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html.unescape(page)).split())


def _cell_text(page: str, tier: str) -> str:
    return _plain(_price_cell(page, tier))


def test_a_grandfathered_monthly_customer_is_not_shown_an_old_yearly_price_billing_wont_charge(
    app, client, clock, demo_catalog
) -> None:  # type: ignore[no-untyped-def]
    """acme pays Pro monthly at version 1's $29.00. Version 2 makes Pro $32.00 / $320.00.
    The billing page switches acme to yearly at $320.00 (the newest yearly price): the pricing
    page's yearly tab, on acme's own column, states that price, not version 1's $290.00."""
    from tests.tiers.test_subscribers import DEMO_TEXT, publish_text

    with get_db(app).session() as s:
        subscribe(s, "acme", clock, demo_catalog.version, tier="pro")
        dearer = DEMO_TEXT.replace(
            "month: {usd: 2900, eur: 2700}", "month: {usd: 3200, eur: 2700}"
        ).replace("year: {usd: 29000, eur: 27000}", "year: {usd: 32000, eur: 27000}")
        publish_text(s, clock, dearer, "v2")
    token = portal.account_token(app.config, "acme")
    switch = _plain(client.get(f"/billing/yearly?t={token}").get_data(as_text=True))
    assert "Pro (15 Nov 2026 - 15 Nov 2027) $320.00" in switch  # what the switch charges
    cell = _cell_text(client.get(f"/pricing?t={token}&interval=year").get_data(as_text=True), "pro")
    assert "$29.00 / month" in cell  # what acme pays now: right
    assert "$290.00" not in cell, cell


def test_an_account_that_had_a_plan_is_not_promised_a_trial(
    app, client, clock, demo_catalog
) -> None:  # type: ignore[no-untyped-def]
    """One trial per account: the signed-in page of an account whose plan ended shows no
    "14-day free trial" (checkout charges it from the start); a new account's page does."""
    from tests.billing.conftest import add_account

    with get_db(app).session() as s:
        subscribe(s, "back", clock, demo_catalog.version, status="canceled")
        add_account(s, "newco", clock)
    for account_id, promised in (("back", False), ("newco", True)):
        token = portal.account_token(app.config, account_id)
        page = html.unescape(client.get(f"/pricing?t={token}").get_data(as_text=True))
        assert ("14-day free trial" in page) is promised, account_id
        assert ("Paid plans start with a free trial" in page) is promised, account_id
