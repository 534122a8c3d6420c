"""An offer's expiry is shown only when its price really moves (UPSELL.md rule 6): a prorated
change costs a little less every second, a first plan or a change during a trial does not."""

from __future__ import annotations

import re
from typing import Any

from billing import portal
from gating import offers
from tests.billing.conftest import add_account, gate_offer, set_gauge, subscribe
from tests.billing.test_pages import db, path, version

__all__ = ["db", "version"]  # fixtures used here


def _amounts(page: str) -> list[str]:
    return re.findall(r'data-amount="(?:new_recurring|due_today|next_renewal)">([^<]+)<', page)


def _open(app: Any, client: Any, offer_id: str, account_id: str = "acme") -> str:
    link = portal.offer_link(app.config, account_id, offer_id)
    return client.get(path(link)).get_data(as_text=True)


def test_a_first_plans_quote_shows_no_countdown_and_is_requoted_silently(
    app: Any, client: Any, db: Any, clock: Any, version: Any
) -> None:
    """A never-subscribed Free account is offered Starter with its trial: nothing today, $9.00
    at the trial's end, whenever it accepts. No "holds until" countdown, and opened after the
    quote's internal expiry the page shows the same amounts with no "has expired" notice."""
    with db() as s:
        add_account(s, "acme", clock)
        set_gauge(s, "acme", "projects", 3, clock)
        offer = gate_offer(s, clock, "acme", "projects", used=3, requested=1)
        offer_id, body = offer.id, offers.offer_json(offer, "http://localhost")
    page = _open(app, client, offer_id)
    assert _amounts(page) and "holds until" not in page
    assert "expires_at" not in body["display"]
    assert body["expires_at"] is not None  # still re-quoted after it, for catalog changes
    clock.advance(minutes=31)
    moved = client.get(path(portal.offer_link(app.config, "acme", offer_id)))
    assert moved.status_code == 302
    later = client.get(path(moved.headers["Location"])).get_data(as_text=True)
    assert _amounts(later) == _amounts(page)
    assert "has expired" not in later and "holds until" not in later


def test_a_prorated_upgrade_shows_until_when_its_price_holds(
    app: Any, client: Any, db: Any, clock: Any, version: Any
) -> None:
    """A Starter customer mid-period is quoted Pro prorated to the second: the page says how
    long that price holds, and the API's display says the same."""
    with db() as s:
        subscribe(s, "acme", clock, version)
        set_gauge(s, "acme", "projects", 10, clock)
        offer = gate_offer(s, clock, "acme", "projects", used=10, requested=1)
        offer_id, body = offer.id, offers.offer_json(offer, "http://localhost")
    assert "This price holds until 12:30 UTC" in _open(app, client, offer_id)
    assert body["display"]["expires_at"] == "Price valid until 12:30 UTC"
