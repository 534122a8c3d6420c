"""PostgreSQL + the fake Stripe, webhooks
delivered while an upgrade of the same account is in flight, then every event delivered twice
at once (webhooks.process, each delivery on its own connection, as gunicorn workers run them).
The change row's lock makes the webhook settle the upgrade once and the request find it."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import select

from billing import service, webhooks
from billing.models import ChangeStatus, WebhookEvent
from billing.stripe_provider import StripeBilling
from gating.models import OfferEvent
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


def _deliver_all_at_once(shop: Shop, events: list[dict[str, Any]], copies: int = 1) -> list[Any]:
    database = get_db(shop.app)

    def one(event: dict[str, Any]) -> Any:
        with shop.app.app_context():
            return webhooks.process(database, shop.clock, shop.billing, event).status

    work = [lambda e=e: one(e) for e in events for _ in range(copies)]
    return together(*work)


class WebhooksDuringUpgrade(StripeBilling):
    """While the upgrade's last Stripe call is under way, Stripe's events of the change so far
    are delivered (by other workers, all at once)."""

    def __init__(self, base: StripeBilling, shop: Shop) -> None:
        super().__init__(base.client, webhook_secret=WEBHOOK_SECRET, base_url="http://localhost")
        self.shop = shop
        self.outcomes: list[Any] = []

    def _update(self, sub_id: str, params: Any, key: str, step: str) -> Any:
        answer = super()._update(sub_id, params, key, step)
        if step == "modify":
            pending = [e for e in self.shop.fake.events if e["id"] not in self.shop.delivered]
            self.shop.delivered.update(e["id"] for e in pending)
            box: list[Any] = []
            t = threading.Thread(
                target=lambda: box.append(_deliver_all_at_once(self.shop, pending))
            )
            t.start()
            t.join(20)
            self.outcomes = box
        return answer


def test_webhooks_delivered_while_an_upgrade_is_in_flight_record_it_once(
    shop: Shop, postgres_url: str
) -> None:
    shop.subscribed(STARTER)
    database = get_db(shop.app)
    with database.session() as s:
        offer_id = tier_offer(s, shop.clock, "acme", "pro")
    provider = WebhooksDuringUpgrade(shop.billing, shop)
    with shop.app.app_context(), database.session() as s:
        result = service.accept_offer(s, shop.clock, provider, offer_id, "acme", urls=URLS)
        outcome = (result.status.value, result.charged, result.message)
    # and every event again, twice each, at once
    again = _deliver_all_at_once(shop, list(shop.fake.events), copies=2)
    sub = subscription(shop.app)
    invoices = [(i.external_id, i.amount_paid) for i in local_invoices(shop.app)]
    with database.sessionmaker() as s:
        events = [
            e.type.value
            for e in s.scalars(select(OfferEvent).where(OfferEvent.offer_id == offer_id))
        ]
        failed = list(
            s.scalars(select(WebhookEvent.error).where(WebhookEvent.processed_at.is_(None)))
        )
    [change] = [c for c in changes(shop.app) if c.offer_id == offer_id]
    problems = []
    if sub.tier_id != "pro":
        problems.append(f"tier {sub.tier_id}")
    if len(invoices) != len({i for i, _ in invoices}) or len(invoices) != 2:
        problems.append(f"invoices {invoices}")
    if events.count("paid") != 1 or events.count("accepted") != 1:
        problems.append(f"offer events {events}")
    if change.status is not ChangeStatus.APPLIED:
        problems.append(f"change {change.status}")
    if failed:
        problems.append(f"failed webhooks {failed}")
    assert not problems, (
        f"{problems}; accept answered {outcome}; webhooks during it {provider.outcomes}, "
        f"after {again}"
    )
