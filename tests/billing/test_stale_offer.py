"""An offer is quoted from the plan the account was on. Once the account has moved (a bigger
upgrade bought in another tab, the yearly switch, a cancellation), the old offer's page says so
and cannot be paid: it would move the account sideways or down at a price made for another
plan."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from billing import portal
from gating.models import Account
from tests.billing.conftest import gate_offer, set_gauge, subscribe
from tests.billing.test_pages import db, invoices, path, post_form, version

__all__ = ["db", "version"]  # fixtures used here


def _two_offers(db: Any, clock: Any, version: int, *, trialing: bool) -> tuple[str, str]:
    """acme on Starter, 10 of 10 projects: the gate offers Pro (projects) and Business (SSO)."""
    with db() as s:
        subscribe(s, "acme", clock, version, status="trialing" if trialing else "active")
        if trialing:
            s.get(Account, "acme").subscription.trial_end = clock.now() + timedelta(days=7)
        set_gauge(s, "acme", "projects", 10, clock)
        s.flush()
        pro = gate_offer(s, clock, "acme", "projects", used=10, requested=1).id
        business = gate_offer(s, clock, "acme", "sso", used=None, requested=None).id
    return pro, business


def _page(app: Any, client: Any, offer_id: str) -> str:
    link = path(portal.offer_link(app.config, "acme", offer_id))
    return str(client.get(link).get_data(as_text=True))


def _tier(db: Any) -> str:
    with db() as s:
        return str(s.get(Account, "acme").subscription.tier_id)


def test_a_zero_amount_offer_left_open_in_a_tab_cannot_move_the_account_down(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    """During a trial every upgrade is 0.00 today, so the amount check alone lets it through."""
    pro, business = _two_offers(db, clock, version, trialing=True)
    pro_page = _page(app, client, pro)
    post_form(client, _page(app, client, business), f"/offers/{business}/accept")
    assert _tier(db) == "business"
    response = post_form(client, pro_page, f"/offers/{pro}/accept")
    assert response.status_code == 409
    text = response.get_data(as_text=True)
    assert "Your account is now on Business" in text and "nothing was charged" in text
    assert _tier(db) == "business"


def test_the_page_of_an_offer_made_for_an_earlier_plan_says_so_and_sells_nothing(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    pro, business = _two_offers(db, clock, version, trialing=False)
    post_form(client, _page(app, client, business), f"/offers/{business}/accept")
    page = _page(app, client, pro)
    assert "Your account is now on Business, billed monthly" in page
    assert f"/offers/{pro}/accept" not in page and "Upgrade now" not in page
    assert [i.amount_paid for i in invoices(db)] == [3500]


def test_the_offer_for_the_tier_already_bought_says_it_is_already_held(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    with db() as s:
        subscribe(s, "acme", clock, version)
        set_gauge(s, "acme", "projects", 10, clock)
        first = gate_offer(s, clock, "acme", "projects", used=10, requested=1).id
    clock.advance(minutes=31)  # a second offer, not the reused first one
    with db() as s:
        second = gate_offer(s, clock, "acme", "projects", used=10, requested=1).id
    assert first != second
    post_form(client, _page(app, client, second), f"/offers/{second}/accept")
    assert _tier(db) == "pro"
    assert "You are already on Pro" in _page(app, client, first)
