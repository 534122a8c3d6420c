"""Webhook chaos: a full billing story on the fake Stripe API (real SDK, real StripeBilling),
its events delivered in order and then twice each in a shuffled order: same final state.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from billing.models import Invoice, WebhookEvent
from billing.provider import (
    ChangeRequest,
    Customer,
    ItemKind,
    Price,
    Result,
    ScheduleRequest,
    StartRequest,
    SubscriptionState,
)
from billing.quotes import change_quote
from billing.stripe_provider import StripeBilling
from gating.models import Account, AccountAddOn, Subscription
from tests.billing.conftest import add_account
from tests.billing.stripe_fixtures import WEBHOOK_SECRET, fake_stripe, stripe_billing
from tests.fakestripe import FakeStripe
from tiergate.clock import FixedClock
from tiergate.db import Base, get_db

__all__ = ["fake_stripe", "stripe_billing"]  # fixtures used here and in test_reconcile.py

URL = "/webhooks/stripe"
STARTER = Price(ItemKind.TIER, "starter", "Starter", "month", "usd", 900)
PRO = Price(ItemKind.TIER, "pro", "Pro", "month", "usd", 2900)
BILLING_TABLES = {
    "webhook_events",
    "invoices",
    "offer_events",
    "billing_changes",
    "account_addons",
    "notifications",
    "subscriptions",
    "offers",
    "usage_counters",
    "usage_requests",
    "overrides",
    "accounts",
}


@dataclass
class Story:
    """acme's billing on the fake Stripe API, driven through StripeBilling as the flows do."""

    fake: FakeStripe
    billing: StripeBilling
    app: Any
    account_id: str = "acme"
    sub_id: str = ""
    customer_id: str | None = None
    delivered: list[str] = field(default_factory=list)

    @property
    def customer(self) -> Customer:
        return Customer(self.account_id, f"{self.account_id}@example.com", "Acme", self.customer_id)

    def current(self) -> SubscriptionState:
        state = self.billing.fetch_subscription(self.sub_id)
        assert state is not None
        return state

    def checkout(self, plan: Price = STARTER, key: str = "chg_start") -> Result:
        """Start at Checkout and pay there, as the customer does."""
        request = StartRequest(
            key,
            self.customer,
            plan,
            (),
            (),
            self.fake.clock.now(),
            0,
            None,
            plan.amount,
            "http://localhost/ok",
            "http://localhost/no",
        )
        result = self.billing.start_subscription(request)
        assert result.external_id is not None
        self.customer_id = result.customer_external_id
        self.fake.complete_checkout(result.external_id)
        self.sub_id = self.fake.get(result.external_id)["subscription"]
        return result

    def upgrade(self, plan: Price = PRO, key: str = "chg_up", days: int = 5) -> Result:
        """Upgrade mid-period, charged the prorated difference now."""
        self.fake.advance(days * 86400)
        current = self.current()
        at = self.fake.clock.now()
        due = change_quote(current, plan, (), (), at, None).amount_due
        return self.billing.change_subscription(
            ChangeRequest(key, self.customer, current, plan, (), (), at, None, due, "http://x")
        )

    def fail_renewal(self) -> None:
        assert self.customer_id is not None
        self.fake.decline_next_payment(self.customer_id)
        self.fake.advance_to_period_end(self.sub_id)

    def recover(self) -> None:
        """The customer updates the card; the open invoice is paid."""
        client = self.fake.client()
        [invoice] = client.v1.invoices.list({"customer": self.customer_id, "status": "open"}).data
        assert invoice.id is not None
        client.v1.invoices.pay(invoice.id)

    def cancel(self) -> None:
        self.billing.schedule(
            ScheduleRequest("chg_cancel", self.customer, self.current(), None, None, True)
        )
        self.fake.advance_to_period_end(self.sub_id)

    def foreign_subscription(self) -> None:
        """Objects someone created by hand in the dashboard: no tiergate tags."""
        client = self.fake.client()
        product = client.v1.products.create({"name": "Consulting"})
        price = client.v1.prices.create(
            {
                "product": product.id,
                "currency": "usd",
                "unit_amount": 5000,
                "recurring": {"interval": "month"},
            }
        )
        customer = client.v1.customers.create({"email": "other@example.com"})
        assert customer.id is not None and price.id is not None
        self.fake.attach_card(customer.id)
        client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id}]})

    def deliver(self, events: list[dict[str, Any]] | None = None) -> list[str]:
        """Sign and POST events (default: those not delivered yet); every one must be a 200."""
        client = self.app.test_client()
        pending = (
            events
            if events is not None
            else [e for e in self.fake.events if e["id"] not in self.delivered]
        )
        statuses = []
        for evt in pending:
            done = self.fake.deliver(
                evt,
                lambda body, headers: client.post(URL, data=body, headers=headers),
                WEBHOOK_SECRET,
            )
            assert done.status == 200, (evt["type"], done.body)
            statuses.append(done.response.get_json()["status"])
            self.delivered.append(evt["id"])
        return statuses


@pytest.fixture
def story(
    app: Any,
    demo_catalog: Any,
    clock: FixedClock,
    fake_stripe: FakeStripe,
    stripe_billing: StripeBilling,
) -> Story:
    app.config["STRIPE_WEBHOOK_SECRET"] = WEBHOOK_SECRET
    app.extensions["tiergate.billing"] = stripe_billing
    with get_db(app).session() as s:
        add_account(s, "acme", clock)
    return Story(fake_stripe, stripe_billing, app)


def subscription(app: Any) -> Subscription:
    with get_db(app).sessionmaker() as s:
        account = s.get(Account, "acme")
        assert account is not None and account.subscription is not None
        return account.subscription


def local_state(app: Any) -> dict[str, Any]:
    """Everything billing keeps about acme, comparable across databases (no surrogate ids)."""
    with get_db(app).sessionmaker() as s:
        account = s.get(Account, "acme")
        assert account is not None
        sub = account.subscription
        columns = [c.key for c in Subscription.__table__.columns if c.key != "id"]
        invoices = s.scalars(select(Invoice).order_by(Invoice.external_id)).all()
        addons = s.scalars(select(AccountAddOn).order_by(AccountAddOn.addon_id)).all()
        events = s.scalars(select(WebhookEvent)).all()
        return {
            "customer": account.stripe_customer_id,
            "subscription": {k: getattr(sub, k) for k in columns} if sub else None,
            "invoices": [
                (
                    i.external_id,
                    i.status,
                    i.currency,
                    i.amount_due,
                    i.amount_paid,
                    i.lines,
                    i.change_id,
                    i.created_at,
                    i.paid_at,
                )
                for i in invoices
            ],
            "addons": [(a.addon_id, a.quantity, a.active) for a in addons],
            "events": len(events),
            "unprocessed": [e.id for e in events if e.processed_at is None],
        }


def fresh_billing_tables(app: Any, clock: FixedClock) -> None:
    """Empty every account and billing table (the published catalog stays)."""
    with get_db(app).session() as s:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name in BILLING_TABLES:
                s.execute(table.delete())
        add_account(s, "acme", clock)


def test_each_step_of_the_story_reaches_the_local_rows_through_webhooks(story: Story) -> None:
    story.checkout()
    story.deliver()
    sub = subscription(story.app)
    assert (sub.tier_id, sub.status, sub.provider) == ("starter", "active", "stripe")
    assert sub.stripe_subscription_id == story.sub_id
    assert local_state(story.app)["customer"] == story.customer_id
    assert [(i[0][:3], i[1], i[4]) for i in local_state(story.app)["invoices"]] == [
        ("in_", "paid", 900)
    ]

    upgraded = story.upgrade(days=5)
    story.deliver()
    assert subscription(story.app).tier_id == "pro"
    assert upgraded.charge is not None and upgraded.charge.amount_paid == 2417 - 750
    paid = sorted(i[4] for i in local_state(story.app)["invoices"])
    assert paid == [900, 1667]  # 25 of 30 days prorated: the upgrade's invoice is recorded

    story.fail_renewal()
    story.deliver()
    sub = subscription(story.app)
    failed = story.fake.events_of("invoice.payment_failed")[-1]
    assert sub.status == "past_due"
    assert sub.past_due_since == datetime.fromtimestamp(failed["created"], UTC)

    story.recover()
    story.deliver()
    sub = subscription(story.app)
    assert (sub.status, sub.past_due_since) == ("active", None)

    story.cancel()
    story.deliver()
    sub = subscription(story.app)
    assert sub.status == "canceled" and sub.canceled_at is not None


def test_events_delivered_twice_in_any_order_reach_the_same_state(
    story: Story, clock: FixedClock
) -> None:
    story.checkout()
    story.deliver()
    story.foreign_subscription()
    story.upgrade()
    story.deliver()
    story.fail_renewal()
    story.recover()
    story.deliver()
    story.cancel()
    story.deliver()
    in_order = local_state(story.app)
    assert in_order["subscription"]["status"] == "canceled"
    assert in_order["subscription"]["tier_id"] == "pro"
    assert in_order["unprocessed"] == []
    # The first invoice, the upgrade's proration, the renewal (declined, then paid).
    assert sorted((i[1], i[4]) for i in in_order["invoices"]) == [
        ("paid", 900),
        ("paid", 1667),
        ("paid", 2900),
    ]

    events = list(story.fake.events)
    for seed in (1, 2, 3):
        fresh_billing_tables(story.app, clock)
        doubled = events * 2
        random.Random(seed).shuffle(doubled)
        statuses = story.deliver(doubled)
        assert statuses.count("duplicate") == len(events)
        assert local_state(story.app) == in_order, f"seed {seed}"


def test_objects_without_the_tiergate_tag_are_acknowledged_and_ignored(story: Story) -> None:
    story.foreign_subscription()
    statuses = story.deliver()
    assert statuses and set(statuses) == {"processed"}
    with get_db(story.app).sessionmaker() as s:
        assert s.scalars(select(Subscription)).all() == []
        assert s.scalars(select(Invoice)).all() == []
