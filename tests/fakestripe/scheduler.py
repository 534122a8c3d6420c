"""Clock-driven processes, run in time order whenever the fake's clock moves (like a Stripe
test clock): trial_will_end notices, pending-update and incomplete expiries, renewals,
Checkout Session expiry."""

from __future__ import annotations

from .engine import (
    BILLABLE,
    INCOMPLETE_EXPIRY,
    TRIAL_WILL_END_BEFORE,
    expire_incomplete,
    expire_pending_update,
    renew,
)
from .events import emit
from .state import Store


def due_tasks(store: Store) -> list[tuple[int, int, int, str, str]]:
    """(time, kind order, seq, kind, object id) of every clock-driven process."""
    out = []
    for sub in store.all("subscription"):
        seq = sub["_seq"]
        if sub["status"] == "trialing" and sub["trial_end"] and not sub.get("_twe_sent"):
            out.append((max(sub["trial_end"] - TRIAL_WILL_END_BEFORE, sub["trial_start"] or 0),
                        0, seq, "trial_will_end", sub["id"]))
        if sub.get("_pending"):
            out.append((sub["pending_update"]["expires_at"], 1, seq, "pending_expired",
                        sub["id"]))
        if sub["status"] == "incomplete":
            out.append((sub["created"] + INCOMPLETE_EXPIRY, 2, seq, "incomplete_expired",
                        sub["id"]))
        if sub["status"] in BILLABLE:
            out.append((sub["_period"][1], 3, seq, "renew", sub["id"]))
    for cs in store.all("checkout.session"):
        if cs["status"] == "open":
            out.append((cs["expires_at"], 4, cs["_seq"], "checkout_expired", cs["id"]))
    return out


def run_task(store: Store, kind: str, obj_id: str) -> None:
    obj = store.objects[obj_id]
    if kind == "trial_will_end":
        obj["_twe_sent"] = True
        emit(store, "customer.subscription.trial_will_end", obj)
    elif kind == "pending_expired":
        expire_pending_update(store, obj)
    elif kind == "incomplete_expired":
        expire_incomplete(store, obj)
    elif kind == "renew":
        renew(store, obj)
    elif kind == "checkout_expired":
        from .resources.checkout import expire_session

        expire_session(store, obj)


def run_until(store: Store, target: int) -> None:
    """Move the clock to ``target``, running every process that falls due on the way, in time
    order (like a Stripe test clock)."""
    for _ in range(100_000):
        tasks = [t for t in due_tasks(store) if t[0] <= target]
        if not tasks:
            break
        when, _, _, kind, obj_id = min(tasks)
        store.now = max(store.now, when)
        run_task(store, kind, obj_id)
    else:  # pragma: no cover
        raise RuntimeError("clock processing did not converge")
    store.now = max(store.now, target)
