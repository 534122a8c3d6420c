"""Notifications to the host app: billing moments its customers should hear about.

tiergate sends no e-mail itself. The host app knows its users and how to reach them, so
tiergate tells the host app's backend, like Stripe's own webhooks: a signed JSON POST to
`TIERGATE_NOTIFY_URL`.

- `trial.will_end`: a trial ends within three days. It comes from Stripe's
  `customer.subscription.trial_will_end`; for manual billing, `tiergate billing renew` makes it.
- `payment.failed`: a renewal's payment failed, and the account is past due. Its grace period
  end is included.
- `subscription.changed`: the plan, interval or status changed, or a downgrade or cancellation
  was scheduled or withdrawn, whatever made it change (the pages, Stripe's webhooks, reconcile,
  renewals). It carries the new terms and `previous` (null for a first subscription).
- `invoice.paid`: money was collected (a first plan, an upgrade, a renewal, an add-on), so the
  host app can send its receipt. An invoice of zero (a trial's start) is not one.

Notifications go to an outbox table in the same transaction as the change that causes them.
`tiergate notifications deliver` (run it every minute, like `billing renew` daily) posts the
due ones. A 2xx answer marks a notification delivered. Anything else is retried with backoff,
and after MAX_ATTEMPTS it is left as failed, listed by `tiergate notifications list --failed`.
Each notification has a dedupe key, so a replayed event never notifies twice.

The body is `{"id", "type", "created", "account_id", "data"}`. The header
`Tiergate-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" with TIERGATE_NOTIFY_SECRET>`
is checked by `tiergate_client.verify_notification`.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.models import Invoice, Notification
from tiergate.clock import Clock

TRIAL_WILL_END = "trial.will_end"
PAYMENT_FAILED = "payment.failed"
SUBSCRIPTION_CHANGED = "subscription.changed"
INVOICE_PAID = "invoice.paid"
TRIAL_NOTICE = timedelta(days=3)  # as Stripe's trial_will_end
BACKOFF = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=6),
    timedelta(hours=12),
    timedelta(hours=24),
)
MAX_ATTEMPTS = len(BACKOFF) + 1  # about two days of retries, then it is left as failed
TIMEOUT_SECONDS = 10

# (url, body, headers) -> HTTP status; raises OSError when the host app cannot be reached
Post = Callable[[str, bytes, dict[str, str]], int]


def enqueue(
    session: Session,
    clock: Clock,
    kind: str,
    account_id: str,
    data: dict[str, Any],
    dedupe_key: str,
) -> Notification | None:
    """Queue a notification unless one with this dedupe key exists (then None)."""
    existing = session.scalar(select(Notification.id).where(Notification.dedupe_key == dedupe_key))
    if existing is not None:
        return None
    now = clock.now()
    note_id = "ntf_" + secrets.token_hex(12)
    note = Notification(
        id=note_id,
        type=kind,
        dedupe_key=dedupe_key,
        account_id=account_id,
        payload={
            "id": note_id,
            "type": kind,
            "created": _iso(now),
            "account_id": account_id,
            "data": data,
        },
        created_at=now,
        next_attempt_at=now,
        attempts=0,
    )
    session.add(note)
    session.flush()
    return note


def trial_will_end(
    session: Session, clock: Clock, account_id: str, tier_id: str, trial_end: datetime
) -> Notification | None:
    return enqueue(
        session,
        clock,
        TRIAL_WILL_END,
        account_id,
        {"tier": tier_id, "trial_end": _iso(trial_end)},
        f"{TRIAL_WILL_END}:{account_id}:{int(trial_end.timestamp())}",
    )


def payment_failed(
    session: Session,
    clock: Clock,
    account_id: str,
    *,
    invoice_id: str,
    attempt: int,
    amount_due: int | None,
    currency: str | None,
    grace_ends_at: datetime | None,
) -> Notification | None:
    data = {
        "invoice": invoice_id,
        "attempt": attempt,
        "amount_due": amount_due,
        "currency": currency,
        "grace_ends_at": _iso(grace_ends_at) if grace_ends_at else None,
    }
    key = f"{PAYMENT_FAILED}:{invoice_id}:{attempt}"
    return enqueue(session, clock, PAYMENT_FAILED, account_id, data, key)


def invoice_paid(session: Session, clock: Clock, invoice: Invoice) -> Notification | None:
    """A receipt: money was collected on this invoice (a zero one, as a trial's, is not)."""
    if invoice.status != "paid" or invoice.amount_paid <= 0:
        return None
    session.flush()  # the row's id, which the dedupe key is made of
    paid_at = invoice.paid_at or clock.now()
    data = {
        "invoice": invoice.external_id,
        "provider": invoice.provider,
        "amount_paid": invoice.amount_paid,
        "currency": invoice.currency,
        "paid_at": _iso(paid_at),
        "lines": [
            {"description": line.get("description", ""), "amount": line.get("amount", 0)}
            for line in invoice.lines or []
        ],
    }
    key = f"{INVOICE_PAID}:{invoice.id}"
    return enqueue(session, clock, INVOICE_PAID, invoice.account_id, data, key)


def trials_ending(session: Session, clock: Clock, provider_name: str) -> list[str]:
    """Manual billing's trial_will_end: trials of this provider ending within three days."""
    from gating.models import Subscription, SubscriptionStatus  # lazily: models import order

    now = clock.now()
    subs = session.scalars(
        select(Subscription)
        .where(
            Subscription.provider == provider_name,
            Subscription.status == SubscriptionStatus.TRIALING,
            Subscription.trial_end > now,
            Subscription.trial_end <= now + TRIAL_NOTICE,
        )
        .order_by(Subscription.trial_end)
    ).all()
    lines = []
    for sub in subs:
        assert sub.trial_end is not None
        if trial_will_end(session, clock, sub.account_id, sub.tier_id, sub.trial_end):
            when = f"{sub.trial_end:%Y-%m-%d}"
            lines.append(f"{sub.account_id}: trial ends {when} (host app notified)")
    return lines


def subscription_changed(
    session: Session,
    clock: Clock,
    account_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any],
) -> Notification | None:
    """The plan, interval, status, a scheduled change or a cancellation changed (any path:
    the pages, Stripe's webhooks, reconcile, renewals)."""
    now = clock.now()
    change = json.dumps([before, after], sort_keys=True)
    digest = hashlib.sha256(change.encode()).hexdigest()[:16]
    return enqueue(
        session,
        clock,
        SUBSCRIPTION_CHANGED,
        account_id,
        {**after, "previous": before},
        f"{SUBSCRIPTION_CHANGED}:{account_id}:{now.timestamp():.6f}:{digest}",
    )


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The Tiergate-Signature header value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def deliver_due(
    session: Session,
    clock: Clock,
    url: str,
    secret: str,
    *,
    post: Post | None = None,
    limit: int = 100,
) -> list[str]:
    """POST every due notification (oldest first); one line per attempt. Commits each.

    On PostgreSQL each is locked while it is sent (FOR UPDATE SKIP LOCKED), so deliverers
    running at once never send the same one; delivery is at least once all the same (an answer
    can be lost), which is why the body carries its id."""
    send = post or _post
    now = clock.now()
    postgres = session.get_bind().dialect.name == "postgresql"
    lines: list[str] = []
    # An attempted notification leaves this query: delivered, or next_attempt_at moved on.
    query = (
        select(Notification)
        .where(Notification.delivered_at.is_(None), Notification.next_attempt_at <= now)
        .order_by(Notification.created_at, Notification.id)
        .limit(1)
    )
    if postgres:
        query = query.with_for_update(skip_locked=True)
    while len(lines) < limit:
        note = session.scalar(query)
        if note is None:
            break
        body = json.dumps(note.payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "tiergate-notifications",
            # Wall-clock time, not the (injectable) business clock: the host app compares the
            # signature's age with its own clock, as Stripe's receivers do.
            "Tiergate-Signature": sign(secret, body, int(time.time())),
        }
        try:
            status = send(url, body, headers)
            error = None if 200 <= status < 300 else f"the host app answered {status}"
        except OSError as exc:
            error = f"the host app could not be reached: {exc}"
        except (http.client.HTTPException, ValueError) as exc:  # not HTTP, or a bad URL
            error = f"the host app did not answer in HTTP: {type(exc).__name__}: {exc}"[:500]
        note.attempts += 1
        if error is None:
            note.delivered_at = now
            note.next_attempt_at = None
            note.last_error = None
            lines.append(f"{note.id} {note.type} ({note.account_id}): delivered")
        elif note.attempts >= MAX_ATTEMPTS:
            note.next_attempt_at = None
            note.last_error = error
            lines.append(f"{note.id} {note.type}: {error}; gave up after {note.attempts} attempts")
        else:
            wait = BACKOFF[min(note.attempts, len(BACKOFF)) - 1]
            note.next_attempt_at = now + wait
            note.last_error = error
            lines.append(f"{note.id} {note.type}: {error}; next attempt at {_iso(now + wait)}")
        session.commit()
    return lines


def stored(session: Session, *, failed: bool = False, limit: int = 50) -> list[Notification]:
    """Notifications, newest first; `failed`: given up on, or waiting for a retry."""
    query = select(Notification)
    if failed:
        query = query.where(Notification.delivered_at.is_(None), Notification.attempts > 0)
    return list(session.scalars(query.order_by(Notification.created_at.desc()).limit(limit)))


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
