"""Turning stored records into API JSON: private keys, embedded objects, lists, ``expand``."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from .errors import invalid
from .state import Store

# object type -> function(store, record, public_copy) filling derived fields (set by resources)
RENDERERS: dict[str, Callable[[Store, dict[str, Any], dict[str, Any]], None]] = {}
# object type -> {field: function(store, public_json) -> value}: Stripe's includable fields,
# returned only when asked for with ``expand`` (e.g. an invoice's ``payments``)
INCLUDABLE: dict[str, dict[str, Callable[[Store, dict[str, Any]], Any]]] = {}
MAX_EXPAND_DEPTH = 4  # Stripe's limit: e.g. data.payment_intent.customer.default_source


def strip_private(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_private(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [strip_private(v) for v in value]
    return value


def render(store: Store, obj: dict[str, Any]) -> dict[str, Any]:
    """The public JSON of a stored record (a fresh deep copy)."""
    hook = RENDERERS.get(obj.get("object", ""))
    out = copy.deepcopy(strip_private(obj))
    if hook:
        hook(store, obj, out)
    return out


def render_id(store: Store, obj_id: str) -> dict[str, Any]:
    obj = store.objects[obj_id]
    return render(store, obj)


def list_object(data: list[dict[str, Any]], url: str, has_more: bool = False) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def paginate(store: Store, records: list[dict[str, Any]], params: dict[str, Any], url: str,
             ) -> dict[str, Any]:
    """Newest first, ``limit`` (1..100, default 10), ``starting_after`` / ``ending_before``."""
    records = sorted(records, key=lambda o: (o.get("created", 0), o.get("_seq", 0)),
                     reverse=True)
    limit = params.get("limit") or 10
    if not 1 <= limit <= 100:
        raise invalid("Invalid limit: must be at most 100 and at least 1", param="limit")
    ids = [o["id"] for o in records]
    if params.get("starting_after"):
        cursor = params["starting_after"]
        if cursor not in ids:
            raise invalid(f"No such object: '{cursor}'", param="starting_after",
                          code="resource_missing")
        records = records[ids.index(cursor) + 1:]
        page, more = records[:limit], len(records) > limit
    elif params.get("ending_before"):
        cursor = params["ending_before"]
        if cursor not in ids:
            raise invalid(f"No such object: '{cursor}'", param="ending_before",
                          code="resource_missing")
        records = records[: ids.index(cursor)]
        page, more = records[-limit:], len(records) > limit
    else:
        page, more = records[:limit], len(records) > limit
    data = [render(store, o) for o in page]
    return list_object(data, url, more)


def created_filter(records: list[dict[str, Any]], created: Any) -> list[dict[str, Any]]:
    if created is None:
        return records
    if isinstance(created, int):
        return [o for o in records if o["created"] == created]
    ops = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
           "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}
    return [o for o in records
            if all(ops[k](o["created"], v) for k, v in created.items() if v is not None)]


def check_expand(paths: list[str] | None) -> None:
    """Refuse an expansion deeper than Stripe allows (before the request runs, as Stripe)."""
    for path in paths or []:
        if path.count(".") >= MAX_EXPAND_DEPTH:
            raise invalid(f"You cannot expand more than {MAX_EXPAND_DEPTH} levels of a "
                          f"property. Property: {path}", param="expand")


def expand(store: Store, value: dict[str, Any], paths: list[str] | None) -> dict[str, Any]:
    for path in paths or []:
        _expand(store, value, path.split("."), path)
    return value


def _expand(store: Store, value: Any, parts: list[str], full: str) -> None:
    if value is None or not parts:
        return
    if isinstance(value, list):
        for v in value:
            _expand(store, v, parts, full)
        return
    if not isinstance(value, dict):
        return
    key = parts[0]
    if key not in value:
        include = INCLUDABLE.get(value.get("object", ""), {}).get(key)
        if include is None:
            raise invalid(f"This property cannot be expanded ({full}).", param="expand")
        value[key] = include(store, value)
    child = value[key]
    if isinstance(child, str):
        target = store.find(child)
        if target is None:
            raise invalid(f"This property cannot be expanded ({full}).", param="expand")
        child = value[key] = render(store, target)
    elif isinstance(child, list) and child and all(isinstance(c, str) for c in child):
        child = value[key] = [render(store, store.objects[c]) if c in store.objects else c
                              for c in child]
    _expand(store, child, parts[1:], full)
