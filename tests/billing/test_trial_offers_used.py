"""An account whose one trial was used between the quote and the accept."""

from __future__ import annotations

from datetime import timedelta

from gating.models import Subscription, SubscriptionStatus
from tests.billing.conftest import gate_offer
from tests.billing.test_trial_offers_manual import accept, invoices, offer_page
from tiergate.db import get_db


def _trial_used(app, clock, version: int) -> None:  # type: ignore[no-untyped-def]
    """A plan that started and ended (say, a trial canceled at once in the Stripe Dashboard):
    the account is on Free again, and its one trial is used."""
    with get_db(app).session() as s:
        s.add(
            Subscription(
                account_id="newco", tier_id="starter", interval="month", currency="usd",
                status=SubscriptionStatus.CANCELED, catalog_version=version,
                current_period_start=clock.now() - timedelta(minutes=10),
                current_period_end=clock.now(), created_at=clock.now(), updated_at=clock.now(),
            )
        )  # fmt: skip


def test_after_the_trial_was_used_the_app_opens_a_payable_offer_not_the_refused_one(
    app, client, clock, demo_catalog
) -> None:  # type: ignore[no-untyped-def]
    offer_id, _, page = offer_page(app, client, clock, "newco", "projects", 3)
    _trial_used(app, clock, demo_catalog.version)
    clock.advance(minutes=2)
    refused = accept(client, page, offer_id)
    assert refused.status_code == 409
    assert "Open the upgrade again from the app" in refused.get_data(as_text=True)
    assert invoices(app, "newco") == []
    # The customer does as told: the gate refuses the 4th project again and makes its offer.
    with get_db(app).session() as s:
        again = gate_offer(s, clock, "newco", "projects", used=3, requested=1)
        again_id, due, trial_end = again.id, again.amount_due_today, again.details["trial_end"]
    # Not the same trial quote (0.00 today), which could only be refused again.
    assert (again_id, due, trial_end) != (offer_id, 0, "2026-11-29T12:00:00Z")
    assert (due, trial_end) == (900, None)


def test_the_offer_page_of_a_trial_quote_does_not_promise_the_trial_once_it_is_used(
    app, client, clock, demo_catalog
) -> None:  # type: ignore[no-untyped-def]
    """The page shows the quote as no longer valid (`stale_offer`), not "a 14-day free trial"
    and "pay $0.00 today" that pressing the button would have refused (409)."""
    offer_id, link, _ = offer_page(app, client, clock, "newco", "projects", 3)
    _trial_used(app, clock, demo_catalog.version)
    response = client.get(link)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Upgrade now — pay $0.00 today" not in body
    assert "starts with a 14-day free trial" not in body
    assert "it no longer applies and nothing was charged" in body
