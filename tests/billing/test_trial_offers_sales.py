"""The sale an offer taken into a trial makes at the trial's first charge: which offers it
converts, and the amount each is recorded with (the funnel's paid amounts add up to what the
first charge took)."""

# ruff: noqa: F811
from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

from billing import downgrade, portal
from billing.manual import ManualBilling
from gating.funnel import funnel
from gating.models import Offer, OfferStatus, OfferTrigger
from tests.billing.conftest import add_account, gate_offer, set_gauge
from tests.billing.stripe_fixtures import fake_stripe  # noqa: F401
from tests.billing.stripe_trial_flows import buy_cross_sell
from tests.billing.test_pages import path, post_form
from tests.billing.test_stripe_pages import SELF, Shop, hosted_page, shop, subscription  # noqa: F401
from tests.billing.test_trial_offers_manual import accept, invoices, offer_page, renew_at
from tests.billing.test_trial_offers_stripe import offer_of, open_offer, paid_amounts, pay
from tiergate.clock import FixedClock
from tiergate.db import get_db

__all__ = ["fake_stripe", "shop"]


def _funnel(shop: Shop) -> dict[str, Any]:
    until = shop.clock.now() + timedelta(seconds=1)
    with get_db(shop.app).session() as s:
        return funnel(s, since=until - timedelta(days=90), until=until).total.to_json()


def _yearly_trial_switched_to_monthly(shop: Shop, client: Any, clock: Any) -> str:
    # newco (Free) hits the audit log: Pro's offer, the yearly alternative taken, Pro's trial.
    offer_id, _, page = open_offer(shop, client, clock, "newco", "audit_log", 0)
    pay(shop, client, page, offer_id, {"interval": "year"})
    sub = subscription(shop.app, "newco")
    assert (sub.status, sub.tier_id, sub.interval) == ("trialing", "pro", "year")
    assert paid_amounts(shop, "newco") == [0]
    assert offer_of(shop, offer_id).status is OfferStatus.ACCEPTED
    # During the trial the customer chooses monthly billing from the period (trial) end.
    with get_db(shop.app).session() as s:
        result = downgrade.confirm_downgrade(s, clock, shop.billing, "newco", "pro", "month")
    assert result.status.value == "done", result.message
    shop.deliver()
    sub = subscription(shop.app, "newco")
    assert (sub.interval, sub.scheduled_interval) == ("year", "month")
    return offer_id


def _starter_trial_from_an_offer(shop: Shop, client: Any, clock: FixedClock) -> str:
    """newco (Free, 3 of 3 projects) takes Starter's 14-day trial from the gate's offer through
    Checkout; returns the success page's path (which shows the cross-sell)."""
    with get_db(shop.app).session() as s:
        add_account(s, "newco", clock)
        set_gauge(s, "newco", "projects", 3, clock)
        offer_id = gate_offer(s, clock, "newco", "projects", used=3, requested=1).id
    link = path(portal.offer_link(shop.app.config, "newco", offer_id))
    page = client.get(link).get_data(as_text=True)
    response = post_form(client, page, f"/offers/{offer_id}/accept")
    assert response.status_code == 302
    status, _, back = hosted_page(response.headers["Location"], {"payment_method": "pm_card_visa"})
    assert status == 303
    shop.deliver()
    return path(back)


def _buy_cross_sell(shop: Shop, client: Any, back: str) -> tuple[str, str]:
    buy_cross_sell(client, back)
    shop.deliver()
    with get_db(shop.app).session() as s:
        offer = s.query(Offer).filter(Offer.trigger == OfferTrigger.POST_PURCHASE).one()
        return offer.id, str(offer.addon_id)


def _paid_events(shop: Shop, offer_id: str) -> list[int | None]:
    with get_db(shop.app).session() as s:
        offer = s.get(Offer, offer_id)
        return [e.amount for e in offer.events if e.type is OfferStatus.PAID]


def test_a_yearly_trial_switched_to_monthly_counts_its_first_charge_as_the_offers_sale(
    shop: Shop, client: Any, clock: Any
) -> None:
    """newco takes Pro yearly from an offer into Pro's 14-day trial through Stripe Checkout,
    then, still in the trial, switches to monthly from the trial's end. The first money is
    taken at the trial's end by the monthly subscription the switch starts (its first
    invoice): that is the offer's sale, recorded with the $29.00 taken."""
    offer_id = _yearly_trial_switched_to_monthly(shop, client, clock)
    yearly = subscription(shop.app, "newco").stripe_subscription_id
    assert yearly is not None
    shop.fake.advance_to_period_end(yearly)  # the trial ends; Stripe ends the yearly sub
    clock.set(shop.fake.clock.now() + timedelta(minutes=1))
    shop.deliver()
    shop.deliver()  # the monthly subscription's own events
    sub = subscription(shop.app, "newco")
    assert (sub.status.value, sub.tier_id, sub.interval) == ("active", "pro", "month")
    assert paid_amounts(shop, "newco")[-1] == 2900  # the money was taken
    offer = offer_of(shop, offer_id)
    totals = _funnel(shop)
    assert (offer.status, totals["paid"]) == (OfferStatus.PAID, 1), totals
    assert [e.amount for e in offer.events if e.type is OfferStatus.PAID] == [2900]


def test_a_trial_switched_to_monthly_then_canceled_after_paying_is_still_a_sale(
    shop: Shop, client: Any, clock: Any
) -> None:
    """As above, then the customer cancels after the first paid month: the $29.00 taken at
    the trial's end was the offer's sale, and stays one when the subscription ends."""
    offer_id = _yearly_trial_switched_to_monthly(shop, client, clock)
    yearly = subscription(shop.app, "newco").stripe_subscription_id
    assert yearly is not None
    shop.fake.advance_to_period_end(yearly)
    clock.set(shop.fake.clock.now() + timedelta(minutes=1))
    shop.deliver()
    shop.deliver()
    with get_db(shop.app).session() as s:
        downgrade.cancel(s, clock, shop.billing, "newco")
    shop.deliver()
    monthly = subscription(shop.app, "newco").stripe_subscription_id
    assert monthly is not None and monthly != yearly
    shop.fake.advance_to_period_end(monthly)
    clock.set(shop.fake.clock.now() + timedelta(minutes=1))
    shop.deliver()
    assert subscription(shop.app, "newco").status.value == "canceled"
    assert 2900 in paid_amounts(shop, "newco")
    assert offer_of(shop, offer_id).status is OfferStatus.PAID
    assert _funnel(shop)["paid"] == 1


def test_a_cross_sell_bought_during_a_stripe_trial_records_what_the_trials_end_charged_for_it(
    shop: Shop, client: Any, clock: FixedClock
) -> None:
    """newco starts Starter's trial from an offer and, on the success page, buys the
    post-purchase cross-sell (Extended support, $49.00 a month, nothing today). The trial's
    end charges Starter $9.00 + Extended support $49.00: the cross-sell is paid with the
    $49.00 charged for it (Stripe's invoice lines name the add-on by its product)."""
    back = _starter_trial_from_an_offer(shop, client, clock)
    offer_id, addon_id = _buy_cross_sell(shop, client, back)
    assert addon_id == "extended_support"
    assert _paid_events(shop, offer_id) == []  # waiting for the trial's first charge
    sub_id = subscription(shop.app, "newco").stripe_subscription_id
    assert sub_id is not None
    shop.fake.advance_to_period_end(sub_id)  # the trial ends: the first charge
    clock.set(shop.fake.clock.now() + timedelta(minutes=1))
    shop.deliver()
    charged = [i.amount_paid for i in shop.stripe_invoices("newco")]
    assert charged[-1] == 900 + 4900, charged
    assert _paid_events(shop, offer_id) == [4900]


def test_the_funnels_paid_amounts_add_up_to_what_the_trials_first_charge_took(
    shop: Shop, client: Any, clock: FixedClock
) -> None:
    """Same journey: the trial's first charge took $58.00; the plan offer is recorded with
    $9.00 and the add-on offer with $49.00, adding up to what was taken."""
    back = _starter_trial_from_an_offer(shop, client, clock)
    offer_id, _ = _buy_cross_sell(shop, client, back)
    sub_id = subscription(shop.app, "newco").stripe_subscription_id
    assert sub_id is not None
    shop.fake.advance_to_period_end(sub_id)
    clock.set(shop.fake.clock.now() + timedelta(minutes=1))
    shop.deliver()
    with get_db(shop.app).session() as s:
        plan_offer = s.query(Offer).filter(Offer.trigger == OfferTrigger.LIMIT_REACHED).one()
        plan_paid = [e.amount for e in plan_offer.events if e.type is OfferStatus.PAID]
    addon_paid = _paid_events(shop, offer_id)
    assert (plan_paid, addon_paid) == ([900], [4900])


def test_manual_a_trials_first_charge_is_counted_once_across_its_offers(
    app: Any, client: Any, clock: FixedClock, demo_catalog: Any
) -> None:
    """Manual billing, same journey: `tiergate billing renew` at the trial's end charges
    $58.00; the offers' recorded paid amounts add up to it (Starter $9.00, support $49.00)."""
    with get_db(app).session() as s:
        add_account(s, "newco", clock)
        set_gauge(s, "newco", "projects", 3, clock)
        offer_id = gate_offer(s, clock, "newco", "projects", used=3, requested=1).id
    page = client.get(path(portal.offer_link(app.config, "newco", offer_id))).get_data(as_text=True)
    accepted = post_form(client, page, f"/offers/{offer_id}/accept")
    assert accepted.status_code == 302, accepted.get_data(as_text=True)[:400]
    done = client.get(path(accepted.headers["Location"]), follow_redirects=True).get_data(
        as_text=True
    )
    href = re.search(r'href="(/billing/addons/[^"]+)"', done)
    assert href is not None, "no cross-sell"
    url = html.unescape(href.group(1))
    addon_page = client.get(url).get_data(as_text=True)
    bought = post_form(client, addon_page, SELF, url=url.split("?", 1)[0])
    assert bought.status_code == 302, bought.get_data(as_text=True)[:400]
    renew_at(app, clock, clock.now() + timedelta(days=14, hours=1))
    taken = sum(i.amount_paid for i in invoices(app, "newco"))
    assert taken == 900 + 4900
    with get_db(app).session() as s:
        recorded = sum(
            e.amount or 0
            for o in s.query(Offer).all()
            for e in o.events
            if e.type is OfferStatus.PAID
        )
    assert recorded == taken


def test_a_trial_downgraded_before_its_first_charge_is_not_counted_at_the_offers_price(
    app: Any, client: Any, clock: Any, demo_catalog: Any
) -> None:
    """newco (Free) takes Pro's 14-day trial from the audit-log offer, then during the trial
    schedules a move to Starter at the trial's end. The first charge is Starter's $9.00: Pro
    was never paid for, so the Pro offer stays accepted, not a sale, and adds no revenue."""
    offer_id, _, page = offer_page(app, client, clock, "newco", "audit_log", 0)
    assert accept(client, page, offer_id).status_code == 302
    with get_db(app).session() as s:
        result = downgrade.confirm_downgrade(s, clock, ManualBilling(), "newco", "starter")
        assert result.status.value == "done", result.message
    renew_at(app, clock, clock.now() + timedelta(days=14, hours=1))
    assert [i.amount_paid for i in invoices(app, "newco")] == [0, 900]

    assert offer_events(app, offer_id)[-1] is OfferStatus.ACCEPTED
    until = clock.now() + timedelta(seconds=1)
    with get_db(app).session() as s:
        total = funnel(s, since=until - timedelta(days=30), until=until).total.to_json()
    assert (total["paid"], total["mrr_added"]) == (0, {}), total


def offer_events(app: Any, offer_id: str) -> list[OfferStatus]:
    with get_db(app).session() as s:
        offer = s.get(Offer, offer_id)
        assert offer is not None
        return [e.type for e in offer.events]
