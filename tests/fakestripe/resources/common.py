"""Helpers shared by resources."""

from __future__ import annotations

from typing import Any

from ..params import Arr, Enum, Hash, Int, Str

UNSET = object()


def set_metadata(obj: dict[str, Any], params: dict[str, Any], key: str = "metadata") -> None:
    """Stripe's metadata update: merge; ``metadata[k]=""`` deletes k; ``metadata=""`` clears."""
    if key not in params:
        return
    meta = params[key]
    if meta is None:
        obj[key] = {}
        return
    merged = dict(obj.get(key) or {})
    for k, v in meta.items():
        if v is None:
            merged.pop(k, None)
        else:
            merged[k] = v
    obj[key] = merged


def set_fields(obj: dict[str, Any], params: dict[str, Any], *names: str) -> None:
    for name in names:
        if name in params:
            obj[name] = params[name]


CREATED = Hash(gt=Int(), gte=Int(), lt=Int(), lte=Int())
LIST_SPEC = dict(limit=Int(), starting_after=Str(), ending_before=Str())
DISCOUNTS = Arr(Hash(coupon=Str(), promotion_code=Str(), discount=Str()))
BILLING_MODE = Hash(type=Enum("classic", "flexible"))
ADDRESS = Hash(city=Str(), country=Str(), line1=Str(), line2=Str(), postal_code=Str(),
               state=Str())


def address(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {k: value.get(k) for k in ("city", "country", "line1", "line2", "postal_code", "state")}
