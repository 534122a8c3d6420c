"""Apply Stripe's authoritative view of a subscription to the local rows, out-of-order safe.

Webhook handlers and reconcile never trust an event's snapshot: they re-fetch the subscription
through the provider and hand the current SubscriptionState to `apply_subscription`. Applying
the newest state is idempotent, so duplicate and reordered events converge on the same rows;
`Subscription.stripe_state_at` keeps the `created` of the newest event applied so that a late,
older event cannot move event-derived fields (past_due_since) backwards.

Pending BillingChange rows (a Checkout redirect, a crash between the Stripe call and our commit)
are settled with `settle_change` from the provider's `find_change` result: the change is applied
once, its invoice recorded once, and the offer it came from marked paid.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.models import BillingChange, ChangeStatus, Invoice
from billing.provider import Outcome, Price, Result, SubscriptionState
from billing.records import LIVE, _save_state, account_of, apply_result, fail_change, new_change
from gating.models import Account, AccountAddOn, Offer, Subscription, SubscriptionStatus
from tiergate.clock import Clock
from tiergate.exceptions import NotFound, PaymentFailed
from tiers import store

log = logging.getLogger(__name__)

PROVIDER = "stripe"
NEVER_STARTED = ("incomplete", "incomplete_expired")  # the first payment never went through


@runtime_checkable
class StripeSource(Protocol):
    """What webhooks and reconcile need from the provider (StripeBilling, test doubles)."""

    name: str

    def fetch_subscription(self, external_id: str) -> SubscriptionState | None:
        """Stripe's current state of a subscription tiergate created (None: unknown/not ours)."""
        ...

    def find_change(self, idempotency_key: str) -> Result | None:
        """The result of an earlier call with this key, if Stripe applied it."""
        ...

    def subscriptions_of(
        self, customer_external_id: str, account_id: str
    ) -> list[SubscriptionState]:
        """The live subscriptions tiergate created for this account's customer, newest first."""
        ...

    def customer_balance(self, customer_external_id: str) -> tuple[int, str | None] | None:
        """The customer's invoice balance (negative: a credit) and its currency; None: Stripe
        has no such customer."""
        ...


@runtime_checkable
class SwitchSource(Protocol):
    """A provider that ends a subscription to switch its interval (StripeBilling)."""

    def continue_switch(self, ended_external_id: str, change_key: str) -> Result | None:
        """The subscription continuing one that ended at a scheduled interval switch (started
        now, once, tagged with `change_key`), or None when it ended for another reason."""
        ...


# How long after the switch time an ended subscription is still continued: a switch that
# could not start for longer (webhooks and reconcile both down) stays a cancellation rather
# than charge the customer for a plan out of the blue.
SWITCH_WINDOW = timedelta(days=7)


def switch_change_id(ended_external_id: str) -> str:
    """The BillingChange id (and Stripe tag) of the switch that continues a subscription."""
    return "chg_next_" + hashlib.sha256(ended_external_id.encode()).hexdigest()[:24]


def as_datetime(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def catalog_version_for(session: Session, sub: Subscription | None, plan: Price) -> int:
    """The catalog version whose price the plan is: the row's own while the plan is unchanged,
    else the newest version that sells the tier at exactly this amount (else the newest)."""
    if sub is not None and (sub.tier_id, sub.interval, sub.currency) == (
        plan.item_id,
        plan.interval,
        plan.currency,
    ):
        return sub.catalog_version
    newest = store.load(session).version
    for version in range(newest, 0, -1):
        try:
            tier = store.load(session, version).catalog.tier(plan.item_id)
        except NotFound:  # a gap in the version numbers
            continue
        if tier is not None and tier.price(plan.interval or "month", plan.currency) == (
            plan.unit_amount
        ):
            return version
    return newest


def _describe(session: Session, sub: Subscription | None) -> dict[str, str]:
    """What reconcile and webhooks report changing: the terms, the trial's end, the add-ons."""
    if sub is None:
        return {"status": "none"}
    session.flush()  # the add-on rows just synced
    owned = session.scalars(
        select(AccountAddOn).where(
            AccountAddOn.account_id == sub.account_id, AccountAddOn.active.is_(True)
        )
    )
    return {
        "tier": sub.tier_id,
        "interval": sub.interval,
        "status": SubscriptionStatus(sub.status).value,
        "period end": f"{sub.current_period_end:%Y-%m-%d}",
        "trial end": f"{sub.trial_end:%Y-%m-%d}" if sub.trial_end else "none",
        "cancel at period end": "yes" if sub.cancel_at_period_end else "no",
        "scheduled tier": sub.scheduled_tier_id or "none",
        "add-ons": ", ".join(sorted(f"{a.addon_id} x{a.quantity}" for a in owned)) or "none",
    }


def _changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return [
        f"{key} {before.get(key, 'none')} -> {value}"
        for key, value in after.items()
        if before.get(key, "none") != value
    ]


def apply_subscription(
    session: Session,
    clock: Clock,
    account: Account,
    state: SubscriptionState,
    *,
    seen_at: int | None = None,
) -> list[str]:
    """Make the account's Subscription row match Stripe's `state`; returns what changed.

    `seen_at` is the `created` of the event that prompted the fetch (None from reconcile).
    A state for another subscription than the row's live one, or of a subscription whose
    first payment never went through, changes nothing.
    """
    sub = account.subscription
    live = state.status in {s.value for s in LIVE}
    other = sub is not None and sub.stripe_subscription_id not in (None, state.external_id)
    if sub is not None and other and (sub.status in LIVE or not live):
        log.info(
            "ignoring %s: %s follows %s", state.external_id, account.id, sub.stripe_subscription_id
        )
        return []
    if sub is None and state.status in NEVER_STARTED:
        return []
    if sub is not None and sub.provider != PROVIDER and sub.status in LIVE and not live:
        return []
    before = _describe(session, sub)
    version = catalog_version_for(session, sub, state.plan)
    _save_state(session, clock, account, state, version, PROVIDER)
    sub = account.subscription
    assert sub is not None
    newer = seen_at is None or sub.stripe_state_at is None or seen_at >= sub.stripe_state_at
    if state.status == SubscriptionStatus.PAST_DUE.value:
        if sub.past_due_since is None:
            # The grace period runs from when Stripe marked it past due, as far as we know.
            sub.past_due_since = as_datetime(seen_at) if seen_at and newer else clock.now()
    else:
        sub.past_due_since = None
    if seen_at is not None and newer:
        sub.stripe_state_at = seen_at
    session.flush()
    return _changes(before, _describe(session, sub))


def follow_switch(
    session: Session, clock: Clock, provider: object, account: Account, state: SubscriptionState
) -> list[str] | None:
    """When `state` is the account's subscription ended at a scheduled interval switch (yearly
    to monthly), start the next one and move the account's row onto it; returns what changed.

    None when it is not such an end (then `apply_subscription` records it), when the row follows
    another subscription already (the switch was applied, by an earlier delivery or `renew`), or
    when the switch was tried and declined (the subscription then ends as a cancellation).
    """
    sub = account.subscription
    if (
        not isinstance(provider, SwitchSource)
        or state.status != SubscriptionStatus.CANCELED.value
        or state.next_plan is None
        or state.cancel_at_period_end
        or state.external_id is None
        or sub is None
        or sub.provider != PROVIDER
        or sub.stripe_subscription_id != state.external_id
        or clock.now() > state.period_end + SWITCH_WINDOW
    ):
        return None
    change_id = switch_change_id(state.external_id)
    if session.get(BillingChange, change_id) is not None:
        return None  # declined before: the end stands (an applied one moved the row)
    request = {
        "ended": state.external_id,
        "tier": state.next_plan.item_id,
        "interval": state.next_plan.interval,
    }
    currency = state.next_plan.currency
    try:
        result = provider.continue_switch(state.external_id, change_id)
    except PaymentFailed as exc:
        change = new_change(
            session, clock, account.id, "switch", request, change_id=change_id, currency=currency
        )
        fail_change(clock, change, exc.message)
        log.warning("%s: the switch after %s failed: %s", account.id, state.external_id, exc)
        return None
    if result is None or result.subscription is None:
        return None
    change = new_change(
        session, clock, account.id, "switch", request, change_id=change_id, currency=currency
    )
    before = _describe(session, sub)
    plan = result.subscription.plan
    version = catalog_version_for(session, sub, plan)
    # The new subscription's invoice.paid may have recorded its invoice first: linked, not copied.
    apply_result(session, clock, PROVIDER, change, result, version)
    if result.subscription.status != SubscriptionStatus.PAST_DUE.value:
        sub.past_due_since = None
    session.flush()
    return [f"switched from {state.external_id} to {result.subscription.external_id}"] + _changes(
        before, _describe(session, sub)
    )


def settle_change(
    session: Session, clock: Clock, change: BillingChange, result: Result | None
) -> str:
    """Resolve a pending change from Stripe's answer: apply it once, or mark it failed."""
    if change.status is not ChangeStatus.PENDING:
        return f"{change.id} already {change.status.value}"
    if result is None or result.outcome is not Outcome.DONE:
        change.status = ChangeStatus.FAILED
        change.error = "Stripe has no record of this change: it was never applied or charged."
        change.updated_at = clock.now()
        return f"{change.id} ({change.kind}) marked failed: not applied on Stripe"
    charge = result.charge
    existing = None
    if charge is not None and charge.external_id:
        existing = session.scalar(select(Invoice).where(Invoice.external_id == charge.external_id))
        if existing is not None:  # recorded by invoice.paid already: link it, do not duplicate
            result = replace(result, charge=None)
            existing.change_id = change.id
    account = account_of(session, change.account_id)
    plan = result.subscription.plan if result.subscription is not None else None
    version = (
        catalog_version_for(session, account.subscription, plan)
        if plan is not None
        else (
            account.subscription.catalog_version
            if account.subscription
            else store.load(session).version
        )
    )
    invoice = apply_result(session, clock, PROVIDER, change, result, version) or existing
    sub, state = account.subscription, result.subscription
    if sub is not None and state is not None and state.status != SubscriptionStatus.PAST_DUE:
        sub.past_due_since = None
    _complete_offer(session, clock, change, invoice)
    return f"{change.id} ({change.kind}) applied from Stripe"


def _complete_offer(
    session: Session, clock: Clock, change: BillingChange, invoice: Invoice | None
) -> None:
    if change.offer_id is None:
        return
    offer = session.get(Offer, change.offer_id)
    if offer is None:
        return
    from billing import service  # lazily: the flows import the offer funnel

    interval, addon = change.request.get("interval"), change.request.get("addon")
    follow = service.complete_offer(
        session,
        clock,
        offer,
        invoice,
        interval=interval if isinstance(interval, str) else None,
        addon_id=addon if isinstance(addon, str) else None,
    )
    change.result = {**change.result, "follow_up_offer_id": follow}


def pending_changes(session: Session, account_id: str | None = None) -> list[BillingChange]:
    """BillingChange rows still pending (oldest first), optionally of one account."""
    query = select(BillingChange).where(BillingChange.status == ChangeStatus.PENDING)
    if account_id is not None:
        query = query.where(BillingChange.account_id == account_id)
    return list(session.scalars(query.order_by(BillingChange.created_at, BillingChange.id)))


def refresh_balance(provider: StripeSource, account: Account) -> str:
    """Take the account's invoice balance from its Stripe customer; returns what changed."""
    if account.stripe_customer_id is None:
        return ""
    found = provider.customer_balance(account.stripe_customer_id)
    if found is None:
        return ""
    balance, currency = found
    sub = account.subscription
    currency = currency or account.balance_currency or (sub.currency if sub else None)
    unchanged = (balance, currency) == (account.balance, account.balance_currency)
    if currency is None or unchanged or balance == account.balance == 0:
        return ""
    before = account.balance
    account.balance, account.balance_currency = balance, currency
    return f"balance {before} -> {balance} {currency}"
