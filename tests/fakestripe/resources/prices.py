"""Prices: immutable amounts, lookup keys (with ``transfer_lookup_key``)."""

from __future__ import annotations

from typing import Any

from ..errors import invalid, missing_param
from ..events import Tracker, emit
from ..params import Arr, Bool, Enum, Hash, Int, Meta, Str
from ..render import created_filter, paginate, render
from ..state import Store
from . import Ctx, route
from .common import CREATED, LIST_SPEC, set_fields, set_metadata

INTERVALS = ("day", "week", "month", "year")
MAX_INTERVAL_DAYS = {"day": 1095, "week": 156, "month": 36, "year": 3}


def _claim_lookup_key(store: Store, price: dict[str, Any], key: str | None, transfer: bool
                      ) -> None:
    if key is None:
        price["lookup_key"] = None
        return
    for other in store.all("price"):
        if other["id"] != price["id"] and other["lookup_key"] == key:
            if not transfer:
                raise invalid(f"A price (`{other['id']}`) already uses that lookup key.",
                              param="lookup_key")
            with Tracker(store, other, "price.updated"):
                other["lookup_key"] = None
    price["lookup_key"] = key


def create_price_record(store: Store, p: dict[str, Any], *, param_prefix: str = ""
                        ) -> dict[str, Any]:
    def name(n: str) -> str:
        return f"{param_prefix}[{n}]" if param_prefix else n

    if not p.get("currency"):
        raise missing_param(name("currency"))
    if p.get("product_data"):
        from .products import create_product_record

        product = create_product_record(store, p["product_data"], param_prefix=name(
            "product_data"))
    elif p.get("product"):
        product = store.get(p["product"], "product", param=name("product"))
    else:
        raise missing_param(name("product"))
    if p.get("unit_amount") is None:
        raise invalid("You must pass either unit_amount, unit_amount_decimal, "
                      "custom_unit_amount or tiers.", param=name("unit_amount"))
    if p["unit_amount"] < 0:
        raise invalid("Invalid integer: unit_amount must be greater than or equal to 0",
                      param=name("unit_amount"))
    recurring = None
    if p.get("recurring") is not None:
        r = p["recurring"]
        if not r.get("interval"):
            raise missing_param(name("recurring][interval"))
        count = r.get("interval_count") or 1
        if count < 1 or count > MAX_INTERVAL_DAYS[r["interval"]]:
            raise invalid("Invalid interval_count: the maximum billing interval is three "
                          "years.", param=name("recurring][interval_count"))
        recurring = {"interval": r["interval"], "interval_count": count, "meter": None,
                     "trial_period_days": r.get("trial_period_days"),
                     "usage_type": r.get("usage_type") or "licensed"}
    price = {
        "id": store.new_id("price"), "object": "price",
        "active": p.get("active", True) is not False, "billing_scheme": "per_unit",
        "created": store.now, "currency": p["currency"].lower(), "custom_unit_amount": None,
        "livemode": False, "lookup_key": None,
        "metadata": {k: v for k, v in (p.get("metadata") or {}).items() if v is not None},
        "nickname": p.get("nickname"), "product": product["id"], "recurring": recurring,
        "tax_behavior": p.get("tax_behavior") or "unspecified", "tiers_mode": None,
        "transform_quantity": None, "type": "recurring" if recurring else "one_time",
        "unit_amount": p["unit_amount"], "unit_amount_decimal": str(p["unit_amount"]),
    }
    store.add(price)
    if p.get("lookup_key") is not None:
        _claim_lookup_key(store, price, p["lookup_key"], bool(p.get("transfer_lookup_key")))
    emit(store, "price.created", price)
    return price


RECURRING = Hash(interval=Enum(*INTERVALS), interval_count=Int(), trial_period_days=Int(),
                 usage_type=Enum("licensed"))
PRODUCT_DATA = Hash(name=Str(), active=Bool(), metadata=Meta(), id=Str(), unit_label=Str(),
                    statement_descriptor=Str(), tax_code=Str())
TAX_BEHAVIOR = Enum("exclusive", "inclusive", "unspecified")


@route("POST", "/v1/prices", Hash(
    currency=Str(), product=Str(), product_data=PRODUCT_DATA, unit_amount=Int(),
    recurring=RECURRING, lookup_key=Str(200), transfer_lookup_key=Bool(), nickname=Str(),
    metadata=Meta(), active=Bool(), tax_behavior=TAX_BEHAVIOR,
), "PriceCreateParams")
def create_price(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    return render(ctx.store, create_price_record(ctx.store, p))


@route("GET", "/v1/prices/{id}", Hash(), "PriceRetrieveParams")
def retrieve_price(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    return render(ctx.store, ctx.store.get(id, "price"))


@route("POST", "/v1/prices/{id}", Hash(
    active=Bool(), lookup_key=Str(200), transfer_lookup_key=Bool(), metadata=Meta(),
    nickname=Str(), tax_behavior=TAX_BEHAVIOR,
), "PriceUpdateParams")
def update_price(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    # Amounts, currency and interval are immutable: the real API has no such update
    # parameters, so `unit_amount` is answered "Received unknown parameter: unit_amount".
    store = ctx.store
    price = store.get(id, "price")
    with Tracker(store, price, "price.updated"):
        set_fields(price, p, "active", "nickname")
        if "tax_behavior" in p:
            if price["tax_behavior"] != "unspecified" and p["tax_behavior"] != \
                    price["tax_behavior"]:
                raise invalid("You cannot change `tax_behavior` once it has been set.",
                              param="tax_behavior")
            price["tax_behavior"] = p["tax_behavior"]
        set_metadata(price, p)
        if "lookup_key" in p:
            _claim_lookup_key(store, price, p["lookup_key"], bool(p.get("transfer_lookup_key")))
    return render(store, price)


@route("GET", "/v1/prices", Hash(
    LIST_SPEC, active=Bool(), currency=Str(), product=Str(), type=Enum("one_time", "recurring"),
    lookup_keys=Arr(Str()), recurring=Hash(interval=Enum(*INTERVALS),
                                           usage_type=Enum("licensed", "metered")),
    created=CREATED,
), "PriceListParams")
def list_prices(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    items = ctx.store.all("price")
    if p.get("lookup_keys") is not None:
        if len(p["lookup_keys"]) > 10:
            raise invalid("Invalid array: lookup_keys can have at most 10 items",
                          param="lookup_keys")
        items = [o for o in items if o["lookup_key"] in p["lookup_keys"]]
    for key in ("active", "currency", "product", "type"):
        if p.get(key) is not None:
            items = [o for o in items if o[key] == p[key]]
    rec = p.get("recurring") or {}
    for key in ("interval", "usage_type"):
        if rec.get(key):
            items = [o for o in items if o["recurring"] and o["recurring"][key] == rec[key]]
    return paginate(ctx.store, created_filter(items, p.get("created")), p, "/v1/prices")
