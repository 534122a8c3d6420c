"""The add-on page records a sale on the cross-sell offer it came from: only an offer of that
add-on alone, never an upgrade offer that suggested it (the plan was not bought)."""

from __future__ import annotations

import html
from typing import Any

from sqlalchemy import select

from billing import portal
from billing.models import Invoice
from gating.models import Account, AccountAddOn, Offer, OfferEvent
from tests.billing.conftest import form_fields, quote_offer, set_gauge, subscribe
from tiergate.db import get_db


def test_an_upgrade_offer_is_not_sold_by_buying_the_add_on_it_suggests(
    app: Any, client: Any, clock: Any, demo_catalog: Any
) -> None:
    """acme (Starter) has an open offer of Pro with Extended support. The add-on page named
    with that offer's id is not found, and a form posted with it is refused: nothing bought,
    the offer untouched, still to be accepted."""
    version = int(demo_catalog.version)
    with get_db(app).session() as s:
        subscribe(s, "acme", clock, version)
        set_gauge(s, "acme", "projects", 10, clock)
        offer_id = quote_offer(
            s, "acme", clock, version, amount_due_today=1000, new_recurring=2900,
            addon_id="extended_support",
        ).id  # fmt: skip
    t = portal.account_token(app.config, "acme")
    assert client.get(f"/billing/addons/extended_support?t={t}&offer={offer_id}").status_code == 404
    page = client.get(f"/billing/addons/extended_support?t={t}").get_data(as_text=True)
    fields = {**form_fields(page, 'method="post">'), "offer": offer_id}
    response = client.post("/billing/addons/extended_support", data=fields)
    assert response.status_code == 422, response.get_data(as_text=True)[:300]
    assert "is not an offer for 'extended_support' alone" in html.unescape(
        response.get_data(as_text=True)
    )
    with get_db(app).session() as s:
        assert s.get(Account, "acme").subscription.tier_id == "starter"  # type: ignore[union-attr]
        assert s.scalars(select(AccountAddOn)).all() == []
        assert s.scalars(select(Invoice)).all() == []
        assert s.scalars(select(OfferEvent).where(OfferEvent.offer_id == offer_id)).all() == []
        assert s.get(Offer, offer_id) is not None
