"""Customers and (card) payment methods, with Stripe's test card tokens."""

from __future__ import annotations

from typing import Any

from ..errors import StripeError, card_declined, invalid
from ..events import Tracker, emit
from ..params import Arr, Hash, Int, Meta, Str
from ..render import paginate, render
from ..state import Store
from . import Ctx, route
from .common import ADDRESS, CREATED, LIST_SPEC, address, set_fields, set_metadata

# Stripe's test PaymentMethod tokens: brand, last4, behaviour
#   "ok": attaches and charges succeed
#   "charge_fails": attaches, every charge is declined (card 4000 0000 0000 0341)
#   "attach_fails": declined as soon as it is attached (generic decline, insufficient funds)
TEST_TOKENS: dict[str, tuple[str, str, str, str]] = {
    "pm_card_visa": ("visa", "4242", "ok", ""),
    "pm_card_mastercard": ("mastercard", "4444", "ok", ""),
    "pm_card_amex": ("amex", "8431", "ok", ""),
    "pm_card_chargeCustomerFail": ("visa", "0341", "charge_fails", "generic_decline"),
    "pm_card_chargeDeclined": ("visa", "0002", "attach_fails", "generic_decline"),
    "pm_card_chargeDeclinedInsufficientFunds": ("visa", "9995", "attach_fails",
                                                "insufficient_funds"),
}


def new_payment_method(store: Store, token: str, *, param: str | None = None,
                       ) -> dict[str, Any]:
    if token not in TEST_TOKENS:
        raise StripeError(400 if param else 404, f"No such PaymentMethod: '{token}'",
                          param=param or "id", code="resource_missing")
    brand, last4, behaviour, decline = TEST_TOKENS[token]
    pm = {
        "id": store.new_id("pm"), "object": "payment_method", "allow_redisplay": "unspecified",
        "billing_details": {"address": address({}), "email": None, "name": None, "phone": None,
                            "tax_id": None},
        "card": {"brand": brand, "checks": {"address_line1_check": None,
                                            "address_postal_code_check": None,
                                            "cvc_check": "pass"},
                 "country": "US", "display_brand": brand, "exp_month": 12, "exp_year": 2034,
                 "funding": "credit", "last4": last4, "networks": {"available": [brand],
                                                                    "preferred": None},
                 "wallet": None},
        "created": store.now, "customer": None, "livemode": False, "metadata": {},
        "type": "card", "_behaviour": behaviour, "_decline_code": decline or "generic_decline",
    }
    return store.add(pm)


def attach(store: Store, customer: dict[str, Any], ref: str, *, param: str) -> dict[str, Any]:
    """Attach a test token (creating a PaymentMethod) or an existing PaymentMethod."""
    if ref in TEST_TOKENS:
        pm = new_payment_method(store, ref, param=param)
    else:
        pm = store.get(ref, "payment_method", param=param)
        if pm["customer"] not in (None, customer["id"]):
            raise invalid("The payment method you provided has already been attached to "
                          "another customer.", param=param)
    if pm["_behaviour"] == "attach_fails":
        raise card_declined(decline_code=pm["_decline_code"], commit=False)
    pm["customer"] = customer["id"]
    customer.setdefault("_tokens", {})[ref] = pm["id"]
    return pm


def resolve_pm(store: Store, customer: dict[str, Any], ref: str | None, *, param: str,
               ) -> str | None:
    """A payment method reference on a customer (a token attached earlier maps to its pm)."""
    if ref is None:
        return None
    ref = customer.get("_tokens", {}).get(ref, ref)
    pm = store.get(ref, "payment_method", param=param)
    if pm["customer"] != customer["id"]:
        raise invalid(f"The customer does not have a payment method with the ID {ref}. The "
                      "payment method must be attached to the customer.", param=param)
    return pm["id"]


def _invoice_prefix(store: Store, cid: str) -> str:
    return "".join(c for c in cid[4:].upper() if c.isalnum())[:8].ljust(8, "0")


INVOICE_SETTINGS = Hash(default_payment_method=Str(), footer=Str())
CUSTOMER_FIELDS = dict(
    email=Str(512), name=Str(256), description=Str(), phone=Str(), metadata=Meta(),
    address=ADDRESS, preferred_locales=Arr(Str()), invoice_settings=INVOICE_SETTINGS,
    balance=Int(),
)


@route("POST", "/v1/customers",
       Hash(CUSTOMER_FIELDS, payment_method=Str(), invoice_prefix=Str()), "CustomerCreateParams")
def create_customer(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    return render(ctx.store, create_customer_record(ctx.store, p))


def create_customer_record(store: Store, p: dict[str, Any]) -> dict[str, Any]:
    cid = store.new_id("cus")
    cus: dict[str, Any] = {
        "id": cid, "object": "customer", "address": address(p.get("address")),
        "balance": p.get("balance") or 0, "created": store.now, "currency": None,
        "default_source": None, "delinquent": False, "description": p.get("description"),
        "discount": None, "email": p.get("email"),
        "invoice_prefix": p.get("invoice_prefix") or _invoice_prefix(store, cid),
        "invoice_settings": {"custom_fields": None, "default_payment_method": None,
                             "footer": None, "rendering_options": None},
        "livemode": False, "metadata": {k: v for k, v in (p.get("metadata") or {}).items()
                                        if v is not None},
        "name": p.get("name"), "next_invoice_sequence": 1, "phone": p.get("phone"),
        "preferred_locales": p.get("preferred_locales") or [], "shipping": None,
        "tax_exempt": "none", "test_clock": None,
    }
    store.add(cus)
    if p.get("payment_method"):
        attach(store, cus, p["payment_method"], param="payment_method")
    settings = p.get("invoice_settings") or {}
    if settings.get("default_payment_method"):
        cus["invoice_settings"]["default_payment_method"] = resolve_pm(
            store, cus, settings["default_payment_method"],
            param="invoice_settings[default_payment_method]")
    if "footer" in settings:
        cus["invoice_settings"]["footer"] = settings["footer"]
    emit(store, "customer.created", cus)
    return cus


@route("GET", "/v1/customers/{id}", Hash(), "CustomerRetrieveParams")
def retrieve_customer(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    obj = ctx.store.objects.get(id)
    if obj is not None and obj["object"] == "customer" and obj.get("_deleted"):
        return {"id": id, "object": "customer", "deleted": True}
    return render(ctx.store, ctx.store.get(id, "customer"))


@route("POST", "/v1/customers/{id}", Hash(CUSTOMER_FIELDS, source=Str()),
       "CustomerUpdateParams")
def update_customer(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    store = ctx.store
    cus = store.get(id, "customer")
    with Tracker(store, cus, "customer.updated"):
        set_fields(cus, p, "email", "name", "description", "phone", "balance")
        set_metadata(cus, p)
        if "address" in p:
            cus["address"] = address(p["address"])
        if "preferred_locales" in p:
            cus["preferred_locales"] = p["preferred_locales"] or []
        settings = p.get("invoice_settings") or {}
        if "default_payment_method" in settings:
            cus["invoice_settings"]["default_payment_method"] = resolve_pm(
                store, cus, settings["default_payment_method"],
                param="invoice_settings[default_payment_method]")
        if "footer" in settings:
            cus["invoice_settings"]["footer"] = settings["footer"]
    return render(store, cus)


@route("DELETE", "/v1/customers/{id}", Hash(), "CustomerDeleteParams")
def delete_customer(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    from ..engine import cancel_now

    store = ctx.store
    cus = store.get(id, "customer")
    for sub in store.all("subscription"):
        if sub["customer"] == id and sub["status"] not in ("canceled", "incomplete_expired"):
            cancel_now(store, sub, reason="cancellation_requested")
    snapshot = render(store, cus)
    cus["_deleted"] = True
    emit(store, "customer.deleted", cus, snapshot=snapshot)
    return {"id": id, "object": "customer", "deleted": True}


@route("GET", "/v1/customers", Hash(LIST_SPEC, email=Str(), created=CREATED),
       "CustomerListParams")
def list_customers(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    from ..render import created_filter

    items = [c for c in ctx.store.all("customer")
             if p.get("email") is None or c["email"] == p["email"]]
    return paginate(ctx.store, created_filter(items, p.get("created")), p, "/v1/customers")


# --- payment methods ----------------------------------------------------------------------

@route("POST", "/v1/payment_methods/{id}/attach", Hash(customer=Str()),
       "PaymentMethodAttachParams")
def attach_payment_method(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    store = ctx.store
    if not p.get("customer"):
        from ..errors import missing_param
        raise missing_param("customer")
    cus = store.get(p["customer"], "customer", param="customer")
    if id not in TEST_TOKENS:
        store.get(id, "payment_method")
    pm = attach(store, cus, id, param="payment_method")
    emit(store, "payment_method.attached", pm)
    return render(store, pm)


@route("POST", "/v1/payment_methods/{id}/detach", Hash(), "PaymentMethodDetachParams")
def detach_payment_method(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    store = ctx.store
    pm = store.get(id, "payment_method")
    if pm["customer"] is None:
        raise invalid("The payment method you provided is not attached to a customer so "
                      "detachment is impossible.")
    cus = store.objects[pm["customer"]]
    if cus["invoice_settings"]["default_payment_method"] == id:
        with Tracker(store, cus, "customer.updated"):
            cus["invoice_settings"]["default_payment_method"] = None
    pm["customer"] = None
    emit(store, "payment_method.detached", pm)
    return render(store, pm)


@route("GET", "/v1/payment_methods/{id}", Hash(), "PaymentMethodRetrieveParams")
def retrieve_payment_method(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    return render(ctx.store, ctx.store.get(id, "payment_method"))


@route("GET", "/v1/customers/{id}/payment_methods", Hash(LIST_SPEC, type=Str()),
       "CustomerListPaymentMethodsParams")
def list_customer_payment_methods(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    ctx.store.get(id, "customer")
    pms = [pm for pm in ctx.store.all("payment_method") if pm["customer"] == id]
    return paginate(ctx.store, pms, p, f"/v1/customers/{id}/payment_methods")
