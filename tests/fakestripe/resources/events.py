"""Events: list and retrieve."""

from __future__ import annotations

from typing import Any

from ..errors import no_such
from ..params import Arr, Bool, Hash, Str
from ..render import created_filter, paginate, render
from . import Ctx, route
from .common import CREATED, LIST_SPEC


@route("GET", "/v1/events/{id}", Hash(), "EventRetrieveParams")
def retrieve(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    for event in ctx.store.events:
        if event["id"] == id:
            return render(ctx.store, event)
    raise no_such("event", id)


@route("GET", "/v1/events", Hash(LIST_SPEC, type=Str(), types=Arr(Str()), created=CREATED,
                                 delivery_success=Bool()), "EventListParams")
def list_events(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    events = list(ctx.store.events)
    if p.get("type"):
        pattern = p["type"]
        if pattern.endswith("*"):
            events = [e for e in events if e["type"].startswith(pattern[:-1])]
        else:
            events = [e for e in events if e["type"] == pattern]
    if p.get("types"):
        events = [e for e in events if e["type"] in p["types"]]
    return paginate(ctx.store, created_filter(events, p.get("created")), p, "/v1/events")
