"""Reconcile: make the local billing rows agree with Stripe after lost webhooks or a crash.

Two passes, read-only on Stripe but for an interval switch (see 2.):
1. BillingChange rows left `pending` (the Stripe call's answer was lost): `find_change` says
   whether Stripe applied the change; applied -> apply it locally and mark it applied, else
   mark it failed. A Checkout still open for the customer is left alone until it expires.
2. Every local Stripe-backed subscription is compared with Stripe's and repaired. One that
   Stripe ended at a scheduled interval switch is continued (`follow_switch`): that starts
   the next subscription, the one charge reconcile can make, once, as the customer asked.

Each pending change is settled and committed on its own (its locks are not held for the rest
of the run); the compare pass runs in one transaction: when Stripe is unreachable half-way
(ProviderUnavailable), the caller rolls it back, and only the changes settled before stay.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.models import BillingChange, ChangeStatus
from billing.provider import Outcome
from billing.records import LIVE, in_flight, lock_account, lock_change
from billing.sync_state import (
    PROVIDER,
    StripeSource,
    apply_subscription,
    follow_switch,
    pending_changes,
    refresh_balance,
    settle_change,
)
from gating.models import Account, Subscription
from tiergate.clock import Clock
from tiergate.exceptions import NotFound

CHECKOUT_LIFETIME = timedelta(hours=24)  # Stripe expires an unpaid Checkout Session after this


CHECK = "Check:"  # a line that is not a fix: something reconcile could not repair


def reconcile(
    session: Session, clock: Clock, provider: StripeSource, *, account_id: str | None = None
) -> list[str]:
    """Repair local rows from Stripe (every account, or one); returns one line per fix."""
    if account_id is not None and session.get(Account, account_id) is None:
        raise NotFound(f"Account {account_id!r} does not exist.")
    fixes = []
    for change in pending_changes(session, account_id):
        fixes.append(_settle(session, clock, provider, change))
        session.commit()  # its locks are not held for the rest of the run

    query = select(Subscription).where(
        Subscription.provider == PROVIDER, Subscription.stripe_subscription_id.is_not(None)
    )
    if account_id is not None:
        query = query.where(Subscription.account_id == account_id)
    for sub in session.scalars(query.order_by(Subscription.account_id)).all():
        fixes.append(_compare(session, clock, provider, sub))
    fixes.extend(_adopt(session, clock, provider, account_id))
    return [fix for fix in fixes if fix]


def _adopt(
    session: Session, clock: Clock, provider: StripeSource, account_id: str | None
) -> list[str]:
    """Find live Stripe subscriptions of known customers that have no local row at all.

    That happens when every webhook about a first subscription was lost and its change is
    gone too (a database restored from an older backup, an event retention window missed).
    Only subscriptions tiergate created for that very account are adopted."""
    query = select(Account).where(Account.stripe_customer_id.is_not(None))
    if account_id is not None:
        query = query.where(Account.id == account_id)
    fixes = []
    for account in session.scalars(query.order_by(Account.id)).all():
        sub = account.subscription
        if sub is not None and sub.status in LIVE:
            continue  # a live local subscription: compared (Stripe) or deliberately manual
        assert account.stripe_customer_id is not None
        if balance := refresh_balance(provider, account):  # a free account keeps its credit
            fixes.append(f"{account.id}: {balance}")
        found = provider.subscriptions_of(account.stripe_customer_id, account.id)
        if not found:
            continue
        changes = apply_subscription(session, clock, account, found[0])
        if changes:
            fixes.append(
                f"{account.id}: adopted Stripe subscription {found[0].external_id} "
                f"({'; '.join(changes)})"
            )
    return fixes


def _settle(session: Session, clock: Clock, provider: StripeSource, change: BillingChange) -> str:
    result = provider.find_change(change.id)
    redirect = (change.result or {}).get("outcome") == "redirect"
    still_open = redirect and clock.now() < change.created_at + CHECKOUT_LIFETIME
    if still_open and (result is None or result.outcome is not Outcome.DONE):
        return ""  # the customer may still be paying on the Checkout page
    if in_flight(clock, change) and (result is None or result.outcome is not Outcome.DONE):
        return ""  # its provider call may still be running: the request settles it
    # Locked (the account first, as every flow) and read again: the customer's own request or
    # a webhook may have settled it since it was listed.
    lock_account(session, change.account_id)
    lock_change(session, change)
    if change.status is not ChangeStatus.PENDING:
        return ""
    return f"{change.account_id}: {settle_change(session, clock, change, result)}"


def _compare(session: Session, clock: Clock, provider: StripeSource, sub: Subscription) -> str:
    external_id = sub.stripe_subscription_id
    assert external_id is not None
    state = provider.fetch_subscription(external_id)
    if state is None:  # (a Stripe key of another account shows this way)
        return (
            f"{CHECK} {sub.account_id}: Stripe has no subscription {external_id} "
            "(left as is: check it)"
        )
    account = session.get(Account, sub.account_id)
    assert account is not None
    switched = follow_switch(session, clock, provider, account, state)
    changes = (
        switched if switched is not None else apply_subscription(session, clock, account, state)
    )
    if balance := refresh_balance(provider, account):
        changes.append(balance)
    if not changes:
        return ""
    return (
        f"{sub.account_id}: {', '.join(changes)} (Stripe has {state.plan.item_id} "
        f"{state.plan.interval}, {state.status}, period from {state.period_start:%Y-%m-%d} "
        f"to {state.period_end:%Y-%m-%d})"
    )
