"""Subscription items (each change goes through the subscription engine, with proration)."""

from __future__ import annotations

from typing import Any

from ..engine import update_subscription
from ..errors import invalid, missing_param
from ..params import Bool, Enum, Hash, Int, Meta, Str
from ..render import RENDERERS, paginate, render, strip_private
from ..state import Store
from . import Ctx, route
from .common import LIST_SPEC

PRORATION = Enum("always_invoice", "create_prorations", "none")
PAYMENT_BEHAVIOR = Enum("allow_incomplete", "default_incomplete", "error_if_incomplete",
                        "pending_if_incomplete")


def plan_json(price: dict[str, Any]) -> dict[str, Any]:
    """The legacy ``plan`` view of a recurring price, embedded in subscription items."""
    r = price["recurring"] or {}
    return {
        "id": price["id"], "object": "plan", "active": price["active"],
        "amount": price["unit_amount"], "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": price["billing_scheme"], "created": price["created"],
        "currency": price["currency"], "interval": r.get("interval"),
        "interval_count": r.get("interval_count"), "livemode": False,
        "metadata": dict(price["metadata"]), "meter": None, "nickname": price["nickname"],
        "product": price["product"], "tiers_mode": None, "transform_usage": None,
        "trial_period_days": r.get("trial_period_days"), "usage_type": r.get("usage_type"),
    }


def render_item_json(store: Store, sub: dict[str, Any], item: dict[str, Any]
                     ) -> dict[str, Any]:
    out = strip_private(item)
    price = render(store, store.objects[item["price"]])
    out["price"] = price
    out["plan"] = plan_json(price)
    out["current_period_start"], out["current_period_end"] = sub["_period"]
    return out


def _render_item(store: Store, record: dict[str, Any], out: dict[str, Any]) -> None:
    out.update(render_item_json(store, store.objects[record["subscription"]], record))


RENDERERS["subscription_item"] = _render_item


def _live_item(store: Store, item_id: str) -> dict[str, Any]:
    item = store.get(item_id, "subscription_item")
    if item.get("_pending"):
        from ..errors import no_such

        raise no_such("subscription item", item_id)
    return item


CHANGE = dict(proration_behavior=PRORATION, proration_date=Int(),
              payment_behavior=PAYMENT_BEHAVIOR)


@route("POST", "/v1/subscription_items", Hash(
    CHANGE, subscription=Str(), price=Str(), quantity=Int(), metadata=Meta(),
), "SubscriptionItemCreateParams")
def create_item(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    store = ctx.store
    if not p.get("subscription"):
        raise missing_param("subscription")
    sub = store.get(p["subscription"], "subscription", param="subscription")
    entry = {k: p[k] for k in ("price", "quantity", "metadata") if k in p}
    if not entry.get("price"):
        raise missing_param("price")
    before = set(sub["_items"])
    update_subscription(store, sub, {"items": [entry], **{k: p[k] for k in CHANGE if k in p}})
    added = [i for i in sub["_items"] if i not in before]
    if added:
        return render(store, store.objects[added[0]])
    # a pending update: the new item exists but has not joined the subscription yet
    pending = sub["_pending"]["plans"] if sub.get("_pending") else []
    new = [pl["item"] for pl in pending if pl["new"]]
    return render_item_json(store, sub, store.objects[new[-1]])


@route("GET", "/v1/subscription_items/{id}", Hash(), "SubscriptionItemRetrieveParams")
def retrieve_item(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    return render(ctx.store, _live_item(ctx.store, id))


@route("POST", "/v1/subscription_items/{id}", Hash(
    CHANGE, price=Str(), quantity=Int(), metadata=Meta(), off_session=Bool(),
), "SubscriptionItemUpdateParams")
def update_item(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    store = ctx.store
    item = _live_item(store, id)
    sub = store.objects[item["subscription"]]
    entry: dict[str, Any] = {"id": id}
    entry.update({k: p[k] for k in ("price", "quantity", "metadata") if k in p})
    update_subscription(store, sub, {"items": [entry],
                                     **{k: p[k] for k in CHANGE if k in p}})
    return render(store, item)


@route("DELETE", "/v1/subscription_items/{id}", Hash(
    proration_behavior=PRORATION, proration_date=Int(), payment_behavior=PAYMENT_BEHAVIOR,
    clear_usage=Bool(),
), "SubscriptionItemDeleteParams")
def delete_item(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    store = ctx.store
    item = _live_item(store, id)
    sub = store.objects[item["subscription"]]
    if len(sub["_items"]) == 1:
        raise invalid("A subscription must have at least one active price. To cancel a "
                      "subscription, please use the cancel API endpoint on /v1/subscriptions.")
    update_subscription(store, sub, {"items": [{"id": id, "deleted": True}],
                                     **{k: p[k] for k in CHANGE if k in p}})
    return {"id": id, "object": "subscription_item", "deleted": True}


@route("GET", "/v1/subscription_items", Hash(LIST_SPEC, subscription=Str()),
       "SubscriptionItemListParams")
def list_items(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    store = ctx.store
    if not p.get("subscription"):
        raise missing_param("subscription")
    sub = store.get(p["subscription"], "subscription", param="subscription")
    items = [store.objects[i] for i in sub["_items"]]
    return paginate(store, items, p, f"/v1/subscription_items?subscription={sub['id']}")
