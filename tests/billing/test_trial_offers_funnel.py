"""The funnel counts a trial's offer as paid when the trial's first charge is paid, not when
the trial starts: a trial canceled before it ends is accepted, never paid (manual billing;
the same through Stripe Checkout is in test_stripe_pages)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from billing import downgrade, portal
from billing.manual import ManualBilling
from gating.funnel import funnel
from tests.billing.conftest import gate_offer, set_gauge
from tests.billing.test_pages import SELF, db, event_types, paid_amounts, post_form
from tests.billing.test_trial_offers_manual import accept, invoices, offer_page, renew_at
from tiergate.db import get_db

__all__ = ["db"]  # fixture used here


def _funnel(app: Any, clock: Any) -> dict[str, Any]:
    with get_db(app).session() as s:
        until = clock.now() + timedelta(seconds=1)
        return funnel(s, since=until - timedelta(days=90), until=until).total.to_json()


def _start_trial(app: Any, client: Any, clock: Any, extra: dict[str, str] | None = None) -> str:
    offer_id, _, page = offer_page(app, client, clock, "newco", "projects", 3)
    response = accept(client, page, offer_id, extra)
    assert response.status_code == 302, response.get_data(as_text=True)
    return offer_id


def test_a_trial_offer_is_paid_at_the_trials_first_charge(
    app: Any, client: Any, clock: Any, db: Any, demo_catalog: Any
) -> None:
    offer_id = _start_trial(app, client, clock)
    assert [i.amount_paid for i in invoices(app, "newco")] == [0]
    assert event_types(db, offer_id)[-1] == "accepted"
    during = _funnel(app, clock)
    assert (during["accepted"], during["paid"], during["mrr_added"]) == (1, 0, {})
    renew_at(app, clock, clock.now() + timedelta(days=14, hours=1))
    first_charge = invoices(app, "newco")[-1].amount_paid
    assert first_charge == 900
    assert event_types(db, offer_id)[-2:] == ["accepted", "paid"]
    assert paid_amounts(db, offer_id) == [900]
    after = _funnel(app, clock)
    assert (after["accepted"], after["paid"], after["mrr_added"]) == (1, 1, {"usd": 900})
    renew_at(app, clock, clock.now() + timedelta(days=31))  # later renewals change nothing
    assert paid_amounts(db, offer_id) == [900]


def test_a_trial_canceled_before_its_end_is_never_counted_as_paid(
    app: Any, client: Any, clock: Any, db: Any, demo_catalog: Any
) -> None:
    offer_id = _start_trial(app, client, clock)
    with db() as s:
        downgrade.cancel(s, clock, ManualBilling(), "newco")
    renew_at(app, clock, clock.now() + timedelta(days=14, hours=1))  # the trial ends: free
    assert [i.amount_paid for i in invoices(app, "newco")] == [0]
    # A plan bought later, and its renewals, are not that trial's conversion.
    token = portal.account_token(app.config, "newco")
    url = f"/billing/checkout?t={token}&tier=starter&interval=month"
    page = client.get(url).get_data(as_text=True)
    assert post_form(client, page, SELF, url="/billing/checkout").status_code == 302
    renew_at(app, clock, clock.now() + timedelta(days=31))
    assert [i.amount_paid for i in invoices(app, "newco")] == [0, 900, 900]
    assert event_types(db, offer_id)[-1] == "accepted"
    assert _funnel(app, clock)["paid"] == 0


def test_a_one_time_addon_bought_with_the_trial_does_not_convert_it(
    app: Any, client: Any, clock: Any, db: Any, demo_catalog: Any
) -> None:
    """Automation runs from Free: Starter's trial with the Onboarding package ($299.00, paid
    today). The add-on is paid; the plan's offer is paid when the trial's charge is."""
    offer_id, _, page = offer_page(app, client, clock, "newco", "automation_runs", 100)
    response = accept(client, page, offer_id, {"addon": "yes"})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert [i.amount_paid for i in invoices(app, "newco")] == [29900]
    assert event_types(db, offer_id)[-1] == "accepted"
    renew_at(app, clock, clock.now() + timedelta(days=14, hours=1))
    assert paid_amounts(db, offer_id) == [900]


def test_a_second_upgrade_during_the_trial_does_not_erase_the_first_offers_sale(
    app: Any, client: Any, clock: Any, db: Any, demo_catalog: Any
) -> None:
    """newco (Free, 3 of 3 projects) takes Starter's 14-day trial from an offer; a day later,
    10 of 10 projects on Starter, it takes Pro from the gate's next offer (0.00 today, still in
    the trial). The trial's first charge is Pro's $29.00: both offers made that sale. The
    funnel must count both paid and the recurring revenue they added together, $29.00 a month
    (Starter's +$9.00 from Free and Pro's +$20.00 from Starter)."""
    first_id, _, page = offer_page(app, client, clock, "newco", "projects", 3)
    assert accept(client, page, first_id).status_code == 302
    clock.advance(days=1)
    with db() as s:
        set_gauge_to(s, "newco", "projects", 10, clock)
        second = gate_offer(s, clock, "newco", "projects", used=10, requested=1)
        second_id, to_tier, due = second.id, second.to_tier_id, second.amount_due_today
    assert (to_tier, due) == ("pro", 0)
    link = portal.offer_link(app.config, "newco", second_id).replace("http://localhost", "")
    page = client.get(link).get_data(as_text=True)
    response = accept(client, page, second_id)
    assert response.status_code == 302, response.get_data(as_text=True)

    renew_at(app, clock, clock.now() + timedelta(days=13, hours=1))  # the trial has ended
    assert invoices(app, "newco")[-1].amount_paid == 2900
    assert event_types(db, second_id)[-1] == "paid"
    totals = _funnel(app, clock)
    assert (totals["accepted"], totals["paid"]) == (2, 2), event_types(db, first_id)
    assert totals["mrr_added"] == {"usd": 2900}


def set_gauge_to(s: Any, account_id: str, feature: str, used: int, clock: Any) -> None:
    from sqlalchemy import select

    from gating.models import UsageCounter

    row = s.scalar(
        select(UsageCounter).where(
            UsageCounter.account_id == account_id, UsageCounter.feature_id == feature
        )
    )
    if row is None:
        set_gauge(s, account_id, feature, used, clock)
    else:
        row.used = used
        s.flush()
