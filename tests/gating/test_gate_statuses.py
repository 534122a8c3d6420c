"""What the gate grants in the statuses and corners a subscription can be in: a canceled
subscription (ended), a fall back to Free mid-period, overrides on a catalog without a free
tier, and the entitlements listing every feature the gate answers for."""

# ruff: noqa: F811
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from gating import service
from gating.models import Subscription, SubscriptionStatus
from tests.factories import add_override
from tests.gating.test_service import account, db, publish_variant, run  # noqa: F401


def test_an_override_granting_a_feature_applies_when_the_catalog_has_no_free_tier(db, clock):
    """The product team grants an account an extra feature or a custom limit (a pilot of a
    sales-led catalog without a free tier): with no plan at all, the account gets PDF export
    and 5 projects, and nothing else."""
    publish_variant(db, clock, lambda doc: doc.update(tiers=doc["tiers"][1:]))  # no free tier
    account(db, clock)
    with db.session() as s:
        add_override(s, "acme", "feature", feature="pdf_export", now=clock.now())
        add_override(s, "acme", "limit", feature="projects", limit=5, now=clock.now())
    assert run(db, clock, service.check, "acme", "pdf_export").allowed
    assert run(db, clock, service.consume, "acme", "projects", 1).allowed
    d = run(db, clock, service.consume, "acme", "projects", 5)
    assert (d.allowed, d.reason) == (False, "limit_reached")
    assert run(db, clock, service.check, "acme", "sso").reason == "no_access"


def test_entitlements_list_every_feature_check_answers_for(db, clock):
    """A feature added to the catalog after the account's pinned version: /v1/check answers
    for it (denied, feature_not_in_tier, limit 0), and the entitlements list it the same way:
    a host app drawing its feature list from them finds it, disabled."""
    account(db, clock, tier="pro")

    def add_feature(doc):
        doc["features"]["exports"] = {"name": "Exports", "type": "counter", "resets": "day"}
        doc["tiers"][0]["features"]["exports"] = 5

    publish_variant(db, clock, add_feature)
    d = run(db, clock, service.check, "acme", "exports")
    assert (d.allowed, d.reason, d.limit) == (False, "feature_not_in_tier", 0)
    body = run(db, clock, service.entitlements, "acme")
    assert "exports" in body["features"], sorted(body["features"])
    assert body["features"]["exports"]["enabled"] is False


def _as_stripe_ends_it(db, clock) -> None:
    """What billing/sync_state.apply_subscription writes when Stripe reports the subscription
    `canceled` (customer.subscription.deleted): status canceled, canceled_at now, the grace
    clock cleared, and Stripe's current_period_end, which an immediate cancellation leaves in
    the future (the fake Stripe's cancel_now too)."""
    with db.session() as s:
        sub = s.scalars(select(Subscription).where(Subscription.account_id == "acme")).one()
        sub.status = SubscriptionStatus.CANCELED
        sub.canceled_at = clock.now()
        sub.past_due_since = None
        sub.cancel_at_period_end = False


def test_a_subscription_stripe_canceled_after_failed_payments_does_not_restore_the_paid_tier(
    db, clock
):
    """Dunning: the renewal fails, the account is past_due; after the grace period the gate
    drops it to Free. When Stripe then gives up and cancels the subscription (its "cancel
    after all retries fail" setting, or a cancel in the Dashboard), the account stays on Free:
    nothing was paid."""
    start = clock.now() - timedelta(days=10)
    account(db, clock, tier="pro", period_start=start, status="past_due", past_due_since=start)
    assert run(db, clock, service.check, "acme", "audit_log").allowed is False  # grace over
    _as_stripe_ends_it(db, clock)
    clock.advance(hours=1)
    d = run(db, clock, service.check, "acme", "audit_log")
    assert d.allowed is False, "an unpaid, canceled subscription regained Pro"


def test_an_immediately_canceled_subscription_ends_access_now(db, clock):
    """Stripe only reports `canceled` once a subscription has ended (a cancellation at the
    period end stays `active` with cancel_at_period_end until then; manual billing too: its
    renew sets `canceled` at the period end). So a `canceled` row whose stored period has not
    ended is a subscription canceled now (Dashboard, API, a deleted customer): the account is
    on Free from now, not until a period end that will never be billed."""
    account(db, clock, tier="pro")  # started 14 days ago, ends in ~16 days
    assert run(db, clock, service.check, "acme", "audit_log").allowed
    _as_stripe_ends_it(db, clock)
    clock.advance(minutes=5)
    body = run(db, clock, service.entitlements, "acme")
    assert body["tier"]["id"] == "free", body["tier"]
    assert run(db, clock, service.check, "acme", "audit_log").allowed is False


def test_falling_back_to_free_does_not_forget_the_runs_used_this_period(db, clock):
    """A Starter subscriber (1,000 automation runs per billing period) has used 500 runs since
    its period began on Nov 10, then stops paying. After the grace period the gate drops it to
    Free (100 runs): the 500 runs already used this period count, so further runs are refused
    until the counter resets."""
    start = clock.now() - timedelta(days=5)  # Nov 10
    account(db, clock, tier="starter", period_start=start, status="past_due", past_due_since=start)
    assert run(db, clock, service.consume, "acme", "automation_runs", 500).allowed
    clock.advance(days=3)  # past_due_since + 8 days: the 7-day grace is over
    d = run(db, clock, service.check, "acme", "automation_runs", 1)
    assert d.limit == 100
    assert (d.allowed, d.used) == (False, 500), (d.allowed, d.used)
