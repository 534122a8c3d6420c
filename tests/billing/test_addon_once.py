"""An add-on is bought once per form: a second submit, Back and submit again, or a retry after
the processor's answer was lost never charges twice, and whoever settles a one-time purchase
(the page, a webhook, reconcile) gives the customer what they paid for."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from billing import portal, service
from billing.models import BillingChange, ChangeStatus
from billing.provider import ItemKind, Price
from billing.reconcile import reconcile
from gating.models import AccountAddOn
from tests.billing.conftest import subscribe
from tests.billing.stripe_fixtures import fake_stripe, make_billing
from tests.billing.test_pages import SELF, db, invoices, post_form, version
from tests.billing.test_stripe_pages import STARTER, URL, Shop, shop
from tiergate.db import get_db

__all__ = ["db", "fake_stripe", "shop", "version"]  # fixtures used here

ONBOARDING = Price(ItemKind.ADDON, "onboarding", "Onboarding package", None, "usd", 29900)


def _addon_page(app: Any, client: Any, addon: str, account_id: str = "acme") -> str:
    token = portal.account_token(app.config, account_id)
    return str(client.get(f"/billing/addons/{addon}?t={token}").get_data(as_text=True))


def test_the_same_one_time_addon_form_submitted_twice_charges_once(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    with db() as s:
        subscribe(s, "acme", clock, version)
    page = _addon_page(app, client, "onboarding")
    assert "Add now — pay $299.00 today" in page
    first = post_form(client, page, SELF, url="/billing/addons/onboarding")
    second = post_form(client, page, SELF, url="/billing/addons/onboarding")  # Back, submit
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]  # the same purchase
    assert [i.amount_paid for i in invoices(db)] == [29900]
    with db() as s:
        rows = s.scalars(select(AccountAddOn).where(AccountAddOn.addon_id == "onboarding")).all()
        assert len(rows) == 1
    # Opened again (Back, a reload, from the billing page), the pages say it was bought and
    # what pressing the button does: buying it again on purpose is another purchase.
    clock.advance(minutes=1)
    again = _addon_page(app, client, "onboarding")
    assert "You bought Onboarding package on November 15, 2026. This buys it again." in again
    assert "Buy again — pay $299.00 today" in again and "Add now" not in again
    token = portal.account_token(app.config, "acme")
    billing = client.get(f"/billing?t={token}").get_data(as_text=True)
    assert "Onboarding package:\n    bought on November 15, 2026 · " in billing
    assert post_form(client, again, SELF, url="/billing/addons/onboarding").status_code == 302
    assert [i.amount_paid for i in invoices(db)] == [29900, 29900]


def test_the_addon_page_says_a_scheduled_cancellation_is_withdrawn(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    from billing import downgrade
    from billing.manual import ManualBilling

    with db() as s:
        subscribe(s, "acme", clock, version, tier="pro")
    with db() as s:
        downgrade.cancel(s, clock, ManualBilling(), "acme")
    page = _addon_page(app, client, "seat_pack")
    assert "the cancellation is withdrawn" in page


def _timed_out_purchase(shop: Shop) -> Any:
    """The Onboarding package bought through Stripe; Stripe's answer to the payment comes after
    the client stopped waiting (Stripe charged it)."""
    shop.subscribed(STARTER)
    billing = make_billing(shop.fake, retries=0, timeout=0.5)
    shop.app.extensions["tiergate.billing"] = billing
    billing._price_id(ONBOARDING)  # warm the price cache: a known list of requests
    shop.fake.delay_next(0, n=6)  # invoices list/create, item, finalize, customer, subscriptions
    shop.fake.delay_next(1.5, n=1)  # pay: answers too late
    with get_db(shop.app).session() as s:
        first = service.buy_addon(
            s,
            shop.clock,
            billing,
            "acme",
            "onboarding",
            proration_date=shop.clock.now(),
            expected_amount_due=29900,
            urls=service.Urls(URL, URL),
        )
    assert first.status is service.FlowStatus.PENDING, first.message
    time.sleep(1.6)  # Stripe finished the payment although we stopped waiting
    shop.clock.advance(minutes=3)
    shop.fake.advance(180)
    return billing


def _owned(app: Any) -> list[tuple[str, bool]]:
    with get_db(app).sessionmaker() as s:
        rows = s.scalars(select(AccountAddOn).where(AccountAddOn.addon_id == "onboarding")).all()
        return [(r.addon_id, r.active) for r in rows]


def test_retrying_a_timed_out_one_time_addon_through_stripe_does_not_charge_twice(
    shop: Shop,
) -> None:
    billing = _timed_out_purchase(shop)
    with get_db(shop.app).session() as s:
        again = service.buy_addon(
            s,
            shop.clock,
            billing,
            "acme",
            "onboarding",
            proration_date=shop.clock.now(),
            expected_amount_due=29900,
            urls=service.Urls(URL, URL),
        )
    assert again.status is service.FlowStatus.DONE
    assert "nothing was charged again" in again.message
    paid = [i for i in shop.stripe_invoices() if i.status == "paid" and i.amount_paid == 29900]
    assert len(paid) == 1
    assert _owned(shop.app) == [("onboarding", True)]


def test_reconcile_gives_a_one_time_addon_whose_payment_answer_was_lost(shop: Shop) -> None:
    billing = _timed_out_purchase(shop)
    with get_db(shop.app).session() as s:
        reconcile(s, shop.clock, billing)
    with get_db(shop.app).sessionmaker() as s:
        [change] = s.scalars(select(BillingChange).where(BillingChange.kind == "addon")).all()
        assert change.status is ChangeStatus.APPLIED
    assert _owned(shop.app) == [("onboarding", True)]
