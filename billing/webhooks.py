"""Stripe webhooks: signature verification, the event store and the dispatcher.

A delivery is verified first (the SDK's `Webhook.construct_event` over the raw body), then
processed in ONE transaction that claims the event row (INSERT ... ON CONFLICT DO NOTHING, then
SELECT ... FOR UPDATE, so concurrent duplicates wait and then see it processed) and applies its
state change. A handler error rolls that back and records the event with its error in a second,
small transaction; the caller answers 500 so Stripe retries, and `tiergate webhooks replay`
re-runs it. Handlers re-fetch the subscription from Stripe and ignore objects tiergate did not
create (no `tiergate` metadata tag, or an unknown account).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import stripe
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from billing import event_shapes, notifications, records
from billing.models import BillingChange, ChangeStatus, Invoice, WebhookEvent
from billing.provider import Outcome
from billing.stripe_sync import item_of_product
from billing.sync_state import (
    PROVIDER,
    StripeSource,
    apply_subscription,
    as_datetime,
    follow_switch,
    refresh_balance,
    settle_change,
)
from gating.models import Account
from tiergate.clock import Clock
from tiergate.db import Database
from tiergate.exceptions import NotFound, TiergateError

log = logging.getLogger(__name__)

TAG = "tiergate"
FINAL = ("paid", "void")  # invoice statuses Stripe never leaves: a late, older event cannot undo


class WebhookRejected(TiergateError):
    """The delivery is not a genuine, well-formed Stripe event: 400, nothing stored."""

    code = "invalid_webhook"


class WebhooksNotConfigured(TiergateError):
    """No signing secret is configured, so no delivery can be verified."""

    code = "webhooks_not_configured"


# ---- verification ---------------------------------------------------------------------------


def verify_event(
    payload: bytes, signature: str | None, secret: str | None, tolerance: int
) -> dict[str, Any]:
    """The event in a delivery whose Stripe-Signature checks out (WebhookRejected otherwise)."""
    if not secret:
        raise WebhooksNotConfigured(
            "Stripe webhooks are not configured: set TIERGATE_STRIPE_WEBHOOK_SECRET (whsec_...)."
        )
    if signature is not None and not signature.isascii():  # no signature Stripe sends
        raise WebhookRejected(
            "The Stripe-Signature header does not verify: it holds characters that are not ASCII",
            code="invalid_signature",
        )
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret, tolerance)
        # parsed here, not by construct_event, which fails on a body that is not a JSON object
        event = json.loads(payload)
    except stripe.SignatureVerificationError as exc:
        raise WebhookRejected(
            f"The Stripe-Signature header does not verify: {exc.user_message or exc}",
            code="invalid_signature",
        ) from None
    except ValueError as exc:  # JSON (or UTF-8) that does not parse
        raise WebhookRejected(
            f"The webhook body is not a Stripe event in JSON: {exc}", code="malformed_json"
        ) from None
    problems = _shape_problems(event)
    if problems:
        raise WebhookRejected(
            f"The webhook body is not a Stripe event: {problems}.", code="malformed_event"
        )
    return dict(event)


def _shape_problems(event: Any) -> str | None:
    if not isinstance(event, dict):
        return "expected a JSON object"
    if event.get("object") == "v2.core.event":
        return "a thin (v2) event notification, not a snapshot event"
    if not isinstance(event.get("id"), str) or not event["id"].startswith("evt_"):
        return "'id' must be an evt_... string"
    if len(event["id"]) > 64:
        return "'id' is longer than 64 characters"
    if not isinstance(event.get("type"), str) or not event["type"]:
        return "'type' must be a non-empty string"
    created = event_shapes.timestamp_problem(event.get("created"), "created")
    if created:
        return created
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        return "'data.object' must be an object"
    return event_shapes.problem(event["type"], data["object"])


# ---- the event store ------------------------------------------------------------------------


@dataclass(frozen=True)
class Processed:
    """What one delivery (or replay) did: processed, duplicate (no-op) or failed."""

    event_id: str
    status: str  # processed | duplicate | failed
    note: str = ""
    error: str | None = None


def _claim(session: Session, event: dict[str, Any], now: datetime) -> WebhookEvent:
    """Insert the event row if new, then lock it: a concurrent duplicate waits here."""
    values = {
        "id": event["id"],
        "type": event["type"],
        "created": event["created"],
        "payload": event,
        "received_at": now,
        "attempts": 0,
    }
    if session.get_bind().dialect.name == "postgresql":
        stmt: Any = pg_insert(WebhookEvent).values(values)
    else:
        stmt = sqlite_insert(WebhookEvent).values(values)
    session.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))
    row = session.scalar(
        select(WebhookEvent)
        .where(WebhookEvent.id == event["id"])
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert row is not None
    return row


def process(
    db: Database,
    clock: Clock,
    provider: StripeSource,
    event: dict[str, Any],
    *,
    replay: bool = False,
) -> Processed:
    """Record and apply one verified event exactly once (a replay re-runs a stored one)."""
    try:
        with db.session() as session:
            row = _claim(session, event, clock.now())
            if row.processed_at is not None and not replay:
                return Processed(row.id, "duplicate", "already processed")
            row.attempts += 1
            note = dispatch(session, clock, provider, row.payload)
            row.processed_at = clock.now()
            row.error = None
    except Exception as exc:  # noqa: BLE001 - any handler error is recorded and retried
        error = exc.message if isinstance(exc, TiergateError) else f"{type(exc).__name__}: {exc}"
        log.exception("webhook %s (%s) failed", event.get("id"), event.get("type"))
        with db.session() as session:
            row = _claim(session, event, clock.now())
            row.attempts += 1
            row.error = error
        return Processed(event["id"], "failed", error=error)
    log.info("webhook %s (%s): %s", event["id"], event["type"], note)
    return Processed(event["id"], "processed", note)


def replay(db: Database, clock: Clock, provider: StripeSource, event_id: str) -> Processed:
    """Re-run a stored event (failed or not); handlers re-fetch, so this is safe to repeat."""
    with db.session() as session:
        row = session.get(WebhookEvent, event_id)
        payload = dict(row.payload) if row is not None else None
    if payload is None:
        raise NotFound(f"No webhook event {event_id!r} is stored: see `tiergate webhooks list`.")
    return process(db, clock, provider, payload, replay=True)


def stored_events(
    session: Session, *, failed: bool = False, limit: int = 100
) -> list[WebhookEvent]:
    """Stored events, newest first; `failed`: only those not processed because of an error."""
    query = select(WebhookEvent)
    if failed:
        query = query.where(WebhookEvent.processed_at.is_(None), WebhookEvent.error.is_not(None))
    query = query.order_by(WebhookEvent.received_at.desc(), WebhookEvent.id).limit(limit)
    return list(session.scalars(query))


# ---- the dispatcher -------------------------------------------------------------------------


def dispatch(session: Session, clock: Clock, provider: StripeSource, event: dict[str, Any]) -> str:
    """Apply one event's state change; returns what it did, for the log."""
    kind: str = event["type"]
    obj: dict[str, Any] = event["data"]["object"]
    at: int = event["created"]
    # A customer's details or invoice balance changed (a credit from a change, or given by
    # hand in the Dashboard): the quotes take the balance off what is due.
    if kind == "customer.updated":
        return _customer_updated(session, provider, obj)
    # A customer paid on a Checkout page: the first subscription of the account starts.
    if kind == "checkout.session.completed":
        return _checkout_completed(session, clock, provider, obj, at)
    # A subscription was created (by Checkout or the API).
    if kind == "customer.subscription.created":
        return _subscription_changed(session, clock, provider, obj.get("id"), obj, at)
    # A subscription changed: items, status (past_due, active), period, cancel_at_period_end.
    if kind == "customer.subscription.updated":
        return _subscription_changed(session, clock, provider, obj.get("id"), obj, at)
    # A subscription ended (canceled now or at the period end).
    if kind == "customer.subscription.deleted":
        return _subscription_changed(session, clock, provider, obj.get("id"), obj, at)
    # A pending update (pending_if_incomplete) was paid and applied to the subscription.
    if kind == "customer.subscription.pending_update_applied":
        return _subscription_changed(session, clock, provider, obj.get("id"), obj, at)
    # A pending update was not paid within 23 hours: Stripe dropped it.
    if kind == "customer.subscription.pending_update_expired":
        return _subscription_changed(session, clock, provider, obj.get("id"), obj, at)
    # Three days before a trial ends: nothing changes yet (a reminder could be sent).
    if kind == "customer.subscription.trial_will_end":
        return _trial_will_end(session, clock, provider, obj)
    # An invoice was paid (first, renewal, proration, or a retry after a failure).
    if kind == "invoice.paid":
        return _invoice_paid(session, clock, provider, obj, at)
    # An invoice's payment failed: the subscription goes past_due and the grace period starts.
    if kind == "invoice.payment_failed":
        return _invoice_payment_failed(session, clock, provider, obj, at)
    # An invoice was voided (a declined change's invoice, or by hand): it will never be paid.
    if kind == "invoice.voided":
        return _invoice_voided(session, clock, obj)
    return f"ignored: tiergate does not handle {kind}"


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    """The object's tiergate tags (an invoice carries its subscription's under `parent`)."""
    metadata = obj.get("metadata")
    found: dict[str, Any] = dict(metadata) if isinstance(metadata, dict) else {}
    parent = obj.get("parent")
    details = parent.get("subscription_details") if isinstance(parent, dict) else None
    for source in (details, obj.get("subscription_details")):
        tags = source.get("metadata") if isinstance(source, dict) else None
        if isinstance(tags, dict):
            for key, value in tags.items():
                found.setdefault(key, value)
    return found


def _account_of(session: Session, obj: dict[str, Any]) -> Account | None:
    """The account a tagged object belongs to (None: not ours, or an account we do not know)."""
    tags = _metadata(obj)
    if tags.get(TAG) != "1":
        return None
    account_id = tags.get("tiergate_account") or obj.get("client_reference_id")
    account = session.get(Account, account_id) if isinstance(account_id, str) else None
    customer = obj.get("customer")
    if account is None and isinstance(customer, str):
        account = session.scalar(select(Account).where(Account.stripe_customer_id == customer))
    if account is not None:  # first, as every flow: the account, then its change, then rows
        account = records.lock_account(session, account.id)
    if account is not None and isinstance(customer, str) and account.stripe_customer_id is None:
        account.stripe_customer_id = customer
    return account


def _ignored(obj: dict[str, Any]) -> str:
    return f"ignored: {obj.get('id')} was not created by tiergate (or its account is unknown)"


def _settle_named_change(
    session: Session, clock: Clock, provider: StripeSource, obj: dict[str, Any]
) -> str | None:
    """Settle the pending change an object names, once Stripe reports it done."""
    change_id = _metadata(obj).get("tiergate_change")
    change = (  # locked: the customer's return from Checkout may be settling it too
        session.get(BillingChange, change_id, with_for_update=True)
        if isinstance(change_id, str)
        else None
    )
    if change is None or change.status is not ChangeStatus.PENDING:
        return None
    result = provider.find_change(change.id)
    if result is None or result.outcome is not Outcome.DONE:
        return None  # still in progress (Checkout open, payment pending): reconcile decides
    return settle_change(session, clock, change, result)


def _sync(
    session: Session,
    clock: Clock,
    provider: StripeSource,
    account: Account,
    subscription_id: Any,
    at: int,
) -> str:
    if not isinstance(subscription_id, str):
        return "no subscription"
    state = provider.fetch_subscription(subscription_id)
    if state is None:
        return f"ignored: Stripe has no tiergate subscription {subscription_id}"
    # An end at a scheduled interval switch (yearly -> monthly) starts the next subscription.
    switched = follow_switch(session, clock, provider, account, state)
    changes = (
        switched
        if switched is not None
        else apply_subscription(session, clock, account, state, seen_at=at)
    )
    return f"{account.id}: " + (", ".join(changes) if changes else "up to date")


def _subscription_changed(
    session: Session,
    clock: Clock,
    provider: StripeSource,
    subscription_id: Any,
    obj: dict[str, Any],
    at: int,
) -> str:
    account = _account_of(session, obj)
    if account is None:
        return _ignored(obj)
    settled = _settle_named_change(session, clock, provider, obj)
    synced = _sync(session, clock, provider, account, subscription_id, at)
    return "; ".join(part for part in (settled, synced) if part)


def _checkout_completed(
    session: Session, clock: Clock, provider: StripeSource, obj: dict[str, Any], at: int
) -> str:
    account = _account_of(session, obj)
    if account is None:
        return _ignored(obj)
    settled = _settle_named_change(session, clock, provider, obj)
    synced = _sync(session, clock, provider, account, obj.get("subscription"), at)
    return "; ".join(part for part in (settled, synced) if part)


def _trial_will_end(
    session: Session, clock: Clock, provider: StripeSource, obj: dict[str, Any]
) -> str:
    account = _account_of(session, obj)
    if account is None:
        return _ignored(obj)
    trial_end = obj.get("trial_end")
    if not isinstance(trial_end, int):
        return f"{account.id}: trial_will_end without a trial end: nothing to tell"
    current = provider.fetch_subscription(str(obj.get("id") or ""))
    if (
        current is None
        or current.status != "trialing"
        or current.trial_end != as_datetime(trial_end)
    ):  # a late event: the trial was extended, ended or converted since
        return f"{account.id}: trial_will_end for a trial end that no longer holds: ignored"
    tier = _metadata(obj).get("tiergate_tier")
    if not isinstance(tier, str) and account.subscription is not None:
        tier = account.subscription.tier_id
    note = notifications.trial_will_end(
        session, clock, account.id, str(tier or ""), as_datetime(trial_end)
    )
    told = "host app notified" if note is not None else "host app already notified"
    return f"{account.id}: trial ends {as_datetime(trial_end):%Y-%m-%d} ({told})"


def _invoice_paid(
    session: Session, clock: Clock, provider: StripeSource, obj: dict[str, Any], at: int
) -> str:
    account = _account_of(session, obj)
    if account is None:
        return _ignored(obj)
    settled = _settle_named_change(session, clock, provider, obj)
    recorded = record_invoice(session, clock, account, obj)
    synced = _sync(session, clock, provider, account, _subscription_id(obj), at)
    balance = refresh_balance(provider, account)  # the invoice may have used a credit
    return "; ".join(part for part in (settled, recorded, synced, balance) if part)


def _customer_updated(session: Session, provider: StripeSource, obj: dict[str, Any]) -> str:
    """Re-read the balance of a customer tiergate created (events may arrive out of order)."""
    account = _account_of(session, obj)
    if account is None or account.stripe_customer_id != obj.get("id"):
        return _ignored(obj)
    return refresh_balance(provider, account) or "balance unchanged"


def _invoice_payment_failed(
    session: Session, clock: Clock, provider: StripeSource, obj: dict[str, Any], at: int
) -> str:
    account = _account_of(session, obj)
    if account is None:
        return _ignored(obj)
    recorded = record_invoice(session, clock, account, obj)
    synced = _sync(session, clock, provider, account, _subscription_id(obj), at)
    told = tell_payment_failed(session, clock, account, obj)
    return "; ".join(part for part in (recorded, synced, told) if part)


def tell_payment_failed(
    session: Session, clock: Clock, account: Account, obj: dict[str, Any]
) -> str:
    """A renewal's payment failed: the host app tells its customer (a declined upgrade is shown
    on the page itself, so it is not notified). Reconcile tells it too when the webhook was lost."""
    if obj.get("billing_reason") not in ("subscription_cycle", "subscription_threshold"):
        return ""
    sub = account.subscription
    grace_ends_at = (
        records.grace_ends_at(sub) if sub is not None and sub.past_due_since is not None else None
    )
    attempt = obj.get("attempt_count")
    note = notifications.payment_failed(
        session,
        clock,
        account.id,
        invoice_id=str(obj.get("id")),
        attempt=attempt if isinstance(attempt, int) else 1,
        amount_due=obj.get("amount_due") if isinstance(obj.get("amount_due"), int) else None,
        currency=obj.get("currency") if isinstance(obj.get("currency"), str) else None,
        grace_ends_at=grace_ends_at,
    )
    return "host app notified" if note is not None else ""


def _invoice_voided(session: Session, clock: Clock, obj: dict[str, Any]) -> str:
    account = _account_of(session, obj)
    if account is None:
        return _ignored(obj)
    return record_invoice(session, clock, account, obj)


def _subscription_id(invoice: dict[str, Any]) -> Any:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    return details.get("subscription") or invoice.get("subscription")


def record_invoice(session: Session, clock: Clock, account: Account, obj: dict[str, Any]) -> str:
    """Mirror a Stripe invoice as an Invoice row (once per in_...; a paid or void one stays so)."""
    external_id = obj.get("id")
    if not isinstance(external_id, str):
        return "invoice without an id"
    row = session.scalar(select(Invoice).where(Invoice.external_id == external_id))
    status = str(obj.get("status") or "open")
    renewal = obj.get("billing_reason") == "subscription_cycle"
    # the first invoice of the subscription a scheduled interval switch starts is the next
    # period's charge too (a trial's first charge, say)
    next_period = renewal or (
        obj.get("billing_reason") == "subscription_create"
        and bool(_metadata(obj).get("tiergate_follows"))
    )
    if row is None:
        # A renewal carries the tags of the change that last wrote the subscription: it is
        # not that change's invoice.
        change_id = None if renewal else _metadata(obj).get("tiergate_change")
        known = isinstance(change_id, str) and session.get(BillingChange, change_id) is not None
        row = Invoice(
            account_id=account.id,
            provider=PROVIDER,
            external_id=external_id,
            change_id=change_id if known else None,
            status=status,
            currency=str(obj.get("currency") or ""),
            amount_due=int(obj.get("amount_due") or 0),
            amount_paid=int(obj.get("amount_paid") or 0),
            lines=[_line(line) for line in (obj.get("lines") or {}).get("data") or []],
            created_at=as_datetime(int(obj.get("created") or 0))
            if obj.get("created")
            else clock.now(),
        )
        session.add(row)
    elif row.status in FINAL:
        return f"invoice {external_id} already {row.status}"
    row.status = status
    row.amount_paid = int(obj.get("amount_paid") or 0)
    if status == "paid":
        paid_at = (obj.get("status_transitions") or {}).get("paid_at")
        row.paid_at = as_datetime(paid_at) if isinstance(paid_at, int) else clock.now()
        records.invoice_settled(session, clock, row, renewal=next_period)
    session.flush()
    return f"invoice {external_id} {status}"


def _line(line: dict[str, Any]) -> dict[str, Any]:
    parent = line.get("parent") or {}
    details = parent.get("subscription_item_details") or parent.get("invoice_item_details") or {}
    price = (line.get("pricing") or {}).get("price_details") or {}
    return {
        "description": line.get("description") or "",
        "amount": int(line.get("amount") or 0),
        # the line's product names the tier or add-on (a subscription line's metadata is its
        # item's, which tiergate does not tag)
        "item_id": item_of_product(price.get("product"))
        or (line.get("metadata") or {}).get("tiergate_item"),
        "proration": bool(details.get("proration") or line.get("proration")),
    }
