"""PostgreSQL + the fake Stripe: two charging flows of the same account at once.

With a remote provider the pending change is committed before Stripe is called, which ends the
account's lock (docs/design.md). A second flow of the same account quoted from the subscription
row as it was before the first was applied, and both reached Stripe; now a flow finding another
change of the account in flight answers "being confirmed" and changes nothing."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from billing import service
from billing.models import ChangeStatus
from billing.stripe_provider import StripeBilling
from tests.billing.race_helpers import tier_offer, together
from tests.billing.stripe_fixtures import WEBHOOK_SECRET, fake_stripe
from tests.billing.test_stripe_pages import (
    STARTER,
    URLS,
    Shop,
    changes,
    local_invoices,
    shop,
    subscription,
)
from tiergate.db import get_db

__all__ = ["fake_stripe", "shop"]


class TwoWorkers(StripeBilling):
    """StripeBilling whose change waits, after Stripe's preview agreed with the quote, for the
    other request to get as far (two gunicorn workers, each a few hundred ms into Stripe)."""

    def __init__(self, base: StripeBilling, parties: int = 2) -> None:
        super().__init__(base.client, webhook_secret=WEBHOOK_SECRET, base_url="http://localhost")
        self.barrier = threading.Barrier(parties)

    def _update(self, sub_id: str, params: Any, key: str, step: str) -> Any:
        if step == "tag":
            with contextlib.suppress(threading.BrokenBarrierError):
                self.barrier.wait(timeout=3)
        return super()._update(sub_id, params, key, step)


def test_two_different_offers_accepted_at_once_on_stripe_are_not_both_charged(
    shop: Shop, postgres_url: str
) -> None:
    sub_id = shop.subscribed(STARTER)
    database = get_db(shop.app)
    with database.session() as s:
        pro = tier_offer(s, shop.clock, "acme", "pro")  # 10.00 today (halfway)
        business = tier_offer(s, shop.clock, "acme", "business")  # 35.00 today
    provider = TwoWorkers(shop.billing)

    def accept(offer_id: str) -> Any:
        with shop.app.app_context(), database.sessionmaker() as s:
            try:
                result = service.accept_offer(s, shop.clock, provider, offer_id, "acme", urls=URLS)
                s.commit()
                return result.status.value, result.charged
            except Exception:
                s.commit()  # the view keeps a failed change (QuoteMismatch) for the operator
                raise

    outcomes = together(lambda: accept(pro), lambda: accept(business))
    stripe_sub = shop.stripe_subscription(sub_id)
    stripe_plan = stripe_sub["items"].data[0].price.lookup_key
    paid = [(i.billing_reason, i.amount_paid) for i in shop.stripe_invoices() if i.amount_paid]
    sub = subscription(shop.app)
    state = [(c.offer_id, c.status.value, c.error) for c in changes(shop.app) if c.offer_id]
    # Whatever the order, the customer must end up on the plan Stripe bills, and must not be
    # charged for an upgrade the account did not get.
    assert f":{sub.tier_id}:" in stripe_plan, (
        f"outcomes {outcomes}; Stripe bills {stripe_plan} and charged {paid}, tiergate has "
        f"{sub.tier_id}; changes {state}"
    )
    upgrades = [amount for reason, amount in paid if reason == "subscription_update"]
    applied = [c for c in changes(shop.app) if c.offer_id and c.status is ChangeStatus.APPLIED]
    assert len(upgrades) == 1, f"outcomes {outcomes}: Stripe charged {upgrades}"  # one, not two
    assert len(upgrades) == len(applied), (
        f"outcomes {outcomes}; Stripe charged {upgrades} for upgrades, tiergate applied "
        f"{len(applied)}; changes {state}; local invoices "
        f"{[i.amount_paid for i in local_invoices(shop.app)]}"
    )


class CancelDuringUpgrade(StripeBilling):
    """The upgrade's Stripe calls take a moment (as they do): the cancel the customer submits
    in another tab meanwhile reads the subscription row before the upgrade is recorded, and
    reaches Stripe after the upgrade's items were changed there."""

    def __init__(self, base: StripeBilling) -> None:
        super().__init__(base.client, webhook_secret=WEBHOOK_SECRET, base_url="http://localhost")
        self.modified = threading.Event()
        self.scheduled = threading.Event()

    def _update(self, sub_id: str, params: Any, key: str, step: str) -> Any:
        answer = super()._update(sub_id, params, key, step)
        if step == "modify":
            self.modified.set()
            self.scheduled.wait(3)
        return answer

    def schedule(self, request: Any) -> Any:
        self.modified.wait(3)
        try:
            return super().schedule(request)
        finally:
            self.scheduled.set()


def test_a_cancel_submitted_while_an_upgrade_is_charged_on_stripe_keeps_the_paid_plan(
    shop: Shop, postgres_url: str
) -> None:
    from billing import downgrade

    sub_id = shop.subscribed(STARTER)
    database = get_db(shop.app)
    with database.session() as s:
        pro = tier_offer(s, shop.clock, "acme", "pro")  # 10.00 today (halfway)
    provider = CancelDuringUpgrade(shop.billing)

    def accept() -> Any:
        with shop.app.app_context(), database.session() as s:
            result = service.accept_offer(s, shop.clock, provider, pro, "acme", urls=URLS)
            return result.status.value, result.charged

    def cancel() -> Any:
        with shop.app.app_context(), database.session() as s:
            return downgrade.cancel(s, shop.clock, provider, "acme").status.value

    outcomes = together(accept, cancel)
    stripe_sub = shop.stripe_subscription(sub_id)
    stripe_items = [item.price.lookup_key for item in stripe_sub["items"].data]
    paid = [(i.billing_reason, i.amount_paid) for i in shop.stripe_invoices() if i.amount_paid]
    sub = subscription(shop.app)
    assert ("subscription_update", 1000) in paid  # the upgrade was charged on Stripe
    assert any(":pro:" in key for key in stripe_items) and sub.tier_id == "pro", (
        f"outcomes {outcomes}: Stripe charged {paid} for Pro, but Stripe's items are now "
        f"{stripe_items} and tiergate has {sub.tier_id} (cancel at period end: "
        f"{sub.cancel_at_period_end})"
    )
