"""Subscriptions: create, retrieve, update, cancel, list. The logic lives in ``engine``."""

from __future__ import annotations

from typing import Any

from ..engine import cancel_now, create_subscription, update_subscription
from ..errors import invalid
from ..params import Arr, Bool, Enum, Hash, Int, Meta, OneOf, Str
from ..render import RENDERERS, created_filter, paginate, render
from ..state import Store
from . import Ctx, route
from .common import BILLING_MODE, CREATED, DISCOUNTS, LIST_SPEC
from .subscription_items import PAYMENT_BEHAVIOR, PRORATION, render_item_json


def _render_subscription(store: Store, record: dict[str, Any], out: dict[str, Any]) -> None:
    data = [render_item_json(store, record, store.objects[i]) for i in record["_items"]]
    out["items"] = {"object": "list", "data": data, "has_more": False,
                    "total_count": len(data),
                    "url": f"/v1/subscription_items?subscription={record['id']}"}


RENDERERS["subscription"] = _render_subscription

TRIAL_END = OneOf(Enum("now"), Int())
COLLECTION = Enum("charge_automatically", "send_invoice")
ADD_INVOICE_ITEMS = Arr(Hash(price=Str(), quantity=Int(), metadata=Meta()))


@route("POST", "/v1/subscriptions", Hash(
    customer=Str(), items=Arr(Hash(price=Str(), quantity=Int(), metadata=Meta())),
    metadata=Meta(), trial_period_days=Int(), trial_end=TRIAL_END, trial_from_plan=Bool(),
    discounts=DISCOUNTS,
    payment_behavior=Enum("allow_incomplete", "default_incomplete", "error_if_incomplete"),
    proration_behavior=PRORATION, default_payment_method=Str(), description=Str(),
    cancel_at_period_end=Bool(), collection_method=COLLECTION, days_until_due=Int(),
    off_session=Bool(), add_invoice_items=ADD_INVOICE_ITEMS, billing_mode=BILLING_MODE,
), "SubscriptionCreateParams")
def create(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    return render(ctx.store, create_subscription(ctx.store, p))


@route("GET", "/v1/subscriptions/{id}", Hash(), "SubscriptionRetrieveParams")
def retrieve(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    return render(ctx.store, ctx.store.get(id, "subscription"))


UPDATE_SPEC = Hash(
    items=Arr(Hash(id=Str(), price=Str(), quantity=Int(), deleted=Bool(), metadata=Meta(),
                   clear_usage=Bool())),
    metadata=Meta(), proration_behavior=PRORATION, proration_date=Int(),
    payment_behavior=PAYMENT_BEHAVIOR, cancel_at_period_end=Bool(), trial_end=TRIAL_END,
    discounts=DISCOUNTS, default_payment_method=Str(), description=Str(),
    billing_cycle_anchor=Hash(type=Enum("now", "unchanged")),
    cancellation_details=Hash(comment=Str(), feedback=Str()), off_session=Bool(),
    collection_method=COLLECTION, days_until_due=Int(), add_invoice_items=ADD_INVOICE_ITEMS,
)


@route("POST", "/v1/subscriptions/{id}", UPDATE_SPEC, "SubscriptionUpdateParams")
def update(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    sub = ctx.store.get(id, "subscription")
    if p.get("add_invoice_items"):
        _add_invoice_items(ctx.store, sub, p["add_invoice_items"])
    update_subscription(ctx.store, sub, {k: v for k, v in p.items() if k != "add_invoice_items"})
    return render(ctx.store, sub)


def _add_invoice_items(store: Store, sub: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    from ..billing import new_invoice_item
    from ..engine import product_name

    for i, extra in enumerate(entries):
        price = store.get(extra.get("price"), "price", param=f"add_invoice_items[{i}][price]")
        q = extra.get("quantity") or 1
        new_invoice_item(store, customer=sub["customer"], amount=price["unit_amount"] * q,
                         currency=price["currency"], description=product_name(store, price),
                         period=(store.now, store.now), price=price, quantity=q,
                         subscription=sub["id"])


@route("DELETE", "/v1/subscriptions/{id}", Hash(
    invoice_now=Bool(), prorate=Bool(), cancellation_details=Hash(comment=Str(), feedback=Str()),
), "SubscriptionCancelParams")
def cancel(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    store = ctx.store
    sub = store.get(id, "subscription")
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise invalid(f"This subscription has already been canceled: {id}",
                      code="resource_missing")
    cancel_now(store, sub, reason="cancellation_requested", prorate_=bool(p.get("prorate")),
               invoice_now=bool(p.get("invoice_now")), details=p.get("cancellation_details"))
    return render(store, sub)


@route("GET", "/v1/subscriptions", Hash(
    LIST_SPEC, customer=Str(), price=Str(), created=CREATED,
    status=Enum("active", "all", "canceled", "ended", "incomplete", "incomplete_expired",
                "past_due", "paused", "trialing", "unpaid"),
), "SubscriptionListParams")
def list_subscriptions(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    store = ctx.store
    subs = store.all("subscription")
    status = p.get("status")
    if status is None:
        subs = [s for s in subs if s["status"] != "canceled"]
    elif status == "ended":
        subs = [s for s in subs if s["status"] in ("canceled", "incomplete_expired")]
    elif status != "all":
        subs = [s for s in subs if s["status"] == status]
    if p.get("customer"):
        subs = [s for s in subs if s["customer"] == p["customer"]]
    if p.get("price"):
        subs = [s for s in subs
                if any(store.objects[i]["price"] == p["price"] for i in s["_items"])]
    return paginate(store, created_filter(subs, p.get("created")), p, "/v1/subscriptions")
