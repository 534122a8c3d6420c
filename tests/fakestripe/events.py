"""Recording Stripe ``event`` objects for state changes."""

from __future__ import annotations

from typing import Any

from .render import render
from .state import API_VERSION, Store


def diff(before: Any, after: Any) -> Any:
    """Stripe-style ``previous_attributes``: the old values of what changed, recursing into
    plain hashes (``metadata``, ``items``) and giving ``None`` for keys that did not exist."""
    if isinstance(before, dict) and isinstance(after, dict):
        out = {}
        for k in list(before) + [k for k in after if k not in before]:
            if before.get(k) != after.get(k):
                b, a = before.get(k), after.get(k)
                out[k] = diff(b, a) if isinstance(b, dict) and isinstance(a, dict) \
                    and "id" not in b else b
        return out
    return before


def emit(store: Store, type_: str, obj: dict[str, Any], *,
         previous: dict[str, Any] | None = None, snapshot: dict[str, Any] | None = None,
         ) -> dict[str, Any]:
    """Record an event whose ``data.object`` is the object's current public JSON."""
    data: dict[str, Any] = {"object": snapshot if snapshot is not None else render(store, obj)}
    if previous is not None:
        data["previous_attributes"] = previous
    req = store.request or {}
    event = {
        "id": store.new_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": store.now,
        "data": data,
        "livemode": False,
        "pending_webhooks": 0,
        "request": {"id": req.get("id"), "idempotency_key": req.get("idempotency_key")},
        "type": type_,
        "_seq": store.seq(),
    }
    store.events.append(event)
    return event


class Tracker:
    """``with Tracker(store, obj, "customer.updated"):`` mutate ``obj``; on exit, an
    ``*.updated`` event is recorded if the public JSON changed (with previous_attributes)."""

    def __init__(self, store: Store, obj: dict[str, Any], type_: str) -> None:
        self.store, self.obj, self.type = store, obj, type_

    def __enter__(self) -> Tracker:
        self.before = render(self.store, self.obj)
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is not None:
            return
        after = render(self.store, self.obj)
        prev = diff(self.before, after)
        if prev:
            emit(self.store, self.type, self.obj, previous=prev, snapshot=after)
