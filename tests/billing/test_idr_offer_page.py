"""An IDR catalog end to end: Stripe counts two decimals for IDR (ISO 4217 none), and the
offer page shows exactly what is charged (it showed one hundred times the amount)."""

from __future__ import annotations

import re
from typing import Any

from billing import portal
from tests.billing.conftest import gate_offer, set_gauge, subscribe
from tests.billing.test_pages import invoices, path, post_form
from tests.fakestripe.billing import format_amount
from tiergate.db import get_db
from tiers import store
from tiers.loader import load_catalog_text

IDR = """
format: 1
currencies: [idr]
features:
  projects: {name: Projects, type: gauge, unit: project}
tiers:
  - id: free
    name: Free
    features: {projects: 3}
  - id: starter
    name: Starter
    prices: {month: {idr: 5000000}}      # Rp 50,000.00 in Stripe's minor units (sen)
    features: {projects: 10}
  - id: pro
    name: Pro
    prices: {month: {idr: 15000000}}     # Rp 150,000.00
    features: {projects: 50}
"""


def test_the_idr_offer_page_shows_the_amount_stripe_charges(
    app: Any, client: Any, clock: Any
) -> None:
    catalog = load_catalog_text(IDR)
    db = get_db(app).session
    with db() as s:
        version = store.publish(s, catalog, source=IDR, author="t", note="idr", now=clock.now())
        version_no = version.version.version
    with db() as s:
        subscribe(s, "acme", clock, version_no, currency="idr")  # halfway through its month
        set_gauge(s, "acme", "projects", 10, clock)
        offer = gate_offer(s, clock, "acme", "projects", used=10, requested=1)
        offer_id, due = offer.id, offer.amount_due_today
    assert due == 5_000_000  # (150,000.00 - 50,000.00) / 2 = Rp 50,000.00 in sen
    assert format_amount(due, "idr") == "50000.00 IDR"  # what Stripe charges
    page = client.get(path(portal.offer_link(app.config, "acme", offer_id))).get_data(as_text=True)
    shown = re.search(r"Upgrade now — pay (.+?) today", page).group(1)  # type: ignore[union-attr]
    post_form(client, page, f"/offers/{offer_id}/accept")
    assert [i.amount_paid for i in invoices(db)] == [due]
    assert "50,000" in shown and "5,000,000" not in shown, shown
