"""PostgreSQL + the fake Stripe: `tiergate billing reconcile` running while a customer's
upgrade is being charged (the request and reconcile both settle the same pending change)."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import select

from billing import service
from billing.reconcile import reconcile
from billing.stripe_provider import StripeBilling
from gating.models import OfferEvent
from tests.billing.race_helpers import tier_offer, together
from tests.billing.stripe_fixtures import WEBHOOK_SECRET, fake_stripe
from tests.billing.test_stripe_pages import (
    STARTER,
    URLS,
    Shop,
    local_invoices,
    shop,
    subscription,
)
from tiergate.db import get_db

__all__ = ["fake_stripe", "shop"]


class Request(StripeBilling):
    """The customer's request: says when Stripe has made the change."""

    def __init__(self, base: StripeBilling, modified: threading.Event) -> None:
        super().__init__(base.client, webhook_secret=WEBHOOK_SECRET, base_url="http://localhost")
        self.modified = modified

    def _update(self, sub_id: str, params: Any, key: str, step: str) -> Any:
        answer = super()._update(sub_id, params, key, step)
        if step == "modify":
            self.modified.set()
        return answer


class Reconciling(StripeBilling):
    """Reconcile's Stripe look-ups take a moment (several list calls per change): the request
    records its answer meanwhile."""

    def __init__(self, base: StripeBilling, committed: threading.Event) -> None:
        super().__init__(base.client, webhook_secret=WEBHOOK_SECRET, base_url="http://localhost")
        self.committed = committed

    def find_change(self, idempotency_key: str) -> Any:
        self.committed.wait(5)
        return super().find_change(idempotency_key)


def test_reconcile_during_an_upgrade_settles_the_change_once(shop: Shop, postgres_url: str) -> None:
    shop.subscribed(STARTER)
    database = get_db(shop.app)
    with database.session() as s:
        offer_id = tier_offer(s, shop.clock, "acme", "pro")
    modified, committed = threading.Event(), threading.Event()

    def accept() -> Any:
        try:
            with shop.app.app_context(), database.session() as s:
                r = service.accept_offer(
                    s, shop.clock, Request(shop.billing, modified), offer_id, "acme", urls=URLS
                )
                outcome = (r.status.value, r.charged)
            return outcome
        finally:
            committed.set()

    def run_reconcile() -> Any:
        modified.wait(5)  # the operator runs it while the upgrade is being charged
        with shop.app.app_context(), database.session() as s:
            return reconcile(s, shop.clock, Reconciling(shop.billing, committed))

    outcomes = together(accept, run_reconcile)
    with database.sessionmaker() as s:
        events = [
            e.type.value
            for e in s.scalars(select(OfferEvent).where(OfferEvent.offer_id == offer_id))
        ]
    invoices = [(i.external_id, i.amount_paid) for i in local_invoices(shop.app)]
    assert subscription(shop.app).tier_id == "pro"
    assert isinstance(outcomes[1], list), f"reconcile failed: {outcomes[1]} (accept: {outcomes[0]})"
    assert events == ["accepted", "paid"], events
    assert len(invoices) == 2, invoices
