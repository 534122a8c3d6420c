"""Checkout Sessions (subscription, payment and setup mode) and their completion helper."""

from __future__ import annotations

from typing import Any

from .. import billing
from ..engine import create_subscription, product_name
from ..errors import card_declined, invalid, missing_param
from ..events import emit
from ..params import Arr, Bool, Enum, Hash, Int, Meta, Str
from ..periods import DAY
from ..proration import percent_of
from ..render import list_object, paginate, render
from ..state import Store
from . import Ctx, route
from .common import BILLING_MODE, DISCOUNTS, LIST_SPEC

SESSION_LIFETIME = DAY


@route("POST", "/v1/checkout/sessions", Hash(
    mode=Enum("payment", "setup", "subscription"), success_url=Str(5000),
    cancel_url=Str(5000), client_reference_id=Str(200), customer=Str(), customer_email=Str(),
    line_items=Arr(Hash(price=Str(), quantity=Int())), allow_promotion_codes=Bool(),
    discounts=DISCOUNTS, metadata=Meta(), expires_at=Int(),
    customer_creation=Enum("always", "if_required"),
    subscription_data=Hash(trial_period_days=Int(), trial_end=Int(), metadata=Meta(),
                           description=Str(), billing_mode=BILLING_MODE),
    invoice_creation=Hash(enabled=Bool()), currency=Str(),
), "checkout.SessionCreateParams")
def create(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    store = ctx.store
    mode = p.get("mode")
    if not mode:
        raise missing_param("mode")
    if p.get("customer") and p.get("customer_email"):
        raise invalid("You may only specify one of these parameters: customer, customer_email.",
                      param="customer_email")
    if p.get("allow_promotion_codes") and p.get("discounts"):
        raise invalid("You may only specify one of these parameters: allow_promotion_codes, "
                      "discounts.", param="discounts")
    if p.get("subscription_data") and mode != "subscription":
        raise invalid(f"You can not pass `subscription_data` in `{mode}` mode.",
                      param="subscription_data")
    if p.get("customer_creation") and mode == "subscription":
        raise invalid("`customer_creation` can only be used in `payment` and `setup` mode.",
                      param="customer_creation")
    customer = store.get(p["customer"], "customer", param="customer") \
        if p.get("customer") else None
    lines = []
    for i, li in enumerate(p.get("line_items") or []):
        if not li.get("price"):
            raise missing_param(f"line_items[{i}][price]")
        if li.get("quantity") is None:
            raise missing_param(f"line_items[{i}][quantity]")
        price = store.get(li["price"], "price", param=f"line_items[{i}][price]")
        if not price["active"]:
            raise invalid("The price specified is inactive. This field only accepts active "
                          "prices.", param=f"line_items[{i}][price]")
        lines.append((price, li["quantity"]))
    if mode in ("payment", "subscription") and not lines:
        raise missing_param("line_items")
    if mode == "setup" and lines:
        raise invalid("You can not pass `line_items` in `setup` mode.", param="line_items")
    recurring = [pr for pr, _ in lines if pr["type"] == "recurring"]
    if mode == "payment" and recurring:
        raise invalid("You specified `payment` mode but passed a recurring price. Either "
                      "switch to `subscription` mode or use only one-time prices.",
                      param="line_items")
    if mode == "subscription" and not recurring:
        raise invalid("You must provide at least one recurring price in `subscription` mode "
                      "when using prices.", param="line_items")
    if len({pr["currency"] for pr, _ in lines}) > 1:
        raise invalid("All prices must use the same currency.", param="line_items")
    expires_at = p.get("expires_at") or store.now + SESSION_LIFETIME
    if not store.now + 1800 <= expires_at <= store.now + SESSION_LIFETIME:
        raise invalid("The `expires_at` timestamp must be between 30 minutes and 24 hours "
                      "from Checkout Session creation.", param="expires_at")
    sid = store.new_id("cs_test")
    sub_data = p.get("subscription_data") or {}
    trial = bool(sub_data.get("trial_period_days") or sub_data.get("trial_end"))
    subtotal = sum(pr["unit_amount"] * q for pr, q in lines
                   if not (trial and pr["type"] == "recurring"))
    discount = _estimate_discount(store, p.get("discounts"), subtotal,
                                  lines[0][0]["currency"] if lines else None)
    cs: dict[str, Any] = {
        "id": sid, "object": "checkout.session", "adaptive_pricing": {"enabled": False},
        "after_expiration": None, "allow_promotion_codes": p.get("allow_promotion_codes"),
        "amount_subtotal": subtotal if lines else None,
        "amount_total": subtotal - discount if lines else None,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None,
                          "status": None},
        "billing_address_collection": None, "cancel_url": p.get("cancel_url"),
        "client_reference_id": p.get("client_reference_id"), "client_secret": None,
        "collected_information": None, "consent": None, "consent_collection": None,
        "created": store.now, "currency": lines[0][0]["currency"] if lines else None,
        "currency_conversion": None, "custom_fields": [],
        "custom_text": {"after_submit": None, "shipping_address": None, "submit": None,
                        "terms_of_service_acceptance": None},
        "customer": customer["id"] if customer else None, "customer_account": None,
        "customer_creation": (p.get("customer_creation") or "if_required")
        if mode != "subscription" and not customer else None,
        "customer_details": ({"address": None, "business_name": None,
                              "email": customer["email"], "individual_name": None,
                              "name": customer["name"], "phone": customer["phone"],
                              "tax_exempt": "none", "tax_ids": []} if customer else None),
        "customer_email": p.get("customer_email"), "discounts": [
            {k: v for k, v in d.items() if v is not None} for d in p.get("discounts") or []],
        "expires_at": expires_at, "integration_identifier": None, "invoice": None,
        "invoice_creation": ({"enabled": bool((p.get("invoice_creation") or {}).get("enabled")),
                              "invoice_data": {"account_tax_ids": None, "custom_fields": None,
                                               "description": None, "footer": None,
                                               "issuer": None, "metadata": {},
                                               "rendering_options": None}}
                             if mode == "payment" else None),
        "livemode": False, "locale": None, "managed_payments": {"enabled": False},
        "metadata": {k: v for k, v in (p.get("metadata") or {}).items() if v is not None},
        "mode": mode, "origin_context": None, "payment_intent": None, "payment_link": None,
        "payment_method_collection": "always" if mode != "setup" else None,
        "payment_method_configuration_details": None, "payment_method_options": {},
        "payment_method_types": ["card"],
        "payment_status": "no_payment_required" if mode == "setup" else "unpaid",
        "permissions": None, "phone_number_collection": {"enabled": False},
        "recovered_from": None, "saved_payment_method_options": None, "setup_intent": None,
        "shipping_address_collection": None, "shipping_cost": None, "shipping_options": [],
        "status": "open", "submit_type": None, "subscription": None,
        "success_url": p.get("success_url"),
        "total_details": {"amount_discount": discount, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted", "url": f"{_base(store)}/c/pay/{sid}", "wallet_options": None,
        "_lines": [[pr["id"], q] for pr, q in lines], "_subscription_data": sub_data,
        "_discount_params": p.get("discounts"),
    }
    store.add(cs)
    return render(store, cs)


def _base(store: Store) -> str:
    return store.public_base


def _estimate_discount(store: Store, entries: list[dict[str, Any]] | None, subtotal: int,
                       currency: str | None) -> int:
    total = 0
    for i, e in enumerate(entries or []):
        if e.get("promotion_code"):
            promo = store.get(e["promotion_code"], "promotion_code",
                              param=f"discounts[{i}][promotion_code]")
            coupon = store.objects[promo["promotion"]["coupon"]]
        elif e.get("coupon"):
            coupon = store.get(e["coupon"], "coupon", param=f"discounts[{i}][coupon]")
        else:
            continue
        base = subtotal - total
        if coupon["_percent_off"] is not None:
            total += percent_of(base, coupon["_percent_off"])
        elif coupon["currency"] == currency:
            total += min(coupon["amount_off"], max(base, 0))
    return total


@route("GET", "/v1/checkout/sessions/{id}", Hash(), "checkout.SessionRetrieveParams")
def retrieve(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    return render(ctx.store, ctx.store.get(id, "checkout.session"))


@route("GET", "/v1/checkout/sessions", Hash(
    LIST_SPEC, customer=Str(), subscription=Str(), payment_intent=Str(),
    status=Enum("complete", "expired", "open"),
), "checkout.SessionListParams")
def list_sessions(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    items = ctx.store.all("checkout.session")
    for key in ("customer", "subscription", "payment_intent", "status"):
        if p.get(key) is not None:
            items = [o for o in items if o[key] == p[key]]
    return paginate(ctx.store, items, p, "/v1/checkout/sessions")


@route("GET", "/v1/checkout/sessions/{id}/line_items", Hash(LIST_SPEC),
       "checkout.SessionListLineItemsParams")
def line_items(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    store = ctx.store
    cs = store.get(id, "checkout.session")
    data = []
    for n, (price_id, q) in enumerate(cs["_lines"]):
        price = store.objects[price_id]
        amount = price["unit_amount"] * q
        data.append({
            "id": f"li_{cs['id'][8:20]}{n:04d}", "object": "item", "adjustable_quantity": None,
            "amount_discount": 0, "amount_subtotal": amount, "amount_tax": 0,
            "amount_total": amount, "currency": price["currency"],
            "description": product_name(store, price), "metadata": {},
            "price": render(store, price), "quantity": q,
        })
    return list_object(data[: p.get("limit") or 10], f"/v1/checkout/sessions/{id}/line_items",
                       len(data) > (p.get("limit") or 10))


@route("POST", "/v1/checkout/sessions/{id}/expire", Hash(), "checkout.SessionExpireParams")
def expire(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    cs = ctx.store.get(id, "checkout.session")
    if cs["status"] != "open":
        raise invalid(f"Only Checkout Sessions with a status in [\"open\"] can be expired. "
                      f"This Checkout Session has a status of \"{cs['status']}\".")
    expire_session(ctx.store, cs)
    return render(ctx.store, cs)


def expire_session(store: Store, cs: dict[str, Any]) -> None:
    cs["status"] = "expired"
    cs["url"] = None
    emit(store, "checkout.session.expired", cs)


def complete(store: Store, session_id: str, *, payment_method: str = "pm_card_visa",
             email: str | None = None, name: str | None = None,
             promotion_code: str | None = None) -> dict[str, Any]:
    """What happens when the customer pays on the hosted page (see FakeStripe.complete_checkout).
    Raises StripeError (card_declined) when the first payment fails, like Checkout which then
    keeps the customer on the page."""
    from .coupons import make_discounts
    from .customers import attach, create_customer_record

    cs = store.get(session_id, "checkout.session")
    if cs["status"] != "open":
        raise invalid(f"This Checkout Session is no longer open (status: {cs['status']}).")
    mode = cs["mode"]
    customer = store.objects[cs["customer"]] if cs["customer"] else None
    email = cs["customer_email"] or email or (customer["email"] if customer else None) \
        or "customer@example.com"
    if customer is None and (mode in ("subscription", "setup")
                             or cs["customer_creation"] == "always"):
        customer = create_customer_record(store, {"email": email, "name": name})
    pm_id = None
    if customer is not None:
        pm = attach(store, customer, payment_method, param="payment_method")
        pm["billing_details"]["email"] = email
        pm["billing_details"]["name"] = name
        pm_id = pm["id"]
        emit(store, "payment_method.attached", pm)
    discount_entries = list(cs["_discount_params"] or [])
    if promotion_code:
        if not cs["allow_promotion_codes"]:
            raise invalid("This Checkout Session does not allow promotion codes.")
        promo = next((pc for pc in store.all("promotion_code")
                      if promotion_code in (pc["id"], pc["code"])), None)
        if promo is None:
            raise invalid(f"No such promotion code: '{promotion_code}'")
        discount_entries.append({"promotion_code": promo["id"]})
    cs["customer_details"] = {"address": None, "business_name": None, "email": email,
                              "individual_name": None, "name": name, "phone": None,
                              "tax_exempt": "none", "tax_ids": []}
    if customer is not None:
        cs["customer"] = customer["id"]
    lines = [(store.objects[pid], q) for pid, q in cs["_lines"]]
    if mode == "subscription":
        assert customer is not None
        sub_data = cs["_subscription_data"]
        params: dict[str, Any] = {
            "customer": customer["id"],
            "items": [{"price": pr["id"], "quantity": q} for pr, q in lines
                      if pr["type"] == "recurring"],
            "add_invoice_items": [{"price": pr["id"], "quantity": q} for pr, q in lines
                                  if pr["type"] == "one_time"],
            "metadata": sub_data.get("metadata") or {},
            "payment_behavior": "error_if_incomplete",
            "description": sub_data.get("description"),
        }
        if sub_data.get("billing_mode"):
            params["billing_mode"] = sub_data["billing_mode"]
        if sub_data.get("trial_period_days"):
            params["trial_period_days"] = sub_data["trial_period_days"]
        if sub_data.get("trial_end"):
            params["trial_end"] = sub_data["trial_end"]
        discounts = make_discounts(store, discount_entries, customer=customer["id"],
                                   checkout_session=cs["id"])
        sub = create_subscription(store, params, default_payment_method=pm_id,
                                  discounts=discounts)
        for di in discounts:
            store.objects[di]["subscription"] = sub["id"]
        inv = store.objects[sub["latest_invoice"]]
        if inv["status"] != "draft":
            billing.use_up_once(store, inv)
        cs["subscription"] = sub["id"]
        cs["invoice"] = inv["id"]
        cs["amount_subtotal"] = inv["subtotal"]
        cs["amount_total"] = inv["total"]
        cs["total_details"]["amount_discount"] = inv["subtotal"] - inv["total"]
        cs["payment_status"] = "paid" if inv["amount_paid"] > 0 else "no_payment_required"
    elif mode == "payment":
        decline = billing.next_decline(store, customer["id"]) if customer is not None else None
        if decline is not None:
            raise card_declined(decline_code=decline, commit=False)
        if pm_id is not None and store.objects[pm_id].get("_behaviour") == "charge_fails":
            raise card_declined(commit=False)
        cs["payment_intent"] = store.new_id("pi")
        cs["payment_status"] = "paid"
        if customer is not None and (cs["invoice_creation"] or {}).get("enabled"):
            inv = billing.new_invoice(store, customer=customer, billing_reason="manual",
                                      currency=cs["currency"])
            for pr, q in lines:
                ii = billing.new_invoice_item(
                    store, customer=customer["id"], amount=pr["unit_amount"] * q,
                    currency=pr["currency"], description=product_name(store, pr),
                    period=(store.now, store.now), price=pr, quantity=q)
                billing.add_item_line(store, inv, ii)
            billing.finalize(store, inv)
            if inv["status"] != "paid":
                billing.mark_paid(store, inv, out_of_band=True)
            cs["invoice"] = inv["id"]
    else:  # setup
        cs["setup_intent"] = "seti_" + cs["id"][8:32]
    cs["status"] = "complete"
    cs["url"] = None
    emit(store, "checkout.session.completed", cs)
    return cs
