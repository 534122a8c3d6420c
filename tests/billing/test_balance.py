"""The customer's invoice balance: a credit (given by hand in Stripe's Dashboard, or left by a
change that nets to a credit) is taken off the next charges, in the quotes, by manual billing
and by Stripe alike, so the amount shown stays the amount charged."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from billing import portal, service
from billing.manual import ManualBilling
from billing.models import Invoice
from billing.provider import SubscriptionState
from billing.quotes import Quote, change_quote, renewal_quote
from gating.models import Account
from tests.billing.conftest import PERIOD_END, PERIOD_START, gate_offer, set_gauge, subscribe
from tests.billing.stripe_fixtures import fake_stripe
from tests.billing.test_pages import path, post_form
from tests.billing.test_provider_contract import HALFWAY, PRO, STARTER
from tests.billing.test_stripe_pages import (
    Shop,
    amount_on,
    customer_id,
    local_invoices,
    shop,
    subscription,
)
from tiergate.clock import FixedClock
from tiergate.db import get_db

__all__ = ["fake_stripe", "shop"]  # fixtures used here

CREDIT_LINE = "Applied from your account credit"


def _quote(total: int, balance: int) -> Quote:
    from billing.provider import Line

    return Quote("usd", (Line("x", total),), PERIOD_START, PERIOD_END, None, balance)


def test_a_quote_takes_a_credit_off_and_keeps_what_is_left() -> None:
    assert (_quote(1000, -400).amount_due, _quote(1000, -400).ending_balance) == (600, 0)
    assert _quote(1000, -400).credit_applied == 400
    assert (_quote(1000, -1500).amount_due, _quote(1000, -1500).ending_balance) == (0, -500)
    assert _quote(1000, -1500).credit_applied == 1000
    # a change that nets to a credit keeps it, and adds it to an earlier one
    assert (_quote(-300, 0).amount_due, _quote(-300, 0).ending_balance) == (0, -300)
    assert (_quote(-300, -200).amount_due, _quote(-300, -200).ending_balance) == (0, -500)
    # an amount owed is added to the next charge
    assert (_quote(1000, 250).amount_due, _quote(1000, 250).ending_balance) == (1250, 0)
    assert _quote(1000, 0).credit_applied == 0


def test_change_and_renewal_quotes_apply_the_subscriptions_balance() -> None:
    current = SubscriptionState(STARTER, (), "active", PERIOD_START, PERIOD_END, balance=-400)
    change = change_quote(current, PRO, (), (), HALFWAY, None)
    assert (change.total, change.amount_due, change.ending_balance) == (1000, 600, 0)
    renewal = renewal_quote(current, None)
    assert (renewal.total, renewal.amount_due) == (900, 500)


def _credit(app: Any, account_id: str, amount: int, currency: str = "usd") -> None:
    with get_db(app).session() as s:
        account = s.get(Account, account_id)
        assert account is not None
        account.balance, account.balance_currency = -amount, currency


def _balance(app: Any, account_id: str = "acme") -> tuple[int, str | None]:
    with get_db(app).sessionmaker() as s:
        account = s.get(Account, account_id)
        assert account is not None
        return account.balance, account.balance_currency


def test_manual_renewal_uses_the_credit_and_the_invoice_adds_up(
    app: Any, demo_catalog: Any, clock: FixedClock
) -> None:
    with get_db(app).session() as s:
        subscribe(s, "acme", clock, demo_catalog.version)
    _credit(app, "acme", 400)
    clock.set(PERIOD_END)
    with get_db(app).session() as s:
        [result] = service.apply_period_end(s, clock, ManualBilling())
    assert result.status is service.FlowStatus.DONE
    invoice = local_invoices(app)[-1]
    assert (invoice.amount_due, invoice.amount_paid) == (500, 500)
    assert sum(line["amount"] for line in invoice.lines) == 500
    assert [line["amount"] for line in invoice.lines if line["description"] == CREDIT_LINE] == [
        -400
    ]
    assert _balance(app) == (0, "usd")


def test_a_credit_in_another_currency_is_not_taken_off(
    app: Any, demo_catalog: Any, clock: FixedClock
) -> None:
    with get_db(app).session() as s:
        subscribe(s, "acme", clock, demo_catalog.version)
    _credit(app, "acme", 400, "eur")
    clock.set(PERIOD_END)
    with get_db(app).session() as s:
        service.apply_period_end(s, clock, ManualBilling())
    assert local_invoices(app)[-1].amount_paid == 900
    assert _balance(app) == (-400, "eur")


def test_the_offer_takes_the_credit_off_today_and_manual_billing_charges_that(
    app: Any, demo_catalog: Any, clock: FixedClock, client: Any
) -> None:
    """Starter -> Pro halfway: 10.00 today. With 15.00 of credit: 0.00 today, 5.00 left, so
    the renewal is 24.00; the invoice says how the credit settled it."""
    with get_db(app).session() as s:
        subscribe(s, "acme", clock, demo_catalog.version)
    _credit(app, "acme", 1500)
    with get_db(app).session() as s:
        set_gauge(s, "acme", "projects", 10, clock)
        offer = gate_offer(s, clock, "acme", "projects", used=10, requested=1)
        offer_id = offer.id
        assert (offer.amount_due_today, offer.next_renewal_amount) == (0, 2400)
    page = client.get(path(portal.offer_link(app.config, "acme", offer_id))).get_data(as_text=True)
    assert amount_on(page, r'data-amount="due_today">([^<]+)<') == 0
    assert amount_on(page, r'data-amount="next_renewal">(\S+) on') == 2400
    assert "credit" in page.lower()
    response = post_form(client, page, f"/offers/{offer_id}/accept")
    assert response.status_code == 302, response.get_data(as_text=True)
    assert subscription(app).tier_id == "pro"
    invoice = local_invoices(app)[-1]
    assert invoice.amount_paid == 0 and sum(line["amount"] for line in invoice.lines) == 0
    assert _balance(app) == (-500, "usd")
    clock.set(PERIOD_END)
    with get_db(app).session() as s:
        service.apply_period_end(s, clock, ManualBilling())
    assert local_invoices(app)[-1].amount_paid == 2400
    assert _balance(app) == (0, "usd")


# ---- through Stripe -------------------------------------------------------------------------


def _stripe_credit(shop: Shop, amount: int) -> None:
    """Someone gives the customer a credit in Stripe's Dashboard; Stripe sends
    customer.updated, and tiergate reads the balance from Stripe."""
    client = shop.fake.client()
    client.v1.customers.update(customer_id(shop.app), {"balance": -amount})
    assert "customer.updated" in shop.deliver()


def test_a_dashboard_credit_reaches_tiergate_and_the_upgrade_charges_what_stripe_charges(
    shop: Shop, client: Any
) -> None:
    shop.subscribed(STARTER)
    _stripe_credit(shop, 400)
    assert _balance(shop.app) == (-400, "usd")
    with get_db(shop.app).session() as s:
        set_gauge(s, "acme", "projects", 10, shop.clock)
        offer = gate_offer(s, shop.clock, "acme", "projects", used=10, requested=1)
        offer_id = offer.id
    page = client.get(path(portal.offer_link(shop.app.config, "acme", offer_id))).get_data(
        as_text=True
    )
    shown = amount_on(page, r'data-amount="due_today">([^<]+)<')
    assert shown == 600  # 10.00 less the 4.00 credit
    response = post_form(client, page, f"/offers/{offer_id}/accept")
    assert response.status_code == 302, response.get_data(as_text=True)
    upgrade = shop.stripe_invoices()[-1]
    assert (upgrade.amount_paid, upgrade.starting_balance, upgrade.ending_balance) == (
        shown,
        -400,
        0,
    )
    shop.deliver()
    assert subscription(shop.app).tier_id == "pro"
    assert _balance(shop.app)[0] == 0


def test_a_credit_larger_than_the_upgrade_is_kept_and_the_renewal_is_what_stripe_charges(
    shop: Shop, client: Any
) -> None:
    sub_id = shop.subscribed(STARTER)
    _stripe_credit(shop, 1500)
    with get_db(shop.app).session() as s:
        set_gauge(s, "acme", "projects", 10, shop.clock)
        offer = gate_offer(s, shop.clock, "acme", "projects", used=10, requested=1)
        offer_id, renewal = offer.id, offer.next_renewal_amount
    assert renewal == 2400
    page = client.get(path(portal.offer_link(shop.app.config, "acme", offer_id))).get_data(
        as_text=True
    )
    assert amount_on(page, r'data-amount="due_today">([^<]+)<') == 0
    assert post_form(client, page, f"/offers/{offer_id}/accept").status_code == 302
    shop.deliver()
    assert _balance(shop.app) == (-500, "usd")
    shop.fake.advance_to_period_end(sub_id)
    cycle = shop.stripe_invoices()[-1]
    assert (cycle.billing_reason, cycle.amount_paid) == ("subscription_cycle", renewal)


def test_reconcile_reads_a_balance_whose_event_was_lost(shop: Shop) -> None:
    from billing.reconcile import reconcile

    shop.subscribed(STARTER)
    shop.fake.client().v1.customers.update(customer_id(shop.app), {"balance": -700})
    with get_db(shop.app).session() as s:
        fixes = reconcile(s, shop.clock, shop.billing)
    assert any("balance 0 -> -700 usd" in fix for fix in fixes)
    assert _balance(shop.app) == (-700, "usd")
    with get_db(shop.app).sessionmaker() as s:
        assert s.scalars(select(Invoice)).all()  # the first invoice, untouched
