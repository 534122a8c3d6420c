"""Coupons, promotion codes, and the discount objects they produce on subscriptions."""

from __future__ import annotations

from typing import Any

from ..errors import invalid, missing_param
from ..events import Tracker, emit
from ..params import Arr, Bool, Enum, Hash, Int, Meta, Num, Str
from ..periods import add_months
from ..render import created_filter, paginate, render
from ..state import Store
from . import Ctx, route
from .common import CREATED, LIST_SPEC, set_fields, set_metadata


def coupon_valid(store: Store, coupon: dict[str, Any]) -> bool:
    if coupon.get("_deleted"):
        return False
    if coupon["redeem_by"] is not None and store.now >= coupon["redeem_by"]:
        return False
    return coupon["max_redemptions"] is None or coupon["times_redeemed"] < \
        coupon["max_redemptions"]


def _render_coupon(store: Store, record: dict[str, Any], out: dict[str, Any]) -> None:
    out["valid"] = coupon_valid(store, record)


@route("POST", "/v1/coupons", Hash(
    id=Str(), percent_off=Num(), amount_off=Int(), currency=Str(),
    duration=Enum("forever", "once", "repeating"), duration_in_months=Int(),
    max_redemptions=Int(), redeem_by=Int(), name=Str(40), metadata=Meta(),
    applies_to=Hash(products=Arr(Str())),
), "CouponCreateParams")
def create_coupon(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    store = ctx.store
    if (p.get("percent_off") is None) == (p.get("amount_off") is None):
        raise invalid("You must pass exactly one of percent_off or amount_off.",
                      param="percent_off" if p.get("percent_off") is None else "amount_off")
    if p.get("percent_off") is not None and not 0 < p["percent_off"] <= 100:
        raise invalid("Invalid percent_off: must be greater than 0 and at most 100",
                      param="percent_off")
    if p.get("amount_off") is not None and not p.get("currency"):
        raise missing_param("currency")
    duration = p.get("duration") or "once"
    if duration == "repeating" and not p.get("duration_in_months"):
        raise invalid("You must pass duration_in_months when duration is repeating.",
                      param="duration_in_months")
    if duration != "repeating" and p.get("duration_in_months") is not None:
        raise invalid("You can only pass duration_in_months when duration is repeating.",
                      param="duration_in_months")
    cid = p.get("id") or store.new_id("coupon")
    if cid in store.objects:
        raise invalid("Coupon already exists.", param="id", code="resource_already_exists")
    for product in (p.get("applies_to") or {}).get("products") or []:
        store.get(product, "product", param="applies_to[products]")
    percent = p.get("percent_off")
    coupon = {
        "id": cid, "object": "coupon", "amount_off": p.get("amount_off"),
        "created": store.now,
        "currency": p["currency"].lower() if p.get("currency") else None,
        "duration": duration, "duration_in_months": p.get("duration_in_months"),
        "livemode": False, "max_redemptions": p.get("max_redemptions"),
        "metadata": {k: v for k, v in (p.get("metadata") or {}).items() if v is not None},
        "name": p.get("name"),
        "percent_off": float(percent) if percent is not None else None,
        "redeem_by": p.get("redeem_by"), "times_redeemed": 0, "valid": True,
        "_percent_off": str(percent) if percent is not None else None,
    }
    if p.get("applies_to"):
        coupon["applies_to"] = {"products": list(p["applies_to"].get("products") or [])}
    store.add(coupon)
    emit(store, "coupon.created", coupon)
    return render(store, coupon)


@route("GET", "/v1/coupons/{id}", Hash(), "CouponRetrieveParams")
def retrieve_coupon(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    return render(ctx.store, ctx.store.get(id, "coupon"))


@route("POST", "/v1/coupons/{id}", Hash(name=Str(40), metadata=Meta()), "CouponUpdateParams")
def update_coupon(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    coupon = ctx.store.get(id, "coupon")
    with Tracker(ctx.store, coupon, "coupon.updated"):
        set_fields(coupon, p, "name")
        set_metadata(coupon, p)
    return render(ctx.store, coupon)


@route("DELETE", "/v1/coupons/{id}", Hash(), "CouponDeleteParams")
def delete_coupon(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    coupon = ctx.store.get(id, "coupon")
    snapshot = render(ctx.store, coupon)
    coupon["_deleted"] = True  # existing discounts keep working, as on Stripe
    emit(ctx.store, "coupon.deleted", coupon, snapshot=snapshot)
    return {"id": id, "object": "coupon", "deleted": True}


@route("GET", "/v1/coupons", Hash(LIST_SPEC, created=CREATED), "CouponListParams")
def list_coupons(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    items = created_filter(ctx.store.all("coupon"), p.get("created"))
    return paginate(ctx.store, items, p, "/v1/coupons")


# --- promotion codes -------------------------------------------------------------------------

def promo_active(store: Store, promo: dict[str, Any]) -> bool:
    if not promo["active"]:
        return False
    if promo["expires_at"] is not None and store.now >= promo["expires_at"]:
        return False
    return promo["max_redemptions"] is None or promo["times_redeemed"] < \
        promo["max_redemptions"]


def _render_promo(store: Store, record: dict[str, Any], out: dict[str, Any]) -> None:
    out["active"] = promo_active(store, record)


@route("POST", "/v1/promotion_codes", Hash(
    promotion=Hash(type=Enum("coupon"), coupon=Str()), code=Str(500), active=Bool(),
    customer=Str(), expires_at=Int(), max_redemptions=Int(), metadata=Meta(),
    restrictions=Hash(first_time_transaction=Bool(), minimum_amount=Int(),
                      minimum_amount_currency=Str()),
), "PromotionCodeCreateParams")
def create_promotion_code(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    store = ctx.store
    promotion = p.get("promotion") or {}
    if not promotion.get("coupon"):
        raise missing_param("promotion[coupon]")
    coupon = store.get(promotion["coupon"], "coupon", param="promotion[coupon]")
    if p.get("customer"):
        store.get(p["customer"], "customer", param="customer")
    code = p.get("code") or store.new_id("promocode")
    for other in store.all("promotion_code"):
        if other["code"].lower() == code.lower() and promo_active(store, other):
            raise invalid(f"An active promotion code with `code: {code}` already exists.",
                          param="code")
    r = p.get("restrictions") or {}
    promo = {
        "id": store.new_id("promo"), "object": "promotion_code",
        "active": p.get("active", True) is not False, "code": code, "created": store.now,
        "customer": p.get("customer"), "customer_account": None,
        "expires_at": p.get("expires_at"), "livemode": False,
        "max_redemptions": p.get("max_redemptions"),
        "metadata": {k: v for k, v in (p.get("metadata") or {}).items() if v is not None},
        "promotion": {"coupon": coupon["id"], "type": "coupon"},
        "restrictions": {"first_time_transaction": bool(r.get("first_time_transaction")),
                         "minimum_amount": r.get("minimum_amount"),
                         "minimum_amount_currency": r.get("minimum_amount_currency")},
        "times_redeemed": 0,
    }
    store.add(promo)
    emit(store, "promotion_code.created", promo)
    return render(store, promo)


@route("GET", "/v1/promotion_codes/{id}", Hash(), "PromotionCodeRetrieveParams")
def retrieve_promotion_code(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    return render(ctx.store, ctx.store.get(id, "promotion_code"))


@route("POST", "/v1/promotion_codes/{id}", Hash(active=Bool(), metadata=Meta()),
       "PromotionCodeUpdateParams")
def update_promotion_code(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    promo = ctx.store.get(id, "promotion_code")
    with Tracker(ctx.store, promo, "promotion_code.updated"):
        set_fields(promo, p, "active")
        set_metadata(promo, p)
    return render(ctx.store, promo)


@route("GET", "/v1/promotion_codes", Hash(
    LIST_SPEC, code=Str(), active=Bool(), coupon=Str(), customer=Str(), created=CREATED,
), "PromotionCodeListParams")
def list_promotion_codes(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    store = ctx.store
    items = store.all("promotion_code")
    if p.get("code") is not None:
        items = [o for o in items if o["code"].lower() == p["code"].lower()]
    if p.get("active") is not None:
        items = [o for o in items if promo_active(store, o) == p["active"]]
    if p.get("coupon") is not None:
        items = [o for o in items if o["promotion"]["coupon"] == p["coupon"]]
    if p.get("customer") is not None:
        items = [o for o in items if o["customer"] == p["customer"]]
    return paginate(store, created_filter(items, p.get("created")), p, "/v1/promotion_codes")


# --- discounts -------------------------------------------------------------------------------

def make_discounts(store: Store, entries: list[dict[str, Any]] | None, *, customer: str,
                   subscription: str | None = None, checkout_session: str | None = None,
                   param: str = "discounts") -> list[str]:
    """Discount objects for ``discounts[N][coupon|promotion_code|discount]`` entries.

    A `discount` entry reuses "an existing discount on the object (or one of its ancestors)":
    one still on the subscription being written (a discount overwritten away is gone), or,
    for another object, one of the same customer."""
    out: list[str] = []
    on_object = set(store.objects[subscription]["discounts"]) if subscription in store.objects \
        else None
    for i, entry in enumerate(entries or []):
        where = f"{param}[{i}]"
        if entry.get("discount"):
            di = store.get(entry["discount"], "discount", param=f"{where}[discount]")
            reusable = di["id"] in on_object if on_object is not None \
                else di["customer"] == customer
            if not reusable:
                raise invalid(f"The discount {di['id']} is not applied to this object or its "
                              "ancestors, so it cannot be reused.", param=f"{where}[discount]")
            out.append(di["id"])
            continue
        promo = None
        if entry.get("promotion_code"):
            promo = store.get(entry["promotion_code"], "promotion_code",
                              param=f"{where}[promotion_code]")
            if not promo_active(store, promo):
                raise invalid(f"This promotion code is not active: {promo['code']}",
                              param=f"{where}[promotion_code]")
            if promo["customer"] not in (None, customer):
                raise invalid("This promotion code cannot be redeemed by this customer.",
                              param=f"{where}[promotion_code]")
            coupon = store.objects[promo["promotion"]["coupon"]]
        elif entry.get("coupon"):
            coupon = store.get(entry["coupon"], "coupon", param=f"{where}[coupon]")
        else:
            raise invalid("You must pass one of coupon, promotion_code or discount.",
                          param=where)
        if not coupon_valid(store, coupon):
            raise invalid(f"Coupon is not valid: {coupon['id']}", param=f"{where}[coupon]")
        end = None
        if coupon["duration"] == "repeating":
            end = add_months(store.now, coupon["duration_in_months"])
        di = {
            "id": store.new_id("di"), "object": "discount", "checkout_session": checkout_session,
            "customer": customer, "customer_account": None, "end": end, "invoice": None,
            "invoice_item": None, "promotion_code": promo["id"] if promo else None,
            "start": store.now, "subscription": subscription, "subscription_item": None,
            "source": {"coupon": coupon["id"], "type": "coupon"},
            "_once": coupon["duration"] == "once",
        }
        store.add(di)
        coupon["times_redeemed"] += 1
        if promo:
            promo["times_redeemed"] += 1
        out.append(di["id"])
    return out


def register_renderers() -> None:
    from ..render import RENDERERS

    RENDERERS["coupon"] = _render_coupon
    RENDERERS["promotion_code"] = _render_promo


register_renderers()
