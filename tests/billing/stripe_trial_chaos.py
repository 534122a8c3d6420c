"""Helpers: snapshot/restore the database, deliver fake Stripe events (in order, twice
shuffled) and compare the account's billing state."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from billing.models import BillingChange, Invoice
from gating.models import Account, AccountAddOn, Offer, Subscription
from tests.billing.stripe_fixtures import WEBHOOK_SECRET
from tiergate.db import Base, get_db
from tiers import store


def snapshot(app: Any) -> dict[str, list[dict[str, Any]]]:
    with get_db(app).engine.connect() as conn:
        return {
            t.name: [dict(r._mapping) for r in conn.execute(t.select())]
            for t in Base.metadata.sorted_tables
        }


def restore(app: Any, snap: dict[str, list[dict[str, Any]]]) -> None:
    with get_db(app).engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
        for table in Base.metadata.sorted_tables:
            if snap[table.name]:
                conn.execute(table.insert(), snap[table.name])
    store.clear_cache()


def post(app: Any, fake: Any, event: dict[str, Any], *, ok: bool = True) -> str:
    client = app.test_client()
    done = fake.deliver(
        event,
        lambda body, headers: client.post("/webhooks/stripe", data=body, headers=headers),
        WEBHOOK_SECRET,
    )
    if not ok:
        return str(done.status)
    assert done.status == 200, (event["type"], done.body)
    return str(done.response.get_json()["status"])


def deliver_rest(app: Any, fake: Any, seen: set[str], *, ok: bool = True) -> None:
    """Deliver, in order, every event not in `seen` (also those their handling creates)."""
    while True:
        new = [e for e in fake.events if e["id"] not in seen]
        if not new:
            return
        for event in new:
            seen.add(event["id"])
            post(app, fake, event, ok=ok)


def state(app: Any, account_id: str) -> dict[str, Any]:
    """What billing keeps about the account (no surrogate ids, no bookkeeping times)."""
    with get_db(app).sessionmaker() as s:
        account = s.get(Account, account_id)
        assert account is not None
        sub = account.subscription
        skip = {"id", "updated_at", "stripe_state_at"}
        cols = [c.key for c in Subscription.__table__.columns if c.key not in skip]
        invoices = s.scalars(
            select(Invoice).where(Invoice.account_id == account_id).order_by(Invoice.external_id)
        ).all()
        addons = s.scalars(
            select(AccountAddOn)
            .where(AccountAddOn.account_id == account_id)
            .order_by(AccountAddOn.addon_id, AccountAddOn.id)
        ).all()
        offers = s.scalars(
            select(Offer).where(Offer.account_id == account_id).order_by(Offer.created_at, Offer.id)
        ).all()
        changes = s.scalars(
            select(BillingChange)
            .where(BillingChange.account_id == account_id)
            .order_by(BillingChange.created_at, BillingChange.id)
        ).all()
        return {
            "balance": (account.balance, account.balance_currency),
            "subscription": {k: getattr(sub, k) for k in cols} if sub else None,
            "invoices": [
                (i.external_id, i.status, i.amount_due, i.amount_paid, i.lines, i.change_id)
                for i in invoices
            ],
            "addons": [
                (a.addon_id, a.quantity, a.active, a.ended_at, a.catalog_version) for a in addons
            ],
            "offers": [
                (
                    o.id,
                    o.status.value,
                    [(e.type.value, e.amount) for e in o.events],
                    bool((o.details or {}).get("paid_at_first_charge")),
                )
                for o in offers
            ],
            "changes": [(c.id, c.kind, c.status.value) for c in changes],
        }


def chaos(app: Any, fake: Any, account_id: str, seeds: tuple[int, ...] = (1, 2, 3)) -> Any:
    """Deliver every event so far in order, then (from the same database) every event twice in
    shuffled orders: returns (in-order state, [(seed, state), ...])."""
    snap = snapshot(app)
    deliver_rest(app, fake, set())
    in_order = state(app, account_id)
    events = list(fake.events)
    results = []
    for seed in seeds:
        restore(app, snap)
        doubled = events * 2
        random.Random(seed).shuffle(doubled)
        for event in doubled:
            post(app, fake, event)
        deliver_rest(app, fake, {e["id"] for e in events})
        results.append((seed, state(app, account_id)))
    return in_order, results


def diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


def after_trial(fake: Any, clock: Any, sub_id: str) -> None:
    fake.advance_to_period_end(sub_id)
    clock.set(fake.clock.now() + timedelta(minutes=1))
