"""The fake's state: objects by id, deterministic ids, the clock, events, snapshots.

Objects are kept in Stripe's JSON shape; keys starting with ``_`` are private bookkeeping
that :func:`tests.fakestripe.render.render` strips. A request runs against a snapshot so that
a failing request leaves no trace (see ``Store.snapshot``/``restore``).
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from typing import Any

from .errors import no_such

API_VERSION = "2026-10-28.endive"

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# Length of the random part of each kind of id, as in Stripe's own ids.
_ID_SHAPES: dict[str, tuple[str, int]] = {
    # prefix: (fixed start of the random part, length of the random part)
    "cus": ("", 14), "prod": ("", 14), "si": ("", 14), "il": ("1", 23),
    "price": ("1", 23), "sub": ("1", 23), "in": ("1", 23), "ii": ("1", 23),
    "evt": ("1", 23), "pm": ("1", 23), "di": ("1", 23), "promo": ("1", 23),
    "cs_test": ("a1", 56), "req": ("", 14), "pi": ("1", 23), "li": ("1", 23),
    "coupon": ("", 8), "promocode": ("", 8), "inpay": ("1", 23), "secret": ("", 25),
}

KIND_NAMES = {
    "customer": "customer", "product": "product", "price": "price", "subscription": "subscription",
    "subscription_item": "subscription item", "invoice": "invoice", "invoiceitem": "invoiceitem",
    "checkout.session": "checkout.session", "coupon": "coupon", "promotion_code": "promotion code",
    "event": "event", "payment_method": "PaymentMethod", "discount": "discount",
    "payment_intent": "payment_intent", "invoice_payment": "invoice payment",
}


def _suffix(seed: str, prefix: str, n: int, length: int) -> str:
    digest = int.from_bytes(hashlib.sha256(f"{seed}:{prefix}:{n}".encode()).digest(), "big")
    out = []
    for _ in range(length):
        digest, r = divmod(digest, 62)
        out.append(_ALPHABET[r])
    return "".join(out)


@dataclass
class Store:
    now: int
    seed: str = "fakestripe"
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_type: dict[str, list[str]] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    # customer id -> the decline codes of its next payment attempts, in order
    decline_next: dict[str, list[str]] = field(default_factory=dict)
    # request context (not part of snapshots): {"id": req_..., "idempotency_key": ...}
    request: dict[str, Any] | None = None
    # where the fake's hosted pages (checkout) are served, e.g. http://127.0.0.1:PORT
    public_base: str = "https://checkout.stripe.com"

    # --- ids -------------------------------------------------------------------------------
    def new_id(self, prefix: str) -> str:
        start, length = _ID_SHAPES.get(prefix, ("", 14))
        n = self.counters.get(prefix, 0) + 1
        self.counters[prefix] = n
        body = start + _suffix(self.seed, prefix, n, length - len(start))
        if prefix == "coupon":
            return body.upper()
        if prefix == "promocode":
            return body.upper()
        return f"{prefix}_{body}"

    def seq(self) -> int:
        """A global, monotonically increasing number used to order objects created in the
        same second (Stripe lists newest first)."""
        self.counters["_seq"] = self.counters.get("_seq", 0) + 1
        return self.counters["_seq"]

    # --- objects -----------------------------------------------------------------------------
    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj["_seq"] = self.seq()
        self.objects[obj["id"]] = obj
        self.by_type.setdefault(obj["object"], []).append(obj["id"])
        return obj

    def get(self, obj_id: Any, kind: str, *, param: str | None = None) -> dict[str, Any]:
        obj = self.objects.get(obj_id) if isinstance(obj_id, str) else None
        if obj is None or obj["object"] != kind or obj.get("_deleted"):
            raise no_such(KIND_NAMES.get(kind, kind), str(obj_id), param)
        return obj

    def find(self, obj_id: Any) -> dict[str, Any] | None:
        return self.objects.get(obj_id) if isinstance(obj_id, str) else None

    def all(self, kind: str) -> list[dict[str, Any]]:
        """Objects of a kind, oldest first, without deleted ones."""
        return [o for i in self.by_type.get(kind, [])
                if not (o := self.objects[i]).get("_deleted")]

    # --- snapshots ---------------------------------------------------------------------------
    def snapshot(self) -> tuple[Any, ...]:
        # events are append-only and never mutated: remembering how many there were is enough
        # decline_next is deliberately not part of snapshots: a declined attempt uses up the
        # injected decline even when the request's other changes are rolled back.
        return (len(self.events), copy.deepcopy((self.now, self.objects, self.by_type,
                                                 self.counters)))

    def restore(self, snap: tuple[Any, ...]) -> None:
        n_events, (self.now, self.objects, self.by_type, self.counters) = snap
        del self.events[n_events:]
