"""An account credit through Stripe: a one-time add-on, and an offer with its one-time add-on
ticked, are charged as shown, the balance applied once as Stripe applies it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from billing import portal
from gating.models import Account, AccountAddOn
from tests.billing.conftest import csrf_of, form_fields, gate_offer
from tests.billing.stripe_fixtures import fake_stripe
from tests.billing.test_pages import SELF, path, post_form
from tests.billing.test_stripe_pages import STARTER, Shop, customer_id, shop
from tiergate.db import get_db

__all__ = ["fake_stripe", "shop"]


def _stripe_credit(shop: Shop, amount: int) -> None:
    client = shop.fake.client()
    client.v1.customers.update(customer_id(shop.app), {"balance": -amount})
    assert "customer.updated" in shop.deliver()


def _balance(app: Any) -> int:
    with get_db(app).sessionmaker() as s:
        account = s.get(Account, "acme")
        assert account is not None
        return account.balance


def test_one_time_addon_with_a_credit_through_stripe_is_charged_as_shown(
    shop: Shop, client: Any
) -> None:
    """The add-on page quotes the onboarding package with the credit taken off (299.00 - 4.00),
    and that is what Stripe's invoice charges."""
    shop.subscribed(STARTER)
    _stripe_credit(shop, 400)
    token = portal.account_token(shop.app.config, "acme")
    page = client.get(f"/billing/addons/onboarding?t={token}").get_data(as_text=True)
    assert "$295.00" in page  # the credit is taken off the quote
    response = post_form(client, page, SELF, url="/billing/addons/onboarding")
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    paid = [i for i in shop.stripe_invoices() if i.status == "paid"]
    assert paid[-1].amount_paid == 29500
    with get_db(shop.app).sessionmaker() as s:
        rows = s.scalars(select(AccountAddOn).where(AccountAddOn.addon_id == "onboarding")).all()
        assert len(rows) == 1


def test_offer_with_one_time_addon_and_credit_larger_than_the_proration_through_stripe(
    shop: Shop, client: Any
) -> None:
    """Starter -> Pro halfway is 10.00; a 15.00 credit covers it (0.00 today, 5.00 left). The
    offer's Onboarding checkbox adds 299.00 - 5.00 = 294.00: the one invoice, with the balance
    applied once, is what Stripe charges."""
    shop.subscribed(STARTER)
    _stripe_credit(shop, 1500)
    with get_db(shop.app).session() as s:
        offer = gate_offer(s, shop.clock, "acme", "automation_runs", used=1000, requested=1)
        offer_id = offer.id
        assert offer.addon_id == "onboarding"
        assert offer.amount_due_today == 0
    page = client.get(path(portal.offer_link(shop.app.config, "acme", offer_id))).get_data(
        as_text=True
    )
    assert "Onboarding" in page
    fields = form_fields(page, f"/offers/{offer_id}/accept")
    fields["addon"] = "yes"
    fields.setdefault("csrf_token", csrf_of(page))
    response = client.post(f"/offers/{offer_id}/accept", data=fields)
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    paid = [i for i in shop.stripe_invoices() if i.status == "paid"]
    assert paid[-1].amount_paid == 29400
