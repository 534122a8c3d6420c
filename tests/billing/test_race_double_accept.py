"""PostgreSQL, manual billing: "Upgrade now" pressed twice at once (a double click, or the
same offer open in two tabs)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from billing import portal
from billing.manual import ManualBilling
from billing.models import Invoice
from billing.provider import ChangeRequest, Result
from gating.models import Offer, OfferEvent, OfferStatus
from tests.billing.conftest import form_fields, subscribe
from tests.billing.race_helpers import tier_offer, together
from tests.billing.test_pages import version
from tiergate.db import get_db

__all__ = ["version"]


class SlowManual(ManualBilling):
    """Manual billing whose change takes a moment (a busy database, a slow host)."""

    def change_subscription(self, request: ChangeRequest) -> Result:
        time.sleep(0.5)
        return super().change_subscription(request)


def test_a_double_click_on_upgrade_now_leaves_the_offer_paid(
    app: Any, postgres_url: str, clock: Any, version: int
) -> None:
    """acme (Starter) opens the Pro offer and double-clicks "Upgrade now": one charge, and
    the offer stays "paid" (a late click never moves a bought offer back to an open one that
    the gate could offer again or the customer dismiss)."""
    database = get_db(app)
    with database.session() as s:
        subscribe(s, "acme", clock, version)
        offer_id = tier_offer(s, clock, "acme", "pro")
    app.extensions["tiergate.billing"] = SlowManual()
    link = portal.offer_link(app.config, "acme", offer_id).replace("http://localhost", "")
    tabs = []
    for _ in range(2):  # the offer open in two tabs (one browser: each page its own form)
        tab = app.test_client()
        page = tab.get(link).get_data(as_text=True)
        tabs.append((tab, form_fields(page, f"/offers/{offer_id}/accept")))

    def click(tab: Any, fields: dict[str, str]) -> Any:
        return tab.post(f"/offers/{offer_id}/accept", data=fields).status_code

    outcomes = together(*(lambda t=t, f=f: click(t, f) for t, f in tabs))
    with database.sessionmaker() as s:
        paid = [i.amount_paid for i in s.scalars(select(Invoice))]
        offer = s.get(Offer, offer_id)
        events = [
            e.type.value
            for e in s.scalars(
                select(OfferEvent).where(OfferEvent.offer_id == offer_id).order_by(OfferEvent.id)
            )
        ]
        status = offer.status
    assert len(paid) == 1, (outcomes, paid)
    assert status is OfferStatus.PAID, (
        f"clicks answered {outcomes}; charged {paid}; events {events}; the offer is now "
        f"{status.value}"
    )
