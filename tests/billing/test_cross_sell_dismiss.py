""" "Not now" on the post-purchase cross-sell (UPSELL 7): the success page and the add-on page
it leads to both offer it as a plain form (no script needed), it records the dismissal, and the
same add-on is not pushed again after the next purchase until the cooldown has passed."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from sqlalchemy import select

from billing import portal
from gating.models import Offer, OfferTrigger
from tests.billing.conftest import add_account, csrf_of, gate_offer, set_gauge, subscribe
from tests.billing.test_pages import (
    db,
    event_types,
    invoices,
    path,
    post_form,
    tier_of,
    version,
)
from tests.conftest import DEMO_CATALOG
from tiergate.db import get_db
from tiers import store
from tiers.loader import load_catalog_file

__all__ = ["db", "version"]  # fixtures used here

APP = "http://localhost/projects"
NOT_NOW = re.compile(r'<form method="post" action="([^"]+)" class="not-now">(.*?)</form>', re.S)
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def upgrade(app: Any, client: Any, db: Any, clock: Any, used: int, **link: Any) -> tuple[str, str]:
    """Take the gate's projects offer for acme from its page: the success page's URL and text."""
    with db() as s:
        offer_id = gate_offer(s, clock, "acme", "projects", used=used, requested=1).id
    page = client.get(path(portal.offer_link(app.config, "acme", offer_id, **link)))
    accepted = post_form(client, page.get_data(as_text=True), f"/offers/{offer_id}/accept")
    assert accepted.status_code in (302, 303), accepted.get_data(as_text=True)[:2000]
    done_url = accepted.headers["Location"]
    return done_url, client.get(done_url).get_data(as_text=True)


def cross_sell(db: Any) -> str | None:
    """The newest post-purchase offer's id."""
    with db() as s:
        return s.scalar(
            select(Offer.id)
            .where(Offer.trigger == OfferTrigger.POST_PURCHASE)
            .order_by(Offer.created_at.desc())
        )


def add_link(page: str) -> str:
    found = re.search(r'href="(/billing/addons/extended_support[^"]+)"', page)
    assert found is not None, "the page cross-sells no Extended support"
    return html.unescape(found.group(1))


def press_not_now(client: Any, page: str) -> Any:
    """Press the page's "Not now" the way a browser without JavaScript does: post its form."""
    form = NOT_NOW.search(page)
    assert form is not None, 'the page has no "Not now" form'
    fields = {name: html.unescape(value) for name, value in HIDDEN.findall(form.group(2))}
    return client.post(html.unescape(form.group(1)), data=fields)


def test_not_now_on_the_success_page_records_the_dismissal_and_returns_to_the_app(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    """After Starter to Pro the success page cross-sells Extended support with an "Add" button
    and a "Not now" beside it; "Not now" records the dismissal, goes back to the app, and the
    success page no longer shows the cross-sell."""
    with db() as s:
        subscribe(s, "acme", clock, version)
        set_gauge(s, "acme", "projects", 10, clock)
    done_url, done = upgrade(app, client, db, clock, 10, return_url=APP)
    follow_id = cross_sell(db)
    assert "Add Extended support" in done and f"/offers/{follow_id}/dismiss" in done
    dismissed = press_not_now(client, done)
    assert dismissed.status_code == 302 and dismissed.headers["Location"] == APP
    assert event_types(db, str(follow_id)) == ["shown", "dismissed"]
    assert "Extended support" not in client.get(done_url).get_data(as_text=True)


def test_not_now_on_the_cross_sells_add_on_page_records_the_dismissal(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    """The cross-sell's "Add" button opens the add-on page, whose "Not now" records the
    dismissal too (and charges nothing); opened from an offer link, it leads to no billing page."""
    with db() as s:
        subscribe(s, "acme", clock, version)
        set_gauge(s, "acme", "projects", 10, clock)
    _, done = upgrade(app, client, db, clock, 10)
    follow_id = str(cross_sell(db))
    addon_page = client.get(add_link(done)).get_data(as_text=True)
    assert "Add now — pay $24.50 today" in addon_page
    dismissed = press_not_now(client, addon_page)
    assert dismissed.status_code == 200
    text = dismissed.get_data(as_text=True)
    assert "You can close this page" in text and "/billing?" not in text
    assert event_types(db, follow_id) == ["shown", "clicked", "dismissed"]
    assert [i.amount_paid for i in invoices(db)] == [1000]  # the upgrade only


@pytest.fixture
def support_with_starter(app: Any, clock: Any, demo_catalog: Any, tmp_path: Any) -> None:
    """The demo catalog, with Extended support suggested with Starter as well as Pro."""
    source_path = tmp_path / "catalog.yaml"
    tied = "    suggested_with:\n      tiers: [pro]\n      features: [audit_log]\n"
    text = DEMO_CATALOG.read_text()
    assert tied in text
    source_path.write_text(text.replace(tied, tied.replace("[pro]", "[starter, pro]"), 1))
    catalog, source = load_catalog_file(source_path)
    with get_db(app).session() as s:
        store.publish(s, catalog, source=source, author="t", note="support", now=clock.now())


@pytest.mark.parametrize(("days_later", "offered"), [(1, False), (8, True)])
def test_a_dismissed_cross_sell_is_not_pushed_again_until_the_cooldown_has_passed(
    app: Any,
    client: Any,
    db: Any,
    clock: Any,
    support_with_starter: None,
    days_later: int,
    offered: bool,
) -> None:
    """A Free customer takes Starter and says "Not now" to Extended support on the success
    page. Upgrading to Pro the next day shows no Extended support (7-day cooldown); eight days
    later it is offered again."""
    with db() as s:
        add_account(s, "acme", clock)
        set_gauge(s, "acme", "projects", 3, clock)
    _, done = upgrade(app, client, db, clock, 3)
    assert tier_of(db) == "starter" and "Add Extended support" in done
    press_not_now(client, done)
    first = str(cross_sell(db))
    assert event_types(db, first) == ["shown", "dismissed"]
    clock.advance(days=days_later)
    _, done = upgrade(app, client, db, clock, 10)
    assert tier_of(db) == "pro"
    assert ("Add Extended support" in done) is offered
    assert (cross_sell(db) != first) is offered  # no post-purchase offer made in the cooldown


def test_not_now_cannot_dismiss_another_accounts_cross_sell(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    """Only a link signed for the account and that very offer records its "Not now": one signed
    for another account, or for another offer, is refused and records nothing."""
    with db() as s:
        subscribe(s, "acme", clock, version)
        set_gauge(s, "acme", "projects", 10, clock)
        subscribe(s, "bob", clock, version)
    upgrade(app, client, db, clock, 10)
    follow_id = str(cross_sell(db))
    bob = portal.account_token(app.config, "bob")
    bobs_page = client.get(f"/billing/addons/extended_support?t={bob}")
    csrf = csrf_of(bobs_page.get_data(as_text=True))
    for account_id, offer_id in (("bob", follow_id), ("acme", "off_other")):
        token = portal.offer_token(app.config, account_id, offer_id)
        refused = client.post(f"/offers/{follow_id}/dismiss", data={"t": token, "csrf_token": csrf})
        assert refused.status_code in (403, 404), (account_id, offer_id)
    opened = client.get(f"/billing/addons/extended_support?t={bob}&offer={follow_id}")
    assert opened.status_code == 404
    assert event_types(db, follow_id) == ["shown"]
