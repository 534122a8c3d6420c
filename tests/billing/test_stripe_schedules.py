"""A yearly -> monthly switch through Stripe, end to end: StripeBilling against the fake Stripe
API, the fake's events delivered to the signed webhook endpoint, and reconcile.

Stripe cannot move a subscription to another interval at its period end without a new billing
cycle, so tiergate lets it end the yearly subscription and starts the monthly one when it has
ended: from the webhook of its end, or reconcile (operators do not run `billing renew` for
Stripe). Whichever sees it first, in any order and any number of times, the customer ends up
on one monthly subscription, charged once.
"""

# ruff: noqa: F811 - the pytest fixtures imported are parameters here
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from billing import downgrade, service
from billing.models import BillingChange, ChangeStatus
from billing.provider import Customer, ItemKind, Price, StartRequest
from billing.reconcile import reconcile
from billing.sync_state import switch_change_id
from tests.billing.conftest import PERIOD_START, add_account
from tests.billing.stripe_fixtures import HALFWAY, fake_stripe  # noqa: F401
from tests.billing.test_stripe_pages import (  # noqa: F401
    URL,
    Shop,
    customer_id,
    local_invoices,
    shop,
    subscription,
)
from tiergate.db import get_db

STARTER = Price(ItemKind.TIER, "starter", "Starter", "month", "usd", 900)
STARTER_YEAR = Price(ItemKind.TIER, "starter", "Starter", "year", "usd", 9000)
YEAR_END = datetime(2027, 10, 31, 12, 0, tzinfo=UTC)


def yearly_switching_to_monthly(shop: Shop) -> str:
    """acme paid Starter yearly at Checkout at PERIOD_START and, halfway through, asked for
    Starter monthly from the period end; the events are delivered. Returns the yearly sub."""
    shop.fake.reset(now=PERIOD_START)
    shop.delivered.clear()
    with get_db(shop.app).session() as s:
        add_account(s, "acme", shop.clock)
    customer = Customer("acme", "acme@example.com", "acme")
    start = StartRequest(
        "chg_yearly", customer, STARTER_YEAR, (), (), PERIOD_START, 0, None, 9000, URL, URL
    )
    started = shop.billing.start_subscription(start)
    assert started.external_id is not None
    shop.fake.complete_checkout(started.external_id)
    shop.deliver()
    shop.fake.set_time(HALFWAY)
    with get_db(shop.app).session() as s:
        downgrade.confirm_downgrade(s, shop.clock, shop.billing, "acme", "starter", "month")
    shop.deliver()
    sub = subscription(shop.app)
    assert (sub.interval, sub.scheduled_interval) == ("year", "month")
    assert sub.stripe_subscription_id is not None
    return sub.stripe_subscription_id


def year_ends(shop: Shop, yearly: str) -> None:
    """Stripe reaches the yearly period end (and ends the subscription); our clock follows."""
    shop.fake.advance_to_period_end(yearly)
    shop.clock.set(YEAR_END + timedelta(minutes=1))


def stripe_subscriptions(shop: Shop) -> list[Any]:
    listed = shop.fake.client().v1.subscriptions.list(
        {"customer": customer_id(shop.app), "status": "all", "limit": 100}
    )
    return sorted(listed.data, key=lambda sub: sub.created)


def billed_to(invoice: Any) -> str | None:
    details = invoice.parent.subscription_details if invoice.parent else None
    return details.subscription if details else None


def assert_on_monthly_once(shop: Shop, yearly: str) -> None:
    """One monthly subscription follows the yearly one, charged 9.00 once; the row is it."""
    subs = stripe_subscriptions(shop)
    assert [(s.id == yearly, s.status) for s in subs] == [(True, "canceled"), (False, "active")]
    monthly = subs[1]
    assert [i.price.lookup_key for i in monthly["items"].data] == [STARTER.lookup_key]
    sub = subscription(shop.app)
    assert (sub.tier_id, sub.interval, sub.status.value) == ("starter", "month", "active")
    assert sub.stripe_subscription_id == monthly.id
    assert (sub.scheduled_interval, sub.cancel_at_period_end) == (None, False)
    assert sub.current_period_start == YEAR_END
    assert shop.billing.fetch_subscription(monthly.id) is not None
    charged = [i for i in shop.stripe_invoices() if i.amount_paid and billed_to(i) == monthly.id]
    assert [i.amount_paid for i in charged] == [900]
    invoices = [i for i in local_invoices(shop.app) if i.external_id == charged[0].id]
    assert [(i.amount_paid, i.status) for i in invoices] == [(900, "paid")]
    assert [i.amount_paid for i in local_invoices(shop.app)] == [9000, 900]


def test_the_webhook_of_the_yearly_end_starts_the_monthly_subscription(shop: Shop) -> None:
    yearly = yearly_switching_to_monthly(shop)
    year_ends(shop, yearly)
    assert "customer.subscription.deleted" in shop.deliver()
    assert_on_monthly_once(shop, yearly)
    with get_db(shop.app).sessionmaker() as s:
        change = s.get(BillingChange, switch_change_id(yearly))
        assert change is not None and change.status is ChangeStatus.APPLIED
    # Nothing left to do for the scheduled jobs, and they change nothing.
    with get_db(shop.app).session() as s:
        assert service.apply_period_end(s, shop.clock, shop.billing) == []
    with get_db(shop.app).session() as s:
        assert reconcile(s, shop.clock, shop.billing) == []
    shop.deliver()  # the monthly subscription's own events
    assert_on_monthly_once(shop, yearly)


def test_duplicate_and_reordered_deliveries_start_the_monthly_subscription_once(
    shop: Shop,
) -> None:
    yearly = yearly_switching_to_monthly(shop)
    year_ends(shop, yearly)
    shop.deliver(newest_first=True)
    shop.deliver(newest_first=True)  # the new subscription's own events
    for event in shop.fake.events_of("customer.subscription.deleted"):
        shop.delivered.discard(event["id"])  # Stripe delivers it again
    shop.deliver()
    with get_db(shop.app).session() as s:
        assert reconcile(s, shop.clock, shop.billing) == []
    assert_on_monthly_once(shop, yearly)


def test_reconcile_starts_the_monthly_subscription_when_the_webhooks_were_lost(
    shop: Shop,
) -> None:
    yearly = yearly_switching_to_monthly(shop)
    year_ends(shop, yearly)
    lost = [e["id"] for e in shop.fake.events]
    with get_db(shop.app).session() as s:
        fixes = reconcile(s, shop.clock, shop.billing)
    assert any(f"switched from {yearly}" in fix for fix in fixes), fixes
    assert_on_monthly_once(shop, yearly)
    shop.delivered.difference_update(lost)  # they arrive after all, late
    shop.deliver()
    with get_db(shop.app).session() as s:
        assert reconcile(s, shop.clock, shop.billing) == []
    assert_on_monthly_once(shop, yearly)


def test_renew_before_the_webhook_starts_the_same_single_monthly_subscription(
    shop: Shop,
) -> None:
    yearly = yearly_switching_to_monthly(shop)
    year_ends(shop, yearly)
    with get_db(shop.app).session() as s:
        [renewed] = service.apply_period_end(s, shop.clock, shop.billing)
    assert renewed.status is service.FlowStatus.DONE, renewed.message
    shop.deliver()
    with get_db(shop.app).session() as s:
        assert reconcile(s, shop.clock, shop.billing) == []
    assert_on_monthly_once(shop, yearly)


def test_a_cancellation_scheduled_with_the_switch_ends_the_plan(shop: Shop) -> None:
    yearly = yearly_switching_to_monthly(shop)
    with get_db(shop.app).session() as s:
        downgrade.cancel(s, shop.clock, shop.billing, "acme")
    shop.deliver()
    assert subscription(shop.app).cancel_at_period_end
    year_ends(shop, yearly)
    shop.deliver()
    with get_db(shop.app).session() as s:
        reconcile(s, shop.clock, shop.billing)
    assert [s.status for s in stripe_subscriptions(shop)] == ["canceled"]
    assert subscription(shop.app).status.value == "canceled"


def test_a_subscription_ended_early_is_not_continued(shop: Shop) -> None:
    """Canceled at once (in the Dashboard) months before the switch: nothing starts."""
    yearly = yearly_switching_to_monthly(shop)
    shop.fake.client().v1.subscriptions.cancel(yearly)
    shop.deliver()
    with get_db(shop.app).session() as s:
        reconcile(s, shop.clock, shop.billing)
    assert [s.status for s in stripe_subscriptions(shop)] == ["canceled"]
    assert subscription(shop.app).status.value == "canceled"


def test_a_declined_switch_ends_the_plan_and_is_not_tried_again(shop: Shop) -> None:
    yearly = yearly_switching_to_monthly(shop)
    year_ends(shop, yearly)
    shop.fake.decline_next_payment(customer_id(shop.app), times=5)
    shop.deliver()
    assert [s.status for s in stripe_subscriptions(shop)] == ["canceled"]
    sub = subscription(shop.app)
    assert (sub.stripe_subscription_id, sub.status.value) == (yearly, "canceled")
    with get_db(shop.app).sessionmaker() as s:
        change = s.get(BillingChange, switch_change_id(yearly))
        assert change is not None and change.status is ChangeStatus.FAILED
    before = len(shop.fake.requests)
    with get_db(shop.app).session() as s:
        reconcile(s, shop.clock, shop.billing)
    creates = [
        r
        for r in shop.fake.requests[before:]
        if r.method == "POST" and r.path == "/v1/subscriptions"
    ]
    assert creates == []
    with get_db(shop.app).sessionmaker() as s:
        failed = s.scalars(select(BillingChange).where(BillingChange.kind == "switch")).all()
        assert [c.status for c in failed] == [ChangeStatus.FAILED]


def test_a_switch_missed_for_longer_than_the_window_stays_a_cancellation(shop: Shop) -> None:
    yearly = yearly_switching_to_monthly(shop)
    year_ends(shop, yearly)
    shop.clock.set(YEAR_END + timedelta(days=8))
    with get_db(shop.app).session() as s:
        reconcile(s, shop.clock, shop.billing)
    assert [s.status for s in stripe_subscriptions(shop)] == ["canceled"]
    assert subscription(shop.app).status.value == "canceled"


def test_the_provider_continues_a_switch_once_and_only_a_switch(shop: Shop) -> None:
    yearly = yearly_switching_to_monthly(shop)
    assert shop.billing.continue_switch(yearly, "chg_x") is None  # not ended yet
    year_ends(shop, yearly)
    first = shop.billing.continue_switch(yearly, "chg_x")
    again = shop.billing.continue_switch(yearly, "chg_y")
    assert first is not None and again is not None
    assert first.subscription == again.subscription and first.charge == again.charge
    assert first.charge is not None and first.charge.amount_paid == 900
    assert len(stripe_subscriptions(shop)) == 2
    state = shop.billing.fetch_subscription(yearly)
    assert state is not None and state.status == "canceled"
