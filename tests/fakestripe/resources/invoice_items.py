"""Invoice items: one-time charges that wait for the customer's next invoice."""

from __future__ import annotations

from typing import Any

from .. import billing
from ..errors import invalid, missing_param
from ..events import Tracker, emit
from ..params import Bool, Hash, Int, Meta, Str
from ..render import created_filter, paginate, render
from . import Ctx, route
from .common import CREATED, LIST_SPEC, set_fields, set_metadata


@route("POST", "/v1/invoiceitems", Hash(
    customer=Str(), amount=Int(), currency=Str(), description=Str(), discountable=Bool(),
    invoice=Str(), subscription=Str(), metadata=Meta(), quantity=Int(),
    pricing=Hash(price=Str()), period=Hash(start=Int(), end=Int()),
), "InvoiceItemCreateParams")
def create(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    from ..engine import product_name

    store = ctx.store
    if not p.get("customer"):
        raise missing_param("customer")
    customer = store.get(p["customer"], "customer", param="customer")
    inv = None
    if p.get("invoice"):
        inv = store.get(p["invoice"], "invoice", param="invoice")
        if inv["status"] != "draft":
            raise invalid("You can only add invoice items to draft invoices.", param="invoice")
    sub = store.get(p["subscription"], "subscription", param="subscription") \
        if p.get("subscription") else None
    price = None
    quantity = p.get("quantity") or 1
    if (p.get("pricing") or {}).get("price"):
        if p.get("amount") is not None:
            raise invalid("You may only specify one of these parameters: amount, pricing.",
                          param="amount")
        price = store.get(p["pricing"]["price"], "price", param="pricing[price]")
        amount, currency = price["unit_amount"] * quantity, price["currency"]
        description = p.get("description") or product_name(store, price)
    else:
        if p.get("amount") is None:
            raise missing_param("amount")
        if not p.get("currency"):
            raise missing_param("currency")
        if p.get("quantity") not in (None, 1):
            raise invalid("quantity can only be used with a price.", param="quantity")
        amount, currency = p["amount"], p["currency"].lower()
        description = p.get("description")
    period = p.get("period") or {}
    ii = billing.new_invoice_item(
        store, customer=customer["id"], amount=amount, currency=currency,
        description=description,
        period=(period.get("start", store.now), period.get("end", store.now)),
        price=price, quantity=quantity, subscription=sub["id"] if sub else None,
        metadata={k: v for k, v in (p.get("metadata") or {}).items() if v is not None},
        discountable=p.get("discountable", True) is not False)
    if inv is not None:
        billing.add_item_line(store, inv, ii)
        billing.compute_totals(store, inv)
    emit(store, "invoiceitem.created", ii)
    return render(store, ii)


@route("GET", "/v1/invoiceitems/{id}", Hash(), "InvoiceItemRetrieveParams")
def retrieve(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    return render(ctx.store, ctx.store.get(id, "invoiceitem"))


@route("POST", "/v1/invoiceitems/{id}", Hash(description=Str(), metadata=Meta(),
                                             amount=Int(), discountable=Bool()),
       "InvoiceItemUpdateParams")
def update(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    ii = ctx.store.get(id, "invoiceitem")
    if ii["invoice"] is not None and ("amount" in p or "discountable" in p):
        raise invalid("You cannot change the amount of an invoice item that is already on an "
                      "invoice.")
    with Tracker(ctx.store, ii, "invoiceitem.updated"):
        set_fields(ii, p, "description", "discountable")
        if p.get("amount") is not None:
            ii["amount"] = ii["net_amount"] = p["amount"]
        set_metadata(ii, p)
    return render(ctx.store, ii)


@route("DELETE", "/v1/invoiceitems/{id}", Hash(), "InvoiceItemDeleteParams")
def delete(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    ii = ctx.store.get(id, "invoiceitem")
    if ii["invoice"] is not None:
        raise invalid("You cannot delete an invoice item that is attached to an invoice.")
    snapshot = render(ctx.store, ii)
    ii["_deleted"] = True
    emit(ctx.store, "invoiceitem.deleted", ii, snapshot=snapshot)
    return {"id": id, "object": "invoiceitem", "deleted": True}


@route("GET", "/v1/invoiceitems", Hash(LIST_SPEC, customer=Str(), invoice=Str(),
                                       pending=Bool(), created=CREATED),
       "InvoiceItemListParams")
def list_items(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    items = ctx.store.all("invoiceitem")
    if p.get("customer"):
        items = [o for o in items if o["customer"] == p["customer"]]
    if p.get("invoice"):
        items = [o for o in items if o["invoice"] == p["invoice"]]
    if p.get("pending") is not None:
        items = [o for o in items if (o["invoice"] is None) == p["pending"]]
    return paginate(ctx.store, created_filter(items, p.get("created")), p, "/v1/invoiceitems")
