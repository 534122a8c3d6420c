"""The end-user pages, end to end through the test client with CSRF protection on.

Each flow is driven the way a customer drives it: open the signed link, read the page, post
its form (with the CSRF token it carries), and compare the amount the page showed with the
Invoice row that was recorded.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from billing import portal, service
from billing.cli import billing_group
from billing.manual import ManualBilling
from billing.models import Invoice
from gating.models import Account, AccountAddOn, Offer, OfferEvent, OfferStatus
from tests.billing.conftest import (
    PERIOD_END,
    DecliningBilling,
    add_account,
    dollars,
    form_fields,
    gate_offer,
    quote_offer,
    set_gauge,
    subscribe,
)
from tiergate.db import get_db


@pytest.fixture
def version(demo_catalog) -> int:  # type: ignore[no-untyped-def]
    return int(demo_catalog.version)


@pytest.fixture
def db(app):  # type: ignore[no-untyped-def]
    """A session committed at the end of each `with db() as s:` block."""
    return get_db(app).session


def make_offer(app, db, clock, version, account_id="acme", **kw: Any) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A Starter account halfway through its period, quoted Pro for 10.00 today."""
    with db() as s:
        if s.get(Account, account_id) is None:
            subscribe(s, account_id, clock, version)
            set_gauge(s, account_id, "projects", 10, clock)
        kw.setdefault("amount_due_today", 1000)
        kw.setdefault("new_recurring", 2900)
        offer = quote_offer(s, account_id, clock, version, **kw)
        offer_id = offer.id
    return offer_id, portal.offer_link(app.config, account_id, offer_id)


SELF = '<form method="post">'  # a form posting back to its own page


def path(url: str) -> str:
    return url.replace("http://localhost", "")


def invoices(db, account_id="acme") -> list[Invoice]:  # type: ignore[no-untyped-def]
    with db() as s:
        query = select(Invoice).where(Invoice.account_id == account_id).order_by(Invoice.id)
        return list(s.scalars(query))


def event_types(db, offer_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    with db() as s:
        rows = s.scalars(
            select(OfferEvent).where(OfferEvent.offer_id == offer_id).order_by(OfferEvent.id)
        )
        return [e.type.value for e in rows]


def paid_amounts(db, offer_id: str) -> list[int | None]:  # type: ignore[no-untyped-def]
    """The amounts recorded with the offer's "paid" events."""
    with db() as s:
        rows = s.scalars(
            select(OfferEvent.amount)
            .where(OfferEvent.offer_id == offer_id, OfferEvent.type == OfferStatus.PAID)
            .order_by(OfferEvent.id)
        )
        return list(rows)


def offer_count(db) -> int:  # type: ignore[no-untyped-def]
    with db() as s:
        return int(s.scalar(select(func.count()).select_from(Offer)) or 0)


def tier_of(db, account_id="acme") -> str:  # type: ignore[no-untyped-def]
    with db() as s:
        return s.get(Account, account_id).subscription.tier_id  # type: ignore[union-attr]


def post_form(
    client,
    page: str,
    action: str,
    extra: dict[str, str] | None = None,  # type: ignore[no-untyped-def]
    url: str | None = None,
):
    """Post the page's form whose tag contains `action` (to `url` when the form has none)."""
    fields = form_fields(page, action)
    return client.post(url or action, data={**fields, **(extra or {})})


# ---- the offer page ------------------------------------------------------------------------


def test_the_offer_page_shows_the_exact_numbers_and_records_shown_once(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    offer_id, link = make_offer(app, db, clock, version)
    page = client.get(path(link)).get_data(as_text=True)
    assert "10 of 10 projects used \u2192 50 projects" in page
    assert "$29.00 per month" in page
    assert re.search(r'data-amount="due_today">\$10\.00', page)
    assert "$29.00 on November 30, 2026" in page
    assert "Or pay yearly: $290.00 per year, saving $58.00." in page
    assert "Upgrade now — pay $10.00 today" in page
    assert "Not now" in page
    assert "This price holds until 12:30 UTC" in page
    client.get(path(link))
    assert event_types(db, offer_id) == ["shown"]


def test_the_offer_page_shows_a_promotion_with_its_real_end_date(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    _, link = make_offer(
        app,
        db,
        clock,
        version,
        interval="year",
        amount_due_today=22750,
        new_recurring=23200,
        next_renewal=29000,
        promotion_id="yearly_launch",
    )
    page = client.get(path(link)).get_data(as_text=True)
    assert (
        "20 % off your first year is included in these amounts (offer ends March 31, 2027)" in page
    )


def test_the_offer_page_states_a_price_jump_plainly(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    _, link = make_offer(app, db, clock, version)
    page = client.get(path(link)).get_data(as_text=True)
    assert "Pro costs $29.00 / month, $20.00 more than now." in page


def test_a_quote_from_the_gate_is_shown_in_its_own_words_and_charged_exactly(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    with db() as s:
        subscribe(s, "acme", clock, version)
        set_gauge(s, "acme", "projects", 10, clock)
        offer = gate_offer(s, clock, "acme", "projects", used=10, requested=1)
        offer_id, quoted = offer.id, offer.amount_due_today
    page = client.get(path(portal.offer_link(app.config, "acme", offer_id))).get_data(as_text=True)
    assert "10 of 10 projects used \u2192 50 projects" in page
    assert "Pro costs $29.00 / month, $20.00 more than Starter (+223 %)." in page
    shown = dollars(re.search(r"Upgrade now — pay (\S+) today", page).group(1))  # type: ignore[union-attr]
    post_form(client, page, f"/offers/{offer_id}/accept")
    [invoice] = invoices(db)
    assert invoice.amount_paid == shown == quoted


def test_the_offer_page_needs_a_valid_signed_link(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    offer_id, link = make_offer(app, db, clock, version)
    assert client.get(f"/offers/{offer_id}").status_code == 403
    assert client.get(f"/offers/{offer_id}?t=forged").status_code == 403
    other_id, _ = make_offer(app, db, clock, version)
    token = link.split("t=")[1].split("&")[0]
    assert client.get(f"/offers/{other_id}?t={token}").status_code == 403
    assert event_types(db, offer_id) == []


def test_a_link_signed_for_another_account_does_not_open_the_offer(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    offer_id, _ = make_offer(app, db, clock, version)
    with db() as s:
        add_account(s, "intruder", clock)
    link = portal.offer_link(app.config, "intruder", offer_id)
    assert client.get(path(link)).status_code == 404


def test_an_expired_link_is_refused(app, client, db, clock, version) -> None:  # type: ignore[no-untyped-def]
    offer_id, link = make_offer(app, db, clock, version)
    app.config["BILLING_LINK_MAX_AGE"] = -1
    response = client.get(path(link))
    assert response.status_code == 403 and "expired" in response.get_data(as_text=True)


# ---- accepting ----------------------------------------------------------------------------


def test_upgrading_charges_the_amount_the_page_showed(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    offer_id, link = make_offer(app, db, clock, version)
    page = client.get(path(link)).get_data(as_text=True)
    shown = dollars(re.search(r"Upgrade now — pay (\S+) today", page).group(1))  # type: ignore[union-attr]
    response = post_form(client, page, f"/offers/{offer_id}/accept")
    assert response.status_code == 302
    done = client.get(response.headers["Location"]).get_data(as_text=True)
    [invoice] = invoices(db)
    assert invoice.amount_paid == shown == 1000
    assert dollars(re.search(r"Charged today: <strong[^>]*>([^<]+)<", done).group(1)) == 1000  # type: ignore[union-attr]
    assert "You are now on Pro." in done
    assert tier_of(db) == "pro"
    assert event_types(db, offer_id) == ["shown", "clicked", "accepted", "paid"]


def test_the_upgrade_form_is_refused_without_its_csrf_token(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    offer_id, link = make_offer(app, db, clock, version)
    page = client.get(path(link)).get_data(as_text=True)
    fields = form_fields(page, f"/offers/{offer_id}/accept")
    del fields["csrf_token"]
    response = client.post(f"/offers/{offer_id}/accept", data=fields)
    assert response.status_code == 400
    assert invoices(db) == [] and tier_of(db) == "starter"


def test_a_replayed_upgrade_form_charges_once(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    offer_id, link = make_offer(app, db, clock, version)
    page = client.get(path(link)).get_data(as_text=True)
    first = post_form(client, page, f"/offers/{offer_id}/accept")
    second = post_form(client, page, f"/offers/{offer_id}/accept")
    assert first.status_code == second.status_code == 302
    assert len(invoices(db)) == 1


def test_the_upgrade_with_the_addon_ticked_charges_both_as_shown(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    offer_id, link = make_offer(app, db, clock, version, addon_id="extended_support")
    page = client.get(path(link)).get_data(as_text=True)
    assert "Add Extended support: $24.50 today, then $49.00 per month." in page
    shown = dollars(re.search(r"With Extended support: (\S+) today", page).group(1))  # type: ignore[union-attr]
    post_form(client, page, f"/offers/{offer_id}/accept", {"addon": "yes"})
    [invoice] = invoices(db)
    assert invoice.amount_paid == shown == 3450


def test_an_expired_quote_says_when_it_was_quoted_and_shows_the_current_price(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    offer_id, link = make_offer(app, db, clock, version)
    page = client.get(path(link)).get_data(as_text=True)
    clock.advance(minutes=31)
    response = post_form(client, page, f"/offers/{offer_id}/accept")
    assert response.status_code == 303 and offer_id not in response.headers["Location"]
    assert invoices(db) == [] and tier_of(db) == "starter"
    fresh = client.get(path(response.headers["Location"])).get_data(as_text=True)
    assert "This price was quoted at 12:00 UTC and has expired: here is the current price." in fresh
    # 31 minutes later, Stripe's proration gives 4.49 credit and 14.48 charge.
    shown = dollars(re.search(r"Upgrade now — pay (\S+) today", fresh).group(1))  # type: ignore[union-attr]
    assert shown == 999
    fresh_id = re.search(r'action="/offers/(off_[\w-]+)/accept"', fresh).group(1)  # type: ignore[union-attr]
    post_form(client, fresh, f"/offers/{fresh_id}/accept")
    assert [i.amount_paid for i in invoices(db)] == [999]
    assert tier_of(db) == "pro"


def test_opening_an_expired_offer_re_quotes_it_once(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    offer_id, link = make_offer(app, db, clock, version)
    clock.advance(hours=2)
    first = client.get(path(link))
    second = client.get(path(link))
    assert first.status_code == second.status_code == 302
    fresh = lambda r: r.headers["Location"].split("?")[0]  # noqa: E731
    assert fresh(first) == fresh(second) and offer_id not in fresh(first)


def test_a_declined_card_shows_a_clear_message_and_changes_nothing(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    app.extensions["tiergate.billing"] = DecliningBilling()
    offer_id, link = make_offer(app, db, clock, version)
    page = client.get(path(link)).get_data(as_text=True)
    response = post_form(client, page, f"/offers/{offer_id}/accept")
    body = response.get_data(as_text=True)
    assert response.status_code == 402
    assert "Your card was declined" in body and "you are still on Starter" in body
    assert invoices(db) == [] and tier_of(db) == "starter"
    assert event_types(db, offer_id)[-1] == "failed"


def test_the_success_page_cross_sells_one_support_addon_and_records_its_sale(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    offer_id, link = make_offer(app, db, clock, version)
    page = client.get(path(link)).get_data(as_text=True)
    accepted = post_form(client, page, f"/offers/{offer_id}/accept")
    done = client.get(accepted.headers["Location"]).get_data(as_text=True)
    assert done.count('class="cross-sell"') == 1 and "Add Extended support" in done
    href = re.search(r'href="(/billing/addons/extended_support[^"]+)"', done).group(1)  # type: ignore[union-attr]
    addon_page = client.get(html.unescape(href)).get_data(as_text=True)
    shown = dollars(re.search(r"Add now — pay (\S+) today", addon_page).group(1))  # type: ignore[union-attr]
    post_form(client, addon_page, SELF, url="/billing/addons/extended_support")
    assert [i.amount_paid for i in invoices(db)] == [1000, shown]
    with db() as s:
        follow = s.scalar(select(Offer).where(Offer.trigger == "post_purchase"))
        assert follow is not None
        follow_id = follow.id
    assert event_types(db, follow_id) == ["shown", "clicked", "accepted", "paid"]


def test_an_offer_link_opens_its_offer_and_the_cross_sell_only_never_the_billing_pages(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    """A gate key can get any offer's link: it must not lead to the account's billing pages
    (cancel, other add-ons), which need a billing link (an `accounts` key)."""
    offer_id, link = make_offer(app, db, clock, version)
    page = client.get(path(link)).get_data(as_text=True)
    accepted = post_form(client, page, f"/offers/{offer_id}/accept")
    done = client.get(accepted.headers["Location"]).get_data(as_text=True)
    assert "/billing?" not in done and "Billing details" not in done
    href = html.unescape(
        re.search(r'href="(/billing/addons/extended_support[^"]+)"', done).group(1)  # type: ignore[union-attr]
    )
    token = re.search(r"[?&]t=([^&]+)", href).group(1)  # type: ignore[union-attr]
    # The cross-sell's token buys that add-on, and opens nothing else.
    for elsewhere in ("/billing", "/billing/cancel", "/billing/addons/seat_pack", "/pricing"):
        answer = client.get(f"{elsewhere}?t={token}")
        assert "Cancel subscription" not in answer.get_data(as_text=True)
        if elsewhere != "/pricing":
            assert answer.status_code == 403, elsewhere
    addon_page = client.get(href).get_data(as_text=True)
    assert 'name="t" value="' in addon_page
    bought = post_form(client, addon_page, SELF, url="/billing/addons/extended_support")
    outcome = client.get(bought.headers["Location"]).get_data(as_text=True)
    assert "Your add-on is active" in outcome and "Billing details" not in outcome
    limited = re.search(r'name="t" value="([^"]+)"', addon_page).group(1)  # type: ignore[union-attr]
    assert client.post("/billing/cancel", data={"t": limited}).status_code in (400, 403)
    from billing.models import BillingChange

    with db() as s:  # nor another change's page
        upgrade = s.scalar(select(BillingChange.id).where(BillingChange.kind == "upgrade"))
    assert client.get(f"/billing/changes/{upgrade}?t={limited}").status_code == 403
    with db() as s:
        assert s.scalar(select(Account)).subscription.cancel_at_period_end is False


# ---- not now -------------------------------------------------------------------------------


def test_not_now_records_the_dismissal_and_returns_to_the_app(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    offer_id, link = make_offer(app, db, clock, version)
    page = client.get(path(link) + "&return_url=http://localhost/projects").get_data(as_text=True)
    response = post_form(client, page, f"/offers/{offer_id}/dismiss")
    assert response.status_code == 302
    assert response.headers["Location"] == "http://localhost/projects"
    assert event_types(db, offer_id) == ["shown", "dismissed"]


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/phish",
        "//evil.example/x",
        "javascript:alert(1)",
        "http://localhost.evil.example/",
    ],
)
def test_not_now_never_redirects_to_another_origin(
    app,
    client,
    db,
    clock,
    version,
    target,  # type: ignore[no-untyped-def]
) -> None:
    offer_id, link = make_offer(app, db, clock, version)
    page = client.get(path(link)).get_data(as_text=True)
    fields = form_fields(page, f"/offers/{offer_id}/dismiss")
    response = client.post(f"/offers/{offer_id}/dismiss", data={**fields, "return_url": target})
    assert response.status_code == 200
    assert "evil" not in response.headers.get("Location", "")


def test_return_urls_on_a_configured_allowlist_are_followed(app) -> None:  # type: ignore[no-untyped-def]
    app.config["BILLING_RETURN_ORIGINS"] = "https://app.trackly.example"
    assert portal.safe_return_url(app.config, "https://app.trackly.example/x") == (
        "https://app.trackly.example/x"
    )
    assert portal.safe_return_url(app.config, "https://trackly.example/x") is None


# ---- the account's billing pages --------------------------------------------------------------


def account_link(app, account_id="acme") -> str:  # type: ignore[no-untyped-def]
    return path(portal.account_link(app.config, account_id))


def test_the_downgrade_page_spells_out_the_loss_before_the_confirm_button(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    with db() as s:
        subscribe(s, "acme", clock, version, tier="pro")
        set_gauge(s, "acme", "projects", 12, clock)
    token = portal.account_token(app.config, "acme")
    page = client.get(f"/billing/downgrade?t={token}&tier=starter").get_data(as_text=True)
    loss = page.index("What you lose")
    assert loss < page.index('type="submit"')
    assert "Audit log" in page
    assert (
        "12 projects, new limit 10: existing projects stay; creating new ones is blocked "
        "until you are under the limit."
    ) in page
    response = post_form(client, page, SELF, url="/billing/downgrade")
    moved = "You move to Starter, billed monthly, on November 30, 2026"
    assert response.status_code == 200 and moved in response.get_data(as_text=True)
    with db() as s:
        assert s.get(Account, "acme").subscription.scheduled_tier_id == "starter"  # type: ignore[union-attr]


def test_cancel_then_resume_from_the_billing_page(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    with db() as s:
        subscribe(s, "acme", clock, version)
    token = portal.account_token(app.config, "acme")
    page = client.get(f"/billing/cancel?t={token}").get_data(as_text=True)
    assert "PDF export" in page and "No data is deleted." in page
    post_form(client, page, SELF, url="/billing/cancel")
    overview = client.get(account_link(app)).get_data(as_text=True)
    assert "Your subscription ends on November 30, 2026." in overview
    response = post_form(client, overview, "/billing/resume")
    assert "subscription continues" in response.get_data(as_text=True)
    with db() as s:
        assert not s.get(Account, "acme").subscription.cancel_at_period_end  # type: ignore[union-attr]


def test_the_billing_pages_need_a_valid_account_link(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/billing").status_code == 403
    assert client.get("/billing?t=nope").status_code == 403


def test_switching_to_yearly_charges_the_amount_shown(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    with db() as s:
        subscribe(s, "acme", clock, version)
    token = portal.account_token(app.config, "acme")
    page = client.get(f"/billing/yearly?t={token}").get_data(as_text=True)
    shown = dollars(re.search(r"Switch now — pay (\S+) today", page).group(1))  # type: ignore[union-attr]
    clock.advance(minutes=5)  # the quote holds: the charge uses the shown proration time
    response = post_form(client, page, SELF, url="/billing/yearly")
    assert response.status_code == 302
    [invoice] = invoices(db)
    assert invoice.amount_paid == shown == 8550


def test_buying_an_addon_charges_the_amount_shown(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    with db() as s:
        subscribe(s, "acme", clock, version)
    token = portal.account_token(app.config, "acme")
    page = client.get(f"/billing/addons/extended_support?t={token}").get_data(as_text=True)
    shown = dollars(re.search(r"Add now — pay (\S+) today", page).group(1))  # type: ignore[union-attr]
    response = post_form(client, page, SELF, url="/billing/addons/extended_support")
    done = client.get(response.headers["Location"])
    [invoice] = invoices(db)
    assert invoice.amount_paid == shown == 2450
    assert "Your add-on is active." in done.get_data(as_text=True)


def test_an_ineligible_addon_page_explains_why(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    with db() as s:
        subscribe(s, "acme", clock, version, tier="business")
    token = portal.account_token(app.config, "acme")
    response = client.get(f"/billing/addons/extended_support?t={token}")
    assert response.status_code == 409
    assert "already included in Business" in response.get_data(as_text=True)


def test_checkout_starts_the_trial_from_the_billing_page(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    with db() as s:
        add_account(s, "newco", clock)
    token = portal.account_token(app.config, "newco")
    overview = client.get(f"/billing?t={token}").get_data(as_text=True)
    assert "Pro: $29.00 per month" in overview
    page = client.get(f"/billing/checkout?t={token}&tier=pro&interval=month").get_data(as_text=True)
    assert "14 days" in page and "Start free trial" in page
    response = post_form(client, page, SELF, url="/billing/checkout")
    assert response.status_code == 302
    with db() as s:
        assert s.get(Account, "newco").subscription.status.value == "trialing"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("tier", "interval", "first", "named"),
    [
        ("starter", "month", 900, None),
        ("pro", "year", 23200, "20 % off your first year"),  # the automatic yearly_launch
    ],
)
def test_checkout_with_a_trial_states_its_first_charge_and_the_trials_end_charges_it(
    app, client, db, clock, version, tier, interval, first, named
) -> None:  # type: ignore[no-untyped-def]
    """Nothing is due today; the page states what the trial's end charges, with the
    promotion that is in it (it showed only "Due today $0.00")."""
    with db() as s:
        add_account(s, "newco", clock)
    token = portal.account_token(app.config, "newco")
    url = f"/billing/checkout?t={token}&tier={tier}&interval={interval}"
    page = html.unescape(client.get(url).get_data(as_text=True))
    stated = re.search(
        r'data-amount="first_charge">(\S+) on (\w+ \d+, \d{4})( \((.+?) included\))?', page
    )
    assert stated is not None, page
    assert dollars(stated.group(1)) == first
    assert stated.group(4) == named
    assert stated.group(2) == f"{clock.now() + timedelta(days=14):%B %-d, %Y}"
    post_form(client, page, SELF, url="/billing/checkout")
    clock.set(clock.now() + timedelta(days=14, hours=1))
    result = app.test_cli_runner().invoke(billing_group, ["renew"])
    assert result.exit_code == 0, result.output
    with db() as s:
        paid = [
            i.amount_paid for i in s.scalars(select(Invoice).where(Invoice.account_id == "newco"))
        ]
    assert paid[-1] == first


def test_the_renew_command_applies_scheduled_changes(
    app,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    with db() as s:
        subscribe(s, "acme", clock, version, tier="pro")
        set_gauge(s, "acme", "projects", 12, clock)
    client = app.test_client()
    token = portal.account_token(app.config, "acme")
    page = client.get(f"/billing/downgrade?t={token}&tier=starter").get_data(as_text=True)
    post_form(client, page, SELF, url="/billing/downgrade")
    clock.set(PERIOD_END + timedelta(hours=1))
    result = app.test_cli_runner().invoke(billing_group, ["renew"])
    assert result.exit_code == 0, result.output
    assert "1 period end(s) processed with manual billing." in result.output
    assert tier_of(db) == "starter"
    assert [i.amount_paid for i in invoices(db)] == [900]


def test_csrf_protects_the_billing_forms_only(app, client, db, clock, version) -> None:  # type: ignore[no-untyped-def]
    with db() as s:
        subscribe(s, "acme", clock, version)
    token = portal.account_token(app.config, "acme")
    refused = client.post("/billing/resume", data={"t": token})
    assert refused.status_code == 400 and "the form was not sent" in refused.get_data(as_text=True)
    for url in ("/webhooks/stripe", "/v1/check"):
        response = client.post(url, data=b"{}", content_type="application/json")
        assert "the form was not sent" not in response.get_data(as_text=True), url


# ---- the yearly alternative on the offer page ------------------------------------------------


def _gate_offer_page(app, client, db, clock, version) -> tuple[str, str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    with db() as s:
        subscribe(s, "acme", clock, version)
        set_gauge(s, "acme", "projects", 10, clock)
        offer = gate_offer(s, clock, "acme", "projects", used=10, requested=1)
        offer_id, yearly = offer.id, dict(offer.details["yearly_alternative"])
    page = client.get(path(portal.offer_link(app.config, "acme", offer_id))).get_data(as_text=True)
    return offer_id, page, yearly


def test_paying_yearly_from_the_offer_page_charges_the_yearly_amount_shown(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    offer_id, page, yearly = _gate_offer_page(app, client, db, clock, version)
    shown = dollars(re.search(r"Pay yearly — (\S+) today", page).group(1))  # type: ignore[union-attr]
    assert shown == yearly["amount_due_today"] > 0
    assert "Or pay yearly: $290.00 per year, saving $58.00." in page
    response = post_form(
        client, page, 'name="interval" value="year"', url=f"/offers/{offer_id}/accept"
    )
    assert response.status_code == 302
    done = client.get(response.headers["Location"]).get_data(as_text=True)
    [invoice] = invoices(db)
    assert invoice.amount_paid == shown
    assert dollars(re.search(r"Charged today: <strong[^>]*>([^<]+)<", done).group(1)) == shown  # type: ignore[union-attr]
    with db() as s:
        sub = s.get(Account, "acme").subscription  # type: ignore[union-attr]
        assert (sub.tier_id, sub.interval) == ("pro", "year")
        assert sub.current_period_end == sub.current_period_start.replace(year=2027)
    assert event_types(db, offer_id)[-2:] == ["accepted", "paid"]
    # The funnel counts the revenue the customer actually took: Pro yearly, per month.
    from gating import funnel

    with db() as s:
        total = funnel.funnel_window(s, clock, None, None).total
    assert (total.paid, total.mrr_added) == (1, {"usd": 29000 // 12 - 900})


def test_paying_yearly_from_a_re_quoted_offer_charges_the_new_yearly_amount_shown(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    """Re-quoting an expired offer quotes its yearly alternative anew too (it once kept the
    old amount, and paying it was refused as not matching the charge)."""
    offer_id, _, yearly = _gate_offer_page(app, client, db, clock, version)
    clock.advance(days=3)
    moved = client.get(path(portal.offer_link(app.config, "acme", offer_id)))
    assert moved.status_code == 302
    fresh = client.get(path(moved.headers["Location"])).get_data(as_text=True)
    fresh_id = re.search(r'action="/offers/(off_[\w-]+)/accept"', fresh).group(1)  # type: ignore[union-attr]
    shown = dollars(re.search(r"Pay yearly — (\S+) today", fresh).group(1))  # type: ignore[union-attr]
    assert shown != yearly["amount_due_today"]  # three days less of the month are credited
    response = post_form(
        client, fresh, 'name="interval" value="year"', url=f"/offers/{fresh_id}/accept"
    )
    assert response.status_code == 302
    [invoice] = invoices(db)
    assert invoice.amount_paid == shown
    assert tier_of(db) == "pro"


def test_switching_pro_to_yearly_with_manual_billing_gives_the_yearly_promotion(
    app, client, db, clock, version
) -> None:  # type: ignore[no-untyped-def]
    with db() as s:
        subscribe(s, "acme", clock, version, tier="pro")
    page = client.get(f"/billing/yearly?t={portal.account_token(app.config, 'acme')}")
    text = html.unescape(page.get_data(as_text=True))
    assert "is not given" not in text
    shown = dollars(re.search(r"Switch now — pay (\S+) today", text).group(1))  # type: ignore[union-attr]
    assert shown == 29000 - 5800 - 1450  # 20 % off the first year, less the unused half month
    post_form(client, page.get_data(as_text=True), SELF, url="/billing/yearly")
    assert [i.amount_paid for i in invoices(db)] == [shown]


@pytest.mark.parametrize("interval", ["week", "yearly", "x" * 500])
def test_an_unknown_interval_is_refused_and_nothing_is_charged(
    app,
    client,
    db,
    clock,
    version,
    interval,  # type: ignore[no-untyped-def]
) -> None:
    offer_id, page, _ = _gate_offer_page(app, client, db, clock, version)
    response = post_form(
        client,
        page,
        'name="interval" value="year"',
        {"interval": interval},
        url=f"/offers/{offer_id}/accept",
    )
    assert response.status_code in (400, 422)
    assert "interval must be &#39;month&#39; or &#39;year&#39;" in response.get_data(as_text=True)
    assert invoices(db) == [] and tier_of(db) == "starter"


def test_an_offer_already_yearly_has_no_yearly_button(app, client, db, clock, version) -> None:  # type: ignore[no-untyped-def]
    with db() as s:
        subscribe(s, "acme", clock, version, interval="year")
        set_gauge(s, "acme", "projects", 10, clock)
        offer_id = gate_offer(s, clock, "acme", "projects", used=10, requested=1).id
    page = client.get(path(portal.offer_link(app.config, "acme", offer_id))).get_data(as_text=True)
    assert "Upgrade now" in page and "Pay yearly" not in page


@pytest.mark.parametrize(
    ("path", "field", "stale"),
    [
        ("/billing/yearly", "amount", "8549"),
        ("/billing/yearly", "at", "2020-01-01T00:00:00+00:00"),
        ("/billing/addons/extended_support", "amount", "1"),
        ("/billing/checkout?tier=pro&interval=month", "amount", "1"),
    ],
)
def test_a_stale_price_shows_the_form_again_at_the_current_price_and_charges_nothing(
    app,
    client,
    db,
    clock,
    version,
    path,
    field,
    stale,  # type: ignore[no-untyped-def]
) -> None:
    with db() as s:
        if "checkout" in path:
            add_account(s, "acme", clock)
        else:
            subscribe(s, "acme", clock, version)
    token = portal.account_token(app.config, "acme")
    joiner = "&" if "?" in path else "?"
    page = client.get(f"{path}{joiner}t={token}").get_data(as_text=True)
    response = post_form(client, page, SELF, {field: stale}, url=path.split("?")[0])
    again = response.get_data(as_text=True)
    assert response.status_code == 409
    assert 'role="alert"' in again and "here is the current price" in again
    fresh = dict(form_fields(again, SELF))
    assert fresh.get("amount") == form_fields(page, SELF).get("amount")  # the current price
    assert invoices(db) == []


# ---- promotion codes typed at checkout -------------------------------------------------------

WELCOME = """promotions:
  - id: welcome
    name: 25 % off your first month
    percent_off: 25
    tiers: [business]
    intervals: [month]
    starts_at: 2026-01-01
    ends_at: 2027-01-01
    code: WELCOME25
    duration: once
"""


@pytest.fixture
def coded(app, clock, demo_catalog, tmp_path):  # type: ignore[no-untyped-def]
    """The demo catalog plus a promotion that only a typed code applies; newco on the free tier."""
    from tests.conftest import DEMO_CATALOG
    from tiers import store
    from tiers.loader import load_catalog_file

    path_ = tmp_path / "catalog.yaml"
    path_.write_text(DEMO_CATALOG.read_text().replace("promotions:\n", WELCOME, 1))
    catalog, source = load_catalog_file(path_)
    with get_db(app).session() as s:
        store.publish(s, catalog, source=source, author="t", note="code", now=clock.now())
        add_account(s, "newco", clock)
    return portal.account_token(app.config, "newco")


def test_a_promotion_code_typed_at_checkout_is_shown_and_charged(app, client, db, coded) -> None:  # type: ignore[no-untyped-def]
    base = f"/billing/checkout?t={coded}&tier=business&interval=month"
    plain = client.get(base).get_data(as_text=True)
    assert 'data-amount="due_today">$79.00' in plain and 'name="code"' in plain
    page = client.get(base + "&code=welcome25").get_data(as_text=True)  # any letter case
    assert "Promotion (code WELCOME25)" in html.unescape(page)
    assert 'data-amount="discount">-$19.75' in page
    assert 'data-amount="due_today">$59.25' in page
    response = post_form(client, page, SELF, url="/billing/checkout")
    assert response.status_code == 302
    [invoice] = invoices(db, "newco")
    assert invoice.amount_paid == 5925
    assert tier_of(db, "newco") == "business"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("tier=business&interval=month&code=NOPE", "The promotion code 'NOPE' does not exist."),
        (
            "tier=business&interval=year&code=WELCOME25",
            "The promotion code 'WELCOME25' does not apply to Business, billed yearly.",
        ),
        (
            "tier=pro&interval=month&code=WELCOME25",
            "The promotion code 'WELCOME25' does not apply to Pro, billed monthly.",
        ),
    ],
)
def test_a_promotion_code_that_does_not_apply_says_why_and_charges_the_full_price(
    app,
    client,
    db,
    coded,
    query,
    message,  # type: ignore[no-untyped-def]
) -> None:
    response = client.get(f"/billing/checkout?t={coded}&{query}")
    page = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 422
    assert message in page
    assert "Promotion (code" not in page
    # Posting the form anyway (a stale or forged code) charges nothing and says why again.
    forged = client.post(
        "/billing/checkout",
        data={
            **form_fields(response.get_data(as_text=True), SELF),
            "code": query.split("code=")[1],
        },
    )
    assert forged.status_code == 422 and invoices(db, "newco") == []


def test_an_expired_promotion_code_says_so(app, client, db, clock, coded) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    clock.set(datetime(2027, 1, 2, tzinfo=UTC))
    response = client.get(
        f"/billing/checkout?t={coded}&tier=business&interval=month&code=WELCOME25"
    )
    assert response.status_code == 422
    assert "has expired" in html.unescape(response.get_data(as_text=True))


# ---- at checkout: when the plan renews, and the yearly alternative ---------------------------

RENEWAL = re.compile(r'data-amount="next_renewal">(\S+) on (\w+ \d+, \d{4})')


@pytest.mark.parametrize(
    ("query", "today", "first", "renewal", "renews_on"),
    [
        ("tier=business&interval=month", 7900, None, 7900, "December 15, 2026"),
        # 25 % off the first month only: the renewal is the full price
        ("tier=business&interval=month&code=WELCOME25", 5925, None, 7900, "December 15, 2026"),
        # a 14-day trial: the first charge at its end, then a month later
        ("tier=pro&interval=month", 0, 2900, 2900, "December 29, 2026"),
        # a trial and 20 % off the first year: the year after it is the full price
        ("tier=pro&interval=year", 0, 23200, 29000, "November 29, 2027"),
    ],
)
def test_checkout_states_when_the_plan_renews_and_for_how_much_and_the_renewal_charges_it(
    app, client, db, clock, coded, query, today, first, renewal, renews_on
) -> None:  # type: ignore[no-untyped-def]
    """Beside the amount due today (and a trial's first charge), the page says when the plan
    renews and what that renewal charges: a promotion for the first period only is not in it."""
    page = html.unescape(client.get(f"/billing/checkout?t={coded}&{query}").get_data(as_text=True))
    assert dollars(re.search(r'data-amount="due_today">(\S+)<', page).group(1)) == today  # type: ignore[union-attr]
    stated = RENEWAL.search(page)
    assert stated is not None, page
    assert (dollars(stated.group(1)), stated.group(2)) == (renewal, renews_on)
    first_charge = re.search(r'data-amount="first_charge">(\S+) on (\w+ \d+, \d{4})', page)
    charge_days = [renews_on]
    if first is None:
        assert first_charge is None
    else:
        assert first_charge is not None and dollars(first_charge.group(1)) == first
        charge_days.insert(0, first_charge.group(2))  # the trial's end
    assert post_form(client, page, SELF, url="/billing/checkout").status_code == 302
    for charged_on in charge_days:  # the renew command runs an hour after each
        clock.set(datetime.strptime(charged_on, "%B %d, %Y").replace(hour=13, tzinfo=UTC))
        result = app.test_cli_runner().invoke(billing_group, ["renew"])
        assert result.exit_code == 0, result.output
    paid = [i.amount_paid for i in invoices(db, "newco")]
    assert paid == [today, *([first] if first is not None else []), renewal]


YEARLY = re.compile(
    r'<div class="alternative">\s*<p>(.*?)</p>\s*<a [^>]*href="([^"]+)"[^>]*>Pay yearly</a>'
)


def yearly_alternative(page: str) -> tuple[str, dict[str, str]] | None:
    """The yearly alternative's sentence and the query of its link (None: there is none)."""
    from urllib.parse import parse_qsl, urlsplit

    found = YEARLY.search(page)
    if found is None:
        return None
    link = html.unescape(found.group(2))
    text = " ".join(re.sub(r"<[^>]+>", "", found.group(1)).split())
    return html.unescape(text), dict(parse_qsl(urlsplit(link).query))


@pytest.mark.parametrize(
    ("query", "sentence"),
    [
        (
            "tier=business&interval=month",
            "Or pay yearly: $790.00 per year, saving $158.00. Due today: $632.00 (20 % off "
            "your first year included).",
        ),
        (
            "tier=business&interval=month&code=WELCOME25",
            "Or pay yearly: $790.00 per year, saving $158.00. Due today: $632.00 (20 % off "
            "your first year included). Code WELCOME25 does not apply to yearly billing.",
        ),
        (
            "tier=pro&interval=month",
            "Or pay yearly: $290.00 per year, saving $58.00. The same free trial: nothing "
            "today, then $232.00 on November 29, 2026 (20 % off your first year included).",
        ),
    ],
)
def test_a_monthly_checkout_offers_paying_yearly_with_its_saving_and_amount_due(
    app, client, coded, query, sentence
) -> None:  # type: ignore[no-untyped-def]
    """The one alternative: the same plan paid yearly, its saving against twelve months and
    what it costs today, linking to the same page for yearly billing (same plan, currency and
    way back; a monthly-only code is left out and said so)."""
    app.config["BILLING_RETURN_ORIGINS"] = "https://app.example"
    back = "https://app.example/projects"
    response = client.get(f"/billing/checkout?t={coded}&{query}&currency=usd&return_url={back}")
    alternative = yearly_alternative(response.get_data(as_text=True))
    assert alternative is not None
    text, link = alternative
    assert text == sentence
    tier = query.split("&")[0].split("=")[1]
    assert {k: v for k, v in link.items() if k != "t"} == {
        "tier": tier,
        "interval": "year",
        "currency": "usd",
        "return_url": back,
    }
    assert portal.read_account_token(app.config, link["t"]) == "newco"


def test_the_yearly_link_carries_a_code_that_applies_to_yearly_billing_and_quotes_it(
    app, client, clock, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """A code for every interval is in the yearly amount due and in the link, and the yearly
    page opened from it charges that amount."""
    publish_promotions(app, clock, tmp_path, EVERY_INTERVAL)
    with get_db(app).session() as s:
        add_account(s, "newco", clock)
    token = portal.account_token(app.config, "newco")
    page = client.get(f"/billing/checkout?t={token}&tier=business&interval=month&code=ten")
    alternative = yearly_alternative(page.get_data(as_text=True))
    assert alternative is not None
    text, link = alternative
    assert "Due today: $711.00 (code TEN: 10 % off your first payment included)." in text
    assert link["code"] == "TEN"
    yearly = client.get("/billing/checkout?" + urlencode(link)).get_data(as_text=True)
    assert 'data-amount="recurring">$790.00 per year' in yearly
    assert 'data-amount="due_today">$711.00' in yearly
    assert yearly_alternative(yearly) is None
    post_form(client, yearly, SELF, url="/billing/checkout")
    assert [i.amount_paid for i in invoices(get_db(app).session, "newco")] == [71100]


EVERY_INTERVAL = """promotions:
  - id: ten
    name: 10 % off your first payment
    percent_off: 10
    tiers: [business]
    code: TEN
    duration: once
"""


@pytest.mark.parametrize(
    "query",
    [
        "tier=business&interval=year",  # already yearly
        "tier=starter&interval=month",  # Starter is sold monthly only here
    ],
)
def test_no_yearly_alternative_when_already_yearly_or_not_sold_yearly(
    app, client, clock, tmp_path, query
) -> None:  # type: ignore[no-untyped-def]
    """A yearly plan, or a tier with no yearly price, has no alternative: the renewal only."""
    from tests.conftest import DEMO_CATALOG
    from tiers import store
    from tiers.loader import load_catalog_file

    source_path = tmp_path / "catalog.yaml"
    text = DEMO_CATALOG.read_text()
    source_path.write_text(text.replace("      year: {usd: 9000, eur: 9000}\n", "", 1))
    catalog, source = load_catalog_file(source_path)
    with get_db(app).session() as s:
        store.publish(
            s, catalog, source=source, author="t", note="monthly Starter", now=clock.now()
        )
        add_account(s, "newco", clock)
    token = portal.account_token(app.config, "newco")
    response = client.get(f"/billing/checkout?t={token}&{query}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'data-amount="next_renewal"' in page
    assert "Or pay yearly" not in page and yearly_alternative(page) is None


# ---- promotion codes typed on the offer page (upgrade in place) -----------------------------

UPGRADE_CODES = """promotions:
  - id: pro_half
    name: Half off your first Pro month
    percent_off: 50
    tiers: [pro]
    intervals: [month]
    code: PROHALF
    duration: once
  - id: pro_year_30
    name: 30 % off a first Pro year
    percent_off: 30
    tiers: [pro]
    intervals: [year]
    code: YEAR30
    duration: once
  - id: old_code
    name: Last year's code
    percent_off: 10
    tiers: [pro]
    starts_at: 2025-01-01
    ends_at: 2026-01-01
    code: OLD10
    duration: once
"""


def publish_promotions(app, clock, tmp_path, promotions: str) -> None:  # type: ignore[no-untyped-def]
    """Publish the demo catalog with `promotions` (a `promotions:` YAML block) added first."""
    from tests.conftest import DEMO_CATALOG
    from tiers import store
    from tiers.loader import load_catalog_file

    source_path = tmp_path / "catalog.yaml"
    source_path.write_text(DEMO_CATALOG.read_text().replace("promotions:\n", promotions, 1))
    catalog, source = load_catalog_file(source_path)
    with get_db(app).session() as s:
        store.publish(s, catalog, source=source, author="t", note="promotions", now=clock.now())


def publish_upgrade_codes(app, clock, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The demo catalog plus codes for Pro (the automatic yearly_launch promotion stays)."""
    publish_promotions(app, clock, tmp_path, UPGRADE_CODES)


def _coded_page(client, link: str, code: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """Type `code` on the offer page: the new offer's id and page."""
    response = client.get(path(link) + f"&code={code}")
    assert response.status_code == 302, response.get_data(as_text=True)
    page = client.get(path(response.headers["Location"])).get_data(as_text=True)
    offer_id = re.search(r'action="/offers/(off_[\w-]+)/accept"', page).group(1)  # type: ignore[union-attr]
    return offer_id, page


def test_a_code_typed_on_the_offer_page_lowers_the_amount_and_that_amount_is_charged(
    app, client, db, clock, version, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    publish_upgrade_codes(app, clock, tmp_path)
    offer_id, plain, _ = _gate_offer_page(app, client, db, clock, version)
    assert 'name="code"' in plain
    before = dollars(re.search(r"Upgrade now — pay (\S+) today", plain).group(1))  # type: ignore[union-attr]
    link = portal.offer_link(app.config, "acme", offer_id)
    coded_id, page = _coded_page(client, link, "prohalf")  # any letter case
    assert coded_id != offer_id
    text = html.unescape(page)
    assert "Code PROHALF (Half off your first Pro month) is included in these amounts." in text
    assert 'value="PROHALF"' in page
    shown = dollars(re.search(r"Upgrade now — pay (\S+) today", page).group(1))  # type: ignore[union-attr]
    assert shown < before
    # Typing it again (a reload) reuses the same quote.
    assert _coded_page(client, link, "PROHALF")[0] == coded_id
    response = post_form(client, page, f"/offers/{coded_id}/accept")
    assert response.status_code == 302
    [invoice] = invoices(db)
    assert invoice.amount_paid == shown
    assert tier_of(db) == "pro"
    assert event_types(db, coded_id)[-2:] == ["accepted", "paid"]
    with db() as s:
        coded = s.get(Offer, coded_id)
        assert (coded.promotion_id, coded.details["code"]) == ("pro_half", "PROHALF")  # type: ignore[union-attr]
        assert coded.details["code_from"] == offer_id  # type: ignore[union-attr]
        assert (coded.trigger.value, coded.feature_id) == ("limit_reached", "projects")  # type: ignore[union-attr]
    # The funnel: one offer shown (then quoted again with the code), clicked, paid.
    from gating import funnel

    with db() as s:
        window = funnel.funnel_window(s, clock, None, None)
    [limit] = [row for row in window.by_trigger if row.trigger == "limit_reached"]
    assert (limit.created, limit.shown, limit.clicked, limit.paid) == (1, 1, 1, 1)
    assert limit.mrr_added == {"usd": 2900 - 900}


def test_a_yearly_only_code_discounts_the_yearly_alternative_it_applies_to(
    app, client, db, clock, version, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    publish_upgrade_codes(app, clock, tmp_path)
    offer_id, plain, yearly = _gate_offer_page(app, client, db, clock, version)
    monthly = dollars(re.search(r"Upgrade now — pay (\S+) today", plain).group(1))  # type: ignore[union-attr]
    link = portal.offer_link(app.config, "acme", offer_id)
    coded_id, page = _coded_page(client, link, "YEAR30")
    text = html.unescape(page)
    assert dollars(re.search(r"Upgrade now — pay (\S+) today", page).group(1)) == monthly  # type: ignore[union-attr]
    assert "Code YEAR30 (30 % off a first Pro year) is included in the amount due today." in text
    shown = dollars(re.search(r"Pay yearly — (\S+) today", page).group(1))  # type: ignore[union-attr]
    assert shown < yearly["amount_due_today"]  # 30 % instead of the automatic 20 %
    response = post_form(
        client, page, 'name="interval" value="year"', url=f"/offers/{coded_id}/accept"
    )
    assert response.status_code == 302
    [invoice] = invoices(db)
    assert invoice.amount_paid == shown
    with db() as s:
        sub = s.get(Account, "acme").subscription  # type: ignore[union-attr]
        assert (sub.tier_id, sub.interval) == ("pro", "year")


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("NOPE", "The promotion code 'NOPE' does not exist."),
        ("OLD10", "The promotion code 'OLD10' has expired."),
        ("x" * 300, "does not exist."),
        ("<script>", "The promotion code '<script>' does not exist."),
    ],
)
def test_a_code_that_does_not_apply_to_the_offer_says_why_and_changes_nothing(
    app, client, db, clock, version, tmp_path, code, message
) -> None:  # type: ignore[no-untyped-def]
    publish_upgrade_codes(app, clock, tmp_path)
    offer_id, plain, _ = _gate_offer_page(app, client, db, clock, version)
    offers_before = offer_count(db)
    link = portal.offer_link(app.config, "acme", offer_id)
    response = client.get(path(link) + "&" + urlencode({"code": code}))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in html.unescape(page) and "<script>" not in page
    assert 'aria-invalid="true"' in page and 'role="alert"' in page
    assert re.search(r"Upgrade now — pay (\S+) today", page).group(1) == re.search(  # type: ignore[union-attr]
        r"Upgrade now — pay (\S+) today", plain
    ).group(1)  # type: ignore[union-attr]
    assert offer_count(db) == offers_before
    assert invoices(db) == [] and tier_of(db) == "starter"


def test_a_code_for_another_plan_says_which_plan_the_offer_is_for(
    app, client, db, clock, version, coded
) -> None:  # type: ignore[no-untyped-def]
    offer_id, _, _ = _gate_offer_page(app, client, db, clock, version)
    link = portal.offer_link(app.config, "acme", offer_id)
    response = client.get(path(link) + "&code=WELCOME25")
    assert response.status_code == 422
    assert (
        "The promotion code 'WELCOME25' does not apply to Pro, billed monthly or yearly."
        in html.unescape(response.get_data(as_text=True))
    )


def test_without_a_running_code_the_offer_page_asks_for_none(
    app, client, db, clock, version
) -> None:  # type: ignore[no-untyped-def]
    _, page, _ = _gate_offer_page(app, client, db, clock, version)
    assert 'name="code"' not in page


# ---- which automatic promotion: the pricing page, the checkout and the offers agree -----------

TWO_AUTOMATIC = """promotions:
  - id: business_small
    name: 10 % off Business
    percent_off: 10
    tiers: [business]
    intervals: [month]
    duration: once
  - id: business_big
    name: 30 % off Business
    percent_off: 30
    tiers: [business]
    intervals: [month]
    duration: once
"""


def test_the_automatic_promotion_the_pricing_page_shows_is_the_one_checkout_charges(
    app, client, db, clock, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """Two run for Business monthly: the one that takes off the most is shown and charged (the
    pricing page showed 30 % off while checkout charged the first, 10 %)."""
    publish_promotions(app, clock, tmp_path, TWO_AUTOMATIC)
    with db() as s:
        add_account(s, "newco", clock)
    pricing = html.unescape(client.get("/pricing?interval=month").get_data(as_text=True))
    assert "$55.30 for the first month, then $79.00 / month" in pricing
    token = portal.account_token(app.config, "newco")
    page = client.get(f"/billing/checkout?t={token}&tier=business&interval=month")
    assert 'data-amount="due_today">$55.30' in page.get_data(as_text=True)
    post_form(client, page.get_data(as_text=True), SELF, url="/billing/checkout")
    assert [i.amount_paid for i in invoices(db, "newco")] == [5530]


# ---- an account whose payment failed ------------------------------------------------------


def test_an_account_past_due_beyond_its_grace_is_asked_to_pay_before_upgrading(
    app, client, db, clock, version
) -> None:  # type: ignore[no-untyped-def]
    """Past its grace period the gate treats it as free and quotes Pro from there, but billing
    would change the past-due Starter plan: the page asks for the open invoice instead of
    showing a price that accepting would refuse (it answered 409 quote mismatch)."""
    offer_id = _past_due_beyond_grace_offer(db, clock, version)
    page = client.get(path(portal.offer_link(app.config, "acme", offer_id)))
    text = html.unescape(page.get_data(as_text=True))
    assert "The last payment for your Starter plan failed" in text
    # An offer link opens the offer only: the customer is sent to Billing in the app...
    assert "Upgrade now" not in text and "Open Billing in the app" in text
    assert "/billing?" not in text
    # ...or, having come from the billing pages (`b`), straight back to them.
    billing = portal.account_token(app.config, "acme")
    back = client.get(path(portal.offer_link(app.config, "acme", offer_id, billing=billing)))
    assert "Open billing" in back.get_data(as_text=True)
    # Posted anyway (an old tab): refused with the same words, nothing charged.
    fields = form_fields(page.get_data(as_text=True), 'class="not-now"')
    refused = client.post(f"/offers/{offer_id}/accept", data=fields)
    assert refused.status_code == 409
    assert "The last payment for your Starter plan failed" in html.unescape(
        refused.get_data(as_text=True)
    )
    assert invoices(db) == [] and tier_of(db) == "starter"


def test_within_its_grace_a_past_due_account_can_still_upgrade(
    app, client, db, clock, version
) -> None:  # type: ignore[no-untyped-def]
    with db() as s:
        subscribe(s, "acme", clock, version, status="past_due")
        s.get(Account, "acme").subscription.past_due_since = clock.now() - timedelta(days=2)  # type: ignore[union-attr]
    offer_id, link = make_offer(app, db, clock, version)
    page = client.get(path(link)).get_data(as_text=True)
    assert "Upgrade now" in page
    assert post_form(client, page, f"/offers/{offer_id}/accept").status_code == 302
    assert tier_of(db) == "pro"


def _past_due_beyond_grace_offer(db, clock, version) -> str:  # type: ignore[no-untyped-def]
    from gating import service as gate

    with db() as s:
        subscribe(s, "acme", clock, version, status="past_due")
        s.get(Account, "acme").subscription.past_due_since = clock.now() - timedelta(days=10)  # type: ignore[union-attr]
    settings = gate.GateSettings(past_due_grace_days=7, base_url="http://localhost")
    with db() as s:
        denied = gate.check(s, clock, "acme", "audit_log", settings=settings)
        assert denied.offer is not None
        return str(denied.offer["id"])


@pytest.mark.parametrize("how", ["a code typed", "the price expired"])
def test_a_blocked_past_due_offer_is_not_quoted_again_into_one_that_can_be_bought(
    app, client, db, clock, version, tmp_path, how
) -> None:  # type: ignore[no-untyped-def]
    publish_upgrade_codes(app, clock, tmp_path)
    offer_id = _past_due_beyond_grace_offer(db, clock, version)
    offers_before = offer_count(db)
    link = path(portal.offer_link(app.config, "acme", offer_id))
    if how == "the price expired":
        clock.advance(minutes=31)
    else:
        link += "&code=PROHALF"
    response = client.get(link)
    assert response.status_code == 200  # shown as it is, not re-quoted
    page = html.unescape(response.get_data(as_text=True))
    assert "The last payment for your Starter plan failed" in page and "Upgrade now" not in page
    assert offer_count(db) == offers_before
    assert invoices(db) == [] and tier_of(db) == "starter"


def test_pressing_apply_again_on_the_page_of_a_coded_offer_keeps_that_offer(
    app, client, db, clock, version, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    publish_upgrade_codes(app, clock, tmp_path)
    offer_id, _, _ = _gate_offer_page(app, client, db, clock, version)
    coded_id, _ = _coded_page(client, portal.offer_link(app.config, "acme", offer_id), "PROHALF")
    offers_before = offer_count(db)
    again = client.get(path(portal.offer_link(app.config, "acme", coded_id)) + "&code=prohalf")
    assert again.status_code == 302 and f"/offers/{coded_id}?" in again.headers["Location"]
    assert offer_count(db) == offers_before


def test_an_expired_coded_offer_is_quoted_again_with_its_code(
    app, client, db, clock, version, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    publish_upgrade_codes(app, clock, tmp_path)
    offer_id, _, _ = _gate_offer_page(app, client, db, clock, version)
    coded_id, _ = _coded_page(client, portal.offer_link(app.config, "acme", offer_id), "PROHALF")
    clock.advance(minutes=31)
    moved = client.get(path(portal.offer_link(app.config, "acme", coded_id)))
    assert moved.status_code == 302
    page = html.unescape(client.get(path(moved.headers["Location"])).get_data(as_text=True))
    assert "has expired: here is the current price" in page
    assert "Code PROHALF (Half off your first Pro month) is included" in page


# ---- the account's plan changes, as the customer reads them ------------------------------------


def test_a_legacy_subscriber_sees_only_cheaper_tiers_as_moving_down(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    with db() as s:
        subscribe(s, "leg", clock, version, tier="team_legacy")  # $15.00 per month
    token = portal.account_token(app.config, "leg")
    overview = client.get(f"/billing?t={token}").get_data(as_text=True)
    assert "Move down to Starter ($9.00 per month)" in overview
    assert "Move down to Pro" not in overview and "Move down to Business" not in overview
    response = client.get(f"/billing/downgrade?t={token}&tier=business")
    assert response.status_code == 422
    assert "Business per month costs more than you pay for Team (legacy) now" in html.unescape(
        response.get_data(as_text=True)
    )
    # A form changed by hand (or an old page) posting Business as the move down.
    starter = client.get(f"/billing/downgrade?t={token}&tier=starter").get_data(as_text=True)
    refused = post_form(client, starter, SELF, {"tier": "business"}, url="/billing/downgrade")
    assert refused.status_code == 422
    with db() as s:
        assert s.get(Account, "leg").subscription.scheduled_tier_id is None  # type: ignore[union-attr]


def test_the_signed_in_pricing_page_moves_a_legacy_plan_only_where_billing_can(
    app, client, clock, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """A legacy plan with SSO at $15: Pro costs more but has no SSO, so it is neither an
    upgrade (the gate's rule: it must grant at least as much) nor a move down. The page ranked
    tiers by price and offered "Upgrade" to Pro, which /billing/upgrade refused (409)."""
    from tests.conftest import DEMO_CATALOG
    from tiers import store
    from tiers.loader import load_catalog_file

    text = DEMO_CATALOG.read_text().replace(
        "      automation_runs: 2000\n      pdf_export: true\n",
        "      automation_runs: 2000\n      pdf_export: true\n      sso: true\n",
        1,
    )
    assert "sso: true\n\naddons:" in text  # the legacy tier's features, last before add-ons
    source_path = tmp_path / "catalog.yaml"
    source_path.write_text(text)
    catalog, source = load_catalog_file(source_path)
    with get_db(app).session() as s:
        legacy = store.publish(s, catalog, source=source, author="t", note="sso", now=clock.now())
        subscribe(s, "leg", clock, legacy.version.version, tier="team_legacy")
    token = portal.account_token(app.config, "leg")
    page = html.unescape(client.get(f"/pricing?t={token}").get_data(as_text=True))
    cells = re.findall(r'<td class="cta-cell[^"]*">(.*?)</td>', page, re.S)
    buttons = {
        tier: next(c for c in cells if f'data-tier="{tier}"' in c)
        for tier in ("starter", "pro", "business")
    }
    pro = buttons["pro"]
    assert "href=" not in pro and "disabled" in pro and "Switch to Pro" in pro
    assert "Your plan includes something this plan does not: contact us" in pro
    business = buttons["business"]
    assert "Upgrade" in business and "/billing/upgrade?" in business
    starter = buttons["starter"]
    assert "Switch to Starter" in starter and "/billing/downgrade?" in starter
    # Each link works: the upgrade quotes, the move down offers its date.
    up = re.search(r'href="([^"]+)"', business).group(1)  # type: ignore[union-attr]
    assert client.get(up).status_code == 302
    down = re.search(r'href="([^"]+)"', starter).group(1)  # type: ignore[union-attr]
    assert client.get(down).status_code == 200


def test_switching_to_yearly_during_a_trial_says_the_trial_goes_on_and_what_is_charged_then(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    with db() as s:
        add_account(s, "newco", clock)
    token = portal.account_token(app.config, "newco")
    checkout = client.get(f"/billing/checkout?t={token}&tier=pro&interval=month")
    post_form(client, checkout.get_data(as_text=True), SELF, url="/billing/checkout")
    page = client.get(f"/billing/yearly?t={token}").get_data(as_text=True)
    assert "starts today" not in page
    # Pro yearly $290.00 with the yearly launch promotion (20 % off the first year).
    assert (
        "Your trial continues until November 29, 2026. Then yearly billing starts: $232.00 is "
        "charged on November 29, 2026 for the first year."
    ) in page
    assert "pay $0.00 today" in page
    post_form(client, page, SELF, url="/billing/yearly")
    clock.set(clock.now() + timedelta(days=14, minutes=1))
    with db() as s:
        [renewed] = service.apply_period_end(s, clock, ManualBilling())
        assert renewed.invoice is not None and renewed.invoice.amount_paid == 23200


def test_the_yearly_to_monthly_switch_is_called_a_switch_not_a_move_to_the_same_tier(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    end = PERIOD_END + timedelta(days=335)
    with db() as s:
        subscribe(s, "acme", clock, version, tier="pro", interval="year", period_end=end)
        s.add(
            AccountAddOn(
                account_id="acme",
                addon_id="seat_pack",
                quantity=1,
                active=True,
                purchased_at=clock.now(),
            )
        )
    overview = client.get(account_link(app)).get_data(as_text=True)
    link = re.search(r'href="([^"]+)">Switch to monthly billing', overview)
    assert link is not None
    page = client.get(html.unescape(link.group(1))).get_data(as_text=True)
    assert "<h1>Switch Pro to monthly billing</h1>" in page
    assert "Move from Pro to Pro" not in page and "Move to Pro on" not in page
    assert "After that you pay $54.00 per month." in page  # Pro $29.00 + Seat pack $25.00
    assert "Switch to monthly billing on October 31, 2027" in page
    post_form(client, page, SELF, url="/billing/downgrade")
    overview = client.get(account_link(app)).get_data(as_text=True)
    assert "On October 31, 2027 you move to Pro, $29.00 per month." in overview
    assert "Seat pack (+5 members) ends" not in overview  # it stays, at its monthly price


def test_a_trial_offer_does_not_call_its_zero_amount_prorated(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    with db() as s:
        subscribe(s, "acme", clock, version, status="trialing")
        s.get(Account, "acme").subscription.trial_end = clock.now() + timedelta(days=7)  # type: ignore[union-attr]
        set_gauge(s, "acme", "projects", 10, clock)
        s.flush()
        offer_id = gate_offer(s, clock, "acme", "projects", used=10, requested=1).id
    page = client.get(path(portal.offer_link(app.config, "acme", offer_id))).get_data(as_text=True)
    assert "nothing is charged today" in page
    assert "prorated" not in page


def test_not_now_without_a_return_url_opens_no_billing_page_from_an_offer_link(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    # An offer link (a gate key can get one) opens that offer only, never the account's
    # billing pages (cancel, add-ons): those need a billing link.
    offer_id, link = make_offer(app, db, clock, version)
    page = client.get(path(link)).get_data(as_text=True)
    dismissed = post_form(client, page, f"/offers/{offer_id}/dismiss")
    assert dismissed.status_code == 200
    text = dismissed.get_data(as_text=True)
    assert "/billing?" not in text and "You can close this page" in text


def test_not_now_without_a_return_url_continues_to_the_billing_page_it_came_from(
    app,
    client,
    db,
    clock,
    version,  # type: ignore[no-untyped-def]
) -> None:
    offer_id, link = make_offer(app, db, clock, version)
    billing = portal.account_token(app.config, "acme")
    page = client.get(path(link) + "&b=" + billing).get_data(as_text=True)
    dismissed = post_form(client, page, f"/offers/{offer_id}/dismiss")
    assert dismissed.status_code == 200
    href = re.search(r'href="([^"]+)">Continue<', dismissed.get_data(as_text=True))
    assert href is not None and href.group(1).startswith("http://localhost/billing?t=")
    billing = client.get(path(html.unescape(href.group(1))))
    assert billing.status_code == 200 and "You are on <strong>Starter</strong>" in (
        billing.get_data(as_text=True)
    )


def test_codes_cannot_be_guessed_ten_refused_codes_an_hour_per_account(
    app, client, db, clock, version, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """Ten refused codes within an hour, on the offer page or at checkout: the next one, even a
    real code, is answered 429 with when to try again, and nothing is quoted with it."""
    publish_upgrade_codes(app, clock, tmp_path)
    offer_id, _, _ = _gate_offer_page(app, client, db, clock, version)
    link = path(portal.offer_link(app.config, "acme", offer_id))
    for n in range(10):
        response = client.get(link + f"&code=GUESS{n}")
        assert response.status_code == 422, n
    blocked = client.get(link + "&code=PROHALF")
    assert blocked.status_code == 429
    text = html.unescape(blocked.get_data(as_text=True))
    assert "Too many promotion codes were tried for this account. Try again after 13:00" in text
    token = portal.account_token(app.config, "acme")
    checkout = client.get(f"/billing/checkout?t={token}&tier=business&interval=month&code=X")
    assert checkout.status_code in (409, 422, 429)  # acme already subscribes: no checkout
    clock.advance(minutes=61)  # the hour has passed (the offer's price expired meanwhile)
    fresh = client.get(link)  # re-quoted at today's price
    assert fresh.status_code == 302
    response = client.get(path(fresh.headers["Location"]) + "&code=PROHALF")
    while response.status_code == 302:
        response = client.get(path(response.headers["Location"]))
    assert "Code PROHALF (Half off your first Pro month) is included" in html.unescape(
        response.get_data(as_text=True)
    )


def test_refused_codes_at_checkout_count_too(app, client, db, clock, coded) -> None:  # type: ignore[no-untyped-def]
    base = f"/billing/checkout?t={coded}&tier=business&interval=month"
    for n in range(10):
        assert client.get(base + f"&code=GUESS{n}").status_code == 422
    blocked = client.get(base + "&code=WELCOME25")
    assert blocked.status_code == 429
    page = blocked.get_data(as_text=True)
    assert "Too many promotion codes" in page and 'data-amount="due_today">$79.00' in page


# ---- an account with no plan ---------------------------------------------------------------


def _without_a_free_tier(app, clock) -> None:  # type: ignore[no-untyped-def]
    """The demo catalog published again without its free tier: an account without a paid
    plan has no access at all."""
    from tests.gating.test_service import publish_variant

    publish_variant(get_db(app), clock, lambda doc: doc.update(tiers=doc["tiers"][1:]))


def _denied_offer(db, clock, feature: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The offer the gate answers a project creation (or a feature check) with."""
    from gating import service as gate

    settings = gate.GateSettings(past_due_grace_days=7, base_url="http://localhost")
    with db() as s:
        if feature == "projects":
            denied = gate.consume(s, clock, "acme", feature, 1, settings=settings)
        else:
            denied = gate.check(s, clock, "acme", feature, settings=settings)
    assert (denied.allowed, denied.reason) == (False, "no_access")
    assert denied.offer is not None
    return denied.offer


def test_an_account_whose_plan_ended_buys_the_offered_plan_at_the_amount_shown(
    app, client, db, clock, version
) -> None:  # type: ignore[no-untyped-def]
    """A catalog without a free tier: acme's Starter plan (billed in euros) ended, so it has no
    plan and cannot create a project. The gate offers Starter again in euros, its trial used:
    the page states the full first month, and paying it puts acme back on Starter, charged
    exactly that."""
    with db() as s:
        subscribe(s, "acme", clock, version, currency="eur", status="canceled")
        set_gauge(s, "acme", "projects", 8, clock)
    _without_a_free_tier(app, clock)
    clock.advance(days=16)  # the last period is over
    offer = _denied_offer(db, clock, "projects")
    assert (offer["from"]["tier"], offer["to"]["tier"], offer["currency"]) == (
        None,
        "starter",
        "eur",
    )
    link = path(portal.offer_link(app.config, "acme", offer["id"]))
    page = html.unescape(client.get(link).get_data(as_text=True))
    assert "<h1>Subscribe to Starter</h1>" in page
    assert "8 projects used \u2192 10 projects" in page
    due = re.search(r'data-amount="due_today">([^<\s]+)', page)
    assert due is not None and due.group(1) == "€9.00"
    assert "Starter costs €9.00 / month. Paid yearly: €90.00 / year" in page
    pay = re.search(r'data-pay="(\d+)">Upgrade now — pay €9.00 today', page)
    assert pay is not None and int(pay.group(1)) == offer["amount_due_today"] == 900
    accepted = post_form(client, page, f"/offers/{offer['id']}/accept")
    assert accepted.status_code == 302, accepted.get_data(as_text=True)[:500]
    [invoice] = invoices(db)
    assert (invoice.amount_paid, invoice.currency) == (900, "eur")
    with db() as s:
        sub = s.get(Account, "acme").subscription  # type: ignore[union-attr]
        assert (sub.tier_id, sub.status.value, sub.currency) == ("starter", "active", "eur")  # type: ignore[union-attr]
    assert event_types(db, offer["id"])[-1] == "paid"


def test_a_never_subscribed_account_with_no_plan_starts_the_offered_plans_trial(
    app, client, db, clock, version
) -> None:  # type: ignore[no-untyped-def]
    """A catalog without a free tier: a new account asks for PDF export. The offer is Starter
    with its 14-day trial, as a first plan from the free tier would be: nothing today, and
    accepting it starts the trial."""
    with db() as s:
        add_account(s, "acme", clock)
    _without_a_free_tier(app, clock)
    offer = _denied_offer(db, clock, "pdf_export")
    link = path(portal.offer_link(app.config, "acme", offer["id"]))
    page = html.unescape(client.get(link).get_data(as_text=True))
    assert "<h1>Subscribe to Starter</h1>" in page
    assert re.search(r'data-amount="due_today">\$0\.00', page)
    assert "Starter starts with a 14-day free trial: nothing is charged today" in page
    accepted = post_form(client, page, f"/offers/{offer['id']}/accept")
    assert accepted.status_code == 302, accepted.get_data(as_text=True)[:500]
    with db() as s:
        sub = s.get(Account, "acme").subscription  # type: ignore[union-attr]
        assert (sub.tier_id, sub.status.value) == ("starter", "trialing")  # type: ignore[union-attr]
        assert sub.trial_end == clock.now() + timedelta(days=14)  # type: ignore[union-attr]
    assert sum(i.amount_paid for i in invoices(db)) == 0


def test_an_account_with_no_plan_reads_so_on_its_billing_page(
    app, client, db, clock, version
) -> None:  # type: ignore[no-untyped-def]
    """A catalog without a free tier: the billing page of an account without a plan does not
    call it the free plan."""
    with db() as s:
        add_account(s, "acme", clock)
    _without_a_free_tier(app, clock)
    page = html.unescape(client.get(account_link(app)).get_data(as_text=True))
    assert "You have no plan yet: choose one below." in page
    assert "free plan" not in page


def test_an_offer_refused_after_the_grace_period_says_what_the_account_has_now(
    app, db, clock, version
) -> None:  # type: ignore[no-untyped-def]
    """The last payment failed and the grace period is over: buying a plan change waits for
    the open invoice, and the refusal says where the account is meanwhile (the free plan, or
    no plan where the catalog has no free tier)."""
    from billing.service import past_due_block

    with db() as s:
        subscribe(s, "acme", clock, version, tier="pro", status="past_due")
        s.get(Account, "acme").subscription.past_due_since = clock.now()  # type: ignore[union-attr]
    clock.advance(days=8)
    with db() as s:
        sub = s.get(Account, "acme").subscription  # type: ignore[union-attr]
        said = past_due_block(s, sub, clock.now())
    assert said is not None and "your account is on the free plan for now" in said
    _without_a_free_tier(app, clock)
    with db() as s:
        sub = s.get(Account, "acme").subscription  # type: ignore[union-attr]
        said = past_due_block(s, sub, clock.now())
    assert said is not None and "your account has no plan for now" in said
