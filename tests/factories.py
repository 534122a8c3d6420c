"""One-line builders of accounts, subscriptions, add-ons, overrides and usage for tests.

Each adds rows to the given session and flushes; the caller commits (or uses `db.session()`).
Publish a catalog first (the `demo_catalog` fixture): subscriptions pin its newest version.

    make_account(s, "acme", now=clock.now())                      # free tier, no subscription
    make_account(s, "acme", now=clock.now(), tier="pro", status="past_due",
                 past_due_since=clock.now())
    add_addon(s, "acme", "seat_pack", now=clock.now(), quantity=2)
    add_override(s, "acme", "limit", feature="projects", limit=50, now=clock.now())
    set_usage(s, "acme", "projects", 3, now=clock.now())         # a gauge
    set_usage(s, "acme", "api_calls", 900, now=clock.now(), period_start=month_start(clock.now()))
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from gating import periods, usage
from gating.models import (
    Account,
    AccountAddOn,
    Override,
    OverrideKind,
    Subscription,
    SubscriptionStatus,
)
from tiers import store


def make_account(
    session: Session,
    account_id: str = "acme",
    *,
    now: datetime,
    tier: str | None = None,
    interval: str = "month",
    currency: str = "usd",
    status: str = "active",
    period_start: datetime | None = None,
    period_end: datetime | None = None,
    catalog_version: int | None = None,
    trial_end: datetime | None = None,
    past_due_since: datetime | None = None,
    cancel_at_period_end: bool = False,
    email: str | None = "billing@acme.test",
) -> Account:
    """An account; with `tier`, a subscription to it (default: one interval started 14 days
    ago, pinned to the newest catalog version); `tier=None` is the free tier (no row)."""
    account = Account(
        id=account_id,
        email=email,
        name=account_id.title(),
        metadata_={},
        created_at=now,
        updated_at=now,
    )
    session.add(account)
    if tier is not None:
        start = period_start or now - timedelta(days=14)
        end = period_end or (periods.add_months(start, 12 if interval == "year" else 1))
        session.add(
            Subscription(
                account_id=account_id,
                tier_id=tier,
                interval=interval,
                currency=currency,
                status=SubscriptionStatus(status),
                catalog_version=catalog_version or store.latest_version(session),
                current_period_start=start,
                current_period_end=end,
                trial_end=trial_end,
                past_due_since=past_due_since,
                cancel_at_period_end=cancel_at_period_end,
                created_at=now,
                updated_at=now,
            )
        )
    session.flush()
    session.expire(account)
    return account


def add_addon(
    session: Session, account_id: str, addon_id: str, *, now: datetime, quantity: int = 1
) -> AccountAddOn:
    """An active add-on bought by the account."""
    row = AccountAddOn(
        account_id=account_id, addon_id=addon_id, quantity=quantity, active=True, purchased_at=now
    )
    session.add(row)
    session.flush()
    return row


def add_override(
    session: Session,
    account_id: str,
    kind: str,
    *,
    now: datetime,
    feature: str | None = None,
    limit: int | None = None,
    days: int | None = None,
    expires_at: datetime | None = None,
    reason: str = "test",
) -> Override:
    """An override of `kind` (limit | feature | trial_extension), unchecked: tests may build
    what the API would refuse."""
    row = Override(
        account_id=account_id,
        kind=OverrideKind(kind),
        feature_id=feature,
        limit=limit,
        days=days,
        expires_at=expires_at,
        reason=reason,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def set_usage(
    session: Session,
    account_id: str,
    feature_id: str,
    used: int,
    *,
    now: datetime,
    period_start: datetime | None = None,
) -> None:
    """Set a counter directly (gauges by default; give period_start for counters)."""
    usage.set_value(
        session, account_id, feature_id, period_start or periods.GAUGE_PERIOD, used, None, now
    )
    session.flush()


def month_start(now: datetime) -> datetime:
    """The start of the calendar month of `now` (the period of monthly counters)."""
    return periods.month_bounds(now)[0]
