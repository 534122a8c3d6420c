"""An account credit (or an amount owed) with manual billing: one-time add-ons ticked with an
offer are owned, an amount owed is stated and charged, the credit note is honest."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from billing import portal
from gating.models import Account, AccountAddOn
from tests.billing.conftest import csrf_of, form_fields, gate_offer, set_gauge, subscribe
from tests.billing.test_pages import db, invoices, path, version

__all__ = ["db", "version"]


def _page(app: Any, client: Any, offer_id: str) -> str:
    return str(
        client.get(path(portal.offer_link(app.config, "acme", offer_id))).get_data(as_text=True)
    )


def _accept(client: Any, page: str, offer_id: str, **extra: str) -> Any:
    fields = form_fields(page, f"/offers/{offer_id}/accept")
    fields.setdefault("csrf_token", csrf_of(page))
    return client.post(f"/offers/{offer_id}/accept", data={**fields, **extra})


def test_a_one_time_addon_bought_with_an_offer_is_owned_and_not_sold_again(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    """Onboarding ticked on the offer page is charged (299.00) and owned."""
    with db() as s:
        subscribe(s, "acme", clock, version)
        offer = gate_offer(s, clock, "acme", "automation_runs", used=1000, requested=1)
        offer_id = offer.id
        assert offer.addon_id == "onboarding"
    response = _accept(client, _page(app, client, offer_id), offer_id, addon="yes")
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    assert sum(i.amount_paid for i in invoices(db)) == 1000 + 29900
    with db() as s:
        rows = s.scalars(select(AccountAddOn).where(AccountAddOn.addon_id == "onboarding")).all()
        assert len(rows) == 1


def test_a_trialing_account_that_owes_a_balance_can_accept_the_offer_it_was_shown(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    """An amount owed (5.00) during a trial: nothing of the plan is charged today, the amount
    owed is, as Stripe charges a balance on the trial's 0.00 invoice; the page says so."""
    with db() as s:
        subscribe(s, "acme", clock, version, status="trialing")
        account = s.get(Account, "acme")
        account.subscription.trial_end = clock.now() + timedelta(days=7)
        account.balance, account.balance_currency = 500, "usd"
        set_gauge(s, "acme", "projects", 10, clock)
        offer = gate_offer(s, clock, "acme", "projects", used=10, requested=1)
        offer_id = offer.id
        assert offer.amount_due_today == 500
    page = _page(app, client, offer_id)
    assert "Today's amount includes $5.00 owed from earlier invoices." in page
    assert "only the $5.00 owed from earlier invoices is charged today" in page
    response = _accept(client, page, offer_id)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    with db() as s:
        assert s.get(Account, "acme").subscription.tier_id == "pro"


def test_an_amount_owed_is_not_reported_as_a_negative_credit_used(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    """An amount owed (2.50): the offer charges 10.00 + 2.50 today and says why."""
    from gating.offers import offer_json

    with db() as s:
        subscribe(s, "acme", clock, version)
        account = s.get(Account, "acme")
        account.balance, account.balance_currency = 250, "usd"
        set_gauge(s, "acme", "projects", 10, clock)
        offer = gate_offer(s, clock, "acme", "projects", used=10, requested=1)
        assert offer.amount_due_today == 1250
        body = offer_json(offer, "http://localhost")
    assert body["credit"] == {"applied": 0, "left": 0, "owed": 250}


def test_the_credit_note_says_a_ticked_addon_uses_the_credit_first(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    with db() as s:
        subscribe(s, "acme", clock, version)
        account = s.get(Account, "acme")
        account.balance, account.balance_currency = -1500, "usd"
        offer = gate_offer(s, clock, "acme", "automation_runs", used=1000, requested=1)
        offer_id = offer.id
    page = _page(app, client, offer_id)
    assert "adding Onboarding package uses it first" in page
    hint = "With Onboarding package: $294.00 today, then $29.00 on November 30, 2026."
    assert hint in page  # the credit is used up today: the renewal is the full price
    assert _accept(client, page, offer_id, addon="yes").status_code == 302
    from billing import service
    from billing.manual import ManualBilling
    from tests.billing.conftest import PERIOD_END

    clock.set(PERIOD_END)
    with db() as s:
        service.apply_period_end(s, clock, ManualBilling())
    assert sorted(invoices(db), key=lambda i: i.id)[-1].amount_paid == 2900
