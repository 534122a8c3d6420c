"""Reconcile: make the local billing rows agree with Stripe after lost webhooks or a crash.

Three passes, read-only on Stripe but for an interval switch (see 2.):
1. BillingChange rows left `pending` (the Stripe call's answer was lost): `find_change` says
   whether Stripe applied the change; applied -> apply it locally and mark it applied, else
   mark it failed. A Checkout still open for the customer is left alone until it expires.
2. Every local Stripe-backed subscription (but those canceled long ago, in a sweep of every
   account: `ENDED_LONG_AGO`) is compared with Stripe's and repaired. One that
   Stripe ended at a scheduled interval switch is continued (`follow_switch`): that starts
   the next subscription, the one charge reconcile can make, once, as the customer asked.
   Its recent invoices (the current and the previous period's) that the invoice webhooks
   would have recorded are recorded as they do (`record_invoice`): a renewal Stripe charged,
   a payment that failed, an invoice voided. Those of a subscription adopted (3.) too.
3. A live Stripe subscription tiergate created for an account that has no live local one is
   adopted (`_adopt`).

Each pending change is settled and committed on its own (its locks are not held for the rest
of the run); the compare pass runs in one transaction: when Stripe is unreachable half-way
(ProviderUnavailable), the caller rolls it back, and only the changes settled before stay.
An account with invoices to record is locked first, as the invoice webhooks do, and stays
locked until the compare pass commits.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from billing.models import BillingChange, ChangeStatus, Invoice
from billing.provider import InvoiceSource, Outcome, SubscriptionState
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
from billing.webhooks import FINAL, record_invoice, tell_payment_failed
from gating.models import Account, Subscription, SubscriptionStatus
from tiergate.clock import Clock
from tiergate.exceptions import NotFound

CHECKOUT_LIFETIME = timedelta(hours=24)  # Stripe expires an unpaid Checkout Session after this

# A sweep of every account compares a canceled subscription with Stripe's until this long after
# it ended: its last invoices are settled by then (Stripe's payment retries take up to about
# three weeks), and a churned account would otherwise cost two Stripe requests on every run,
# forever. Reconciling one account (`--account`) compares it whenever it ended; and an account
# with no live subscription is still searched for a live one on Stripe (3.), whatever its age.
ENDED_LONG_AGO = timedelta(days=60)


CHECK = "Check:"  # a line that is not a fix: something reconcile could not repair

# Invoices read per subscription and run, the newest of the current and previous period: a
# renewal and the changes made since are among them, and reconcile stays one list call each.
RECENT_INVOICES = 10


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
    else:  # a sweep leaves subscriptions that ended long ago (see ENDED_LONG_AGO)
        settled = clock.now() - ENDED_LONG_AGO
        query = query.where(
            or_(
                Subscription.status != SubscriptionStatus.CANCELED,
                Subscription.current_period_end >= settled,
                Subscription.canceled_at >= settled,
            )
        )
    for sub in session.scalars(query.order_by(Subscription.account_id)).all():
        fixes.extend(_compare(session, clock, provider, sub))
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
        recorded = _record_lost_invoices(session, clock, provider, account, found[0])
        changes = apply_subscription(session, clock, account, found[0])
        if changes:
            fixes.append(
                f"{account.id}: adopted Stripe subscription {found[0].external_id} "
                f"({'; '.join(changes)})"
            )
        fixes.extend(_told_failures(session, clock, account, recorded))
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


def _compare(
    session: Session, clock: Clock, provider: StripeSource, sub: Subscription
) -> list[str]:
    external_id = sub.stripe_subscription_id
    assert external_id is not None
    state = provider.fetch_subscription(external_id)
    if state is None:  # (a Stripe key of another account shows this way)
        return [
            f"{CHECK} {sub.account_id}: Stripe has no subscription {external_id} "
            "(left as is: check it)"
        ]
    account = session.get(Account, sub.account_id)
    assert account is not None
    # As the invoice webhooks do: each invoice is recorded before the subscription is synced
    # (a trial's first charge turns its offers into sales before a later end could undo them).
    recorded = _record_lost_invoices(session, clock, provider, account, state)
    switched = follow_switch(session, clock, provider, account, state)
    changes = (
        switched if switched is not None else apply_subscription(session, clock, account, state)
    )
    if balance := refresh_balance(provider, account):
        changes.append(balance)
    fixes = []
    if changes:
        fixes.append(
            f"{sub.account_id}: {', '.join(changes)} (Stripe has {state.plan.item_id} "
            f"{state.plan.interval}, {state.status}, period from {state.period_start:%Y-%m-%d} "
            f"to {state.period_end:%Y-%m-%d})"
        )
    return fixes + _told_failures(session, clock, account, recorded)


def _record_lost_invoices(
    session: Session, clock: Clock, provider: object, account: Account, state: SubscriptionState
) -> list[dict[str, Any]]:
    """Record the subscription's recent invoices whose webhooks were lost, as those webhooks
    do (`record_invoice`: a paid one is settled, and a renewal's converts a trial's offers);
    returns them. Only invoices of the current and the previous period are read."""
    if not isinstance(provider, InvoiceSource) or state.external_id is None:
        return []
    since = state.period_start - (state.period_end - state.period_start)
    listed = provider.recent_invoices(state.external_id, since, RECENT_INVOICES)
    if not any(_lost(session, invoice) for invoice in listed):
        return []
    lock_account(session, account.id)  # first, as every flow and the invoice webhooks
    recorded = []
    for invoice in listed:
        if _lost(session, invoice):  # read again: a webhook may have recorded it meanwhile
            record_invoice(session, clock, account, invoice)
            recorded.append(invoice)
    return recorded


def _lost(session: Session, invoice: dict[str, Any]) -> bool:
    """Whether the invoice webhooks would have recorded this invoice as it now is on Stripe
    and our rows do not show it so: paid, voided, or open after a payment attempt failed (a
    draft, or an open invoice not yet attempted, has no webhook that records it)."""
    status = invoice.get("status")
    if status not in ("paid", "void", "open") or (
        status == "open" and not invoice.get("attempted")
    ):
        return False
    row = session.scalar(select(Invoice).where(Invoice.external_id == invoice.get("id")))
    return row is None or (row.status not in FINAL and row.status != status)


def _told_failures(
    session: Session, clock: Clock, account: Account, recorded: list[dict[str, Any]]
) -> list[str]:
    """One line per invoice recorded; a renewal whose payment failed is told to the host app
    (after the subscription was synced, so its grace period is known), as its webhook does."""
    fixes = []
    for invoice in recorded:
        fix = f"{account.id}: invoice {invoice.get('id')} {invoice.get('status')} recorded"
        if invoice.get("status") == "open" and tell_payment_failed(
            session, clock, account, invoice
        ):
            fix += " (host app notified of the failed payment)"
        fixes.append(fix)
    return fixes
