"""Invoices: retrieve, list, create (draft), finalize, pay, void, lines, and create_preview."""

from __future__ import annotations

from typing import Any

from .. import billing
from ..engine import create_subscription, renewal_preview, update_subscription
from ..errors import StripeError, invalid, missing_param
from ..events import Tracker, emit
from ..params import Arr, Bool, Enum, Hash, Int, Meta, Str
from ..render import created_filter, list_object, paginate, render
from ..state import Store
from . import Ctx, route
from .common import CREATED, DISCOUNTS, LIST_SPEC, set_fields, set_metadata
from .subscription_items import PRORATION
from .subscriptions import TRIAL_END


@route("GET", "/v1/invoices/{id}", Hash(), "InvoiceRetrieveParams")
def retrieve(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    return render(ctx.store, ctx.store.get(id, "invoice"))


@route("GET", "/v1/invoices", Hash(
    LIST_SPEC, customer=Str(), subscription=Str(), created=CREATED,
    status=Enum("draft", "open", "paid", "uncollectible", "void"),
    collection_method=Enum("charge_automatically", "send_invoice"),
), "InvoiceListParams")
def list_invoices(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    items = ctx.store.all("invoice")
    for key in ("customer", "subscription", "status", "collection_method"):
        if p.get(key) is not None:
            items = [o for o in items if o[key] == p[key]]
    return paginate(ctx.store, created_filter(items, p.get("created")), p, "/v1/invoices")


@route("GET", "/v1/invoices/{id}/lines", Hash(LIST_SPEC), "InvoiceListLinesParams")
def list_lines(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    inv = render(ctx.store, ctx.store.get(id, "invoice"))
    lines = inv["lines"]["data"]
    ids = [ln["id"] for ln in lines]
    start = ids.index(p["starting_after"]) + 1 if p.get("starting_after") in ids else 0
    limit = p.get("limit") or 10
    page = lines[start:start + limit]
    return list_object(page, f"/v1/invoices/{id}/lines", start + limit < len(lines))


@route("POST", "/v1/invoices", Hash(
    customer=Str(), auto_advance=Bool(), collection_method=Enum("charge_automatically",
                                                                "send_invoice"),
    days_until_due=Int(), description=Str(), metadata=Meta(), subscription=Str(),
    pending_invoice_items_behavior=Enum("exclude", "include"), currency=Str(),
    discounts=DISCOUNTS, default_payment_method=Str(),
), "InvoiceCreateParams")
def create(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    from .coupons import make_discounts
    from .customers import resolve_pm

    store = ctx.store
    if not p.get("customer"):
        raise missing_param("customer")
    customer = store.get(p["customer"], "customer", param="customer")
    sub = store.get(p["subscription"], "subscription", param="subscription") \
        if p.get("subscription") else None
    pending = billing.pending_items(store, customer["id"], sub["id"] if sub else None) \
        if p.get("pending_invoice_items_behavior") == "include" else []
    currency = p.get("currency") or (pending[0]["currency"] if pending else None) \
        or customer["currency"] or "usd"
    if p.get("collection_method") == "send_invoice" and p.get("days_until_due") is None:
        raise invalid("Missing required param: days_until_due.", param="days_until_due")
    inv = billing.new_invoice(
        store, customer=customer, billing_reason="manual", currency=currency.lower(),
        subscription=sub, collection_method=p.get("collection_method") or "charge_automatically",
        days_until_due=p.get("days_until_due"), description=p.get("description"),
        metadata={k: v for k, v in (p.get("metadata") or {}).items() if v is not None},
        auto_advance=bool(p.get("auto_advance")))
    inv["discounts"] = make_discounts(store, p.get("discounts"), customer=customer["id"])
    if p.get("default_payment_method"):
        inv["default_payment_method"] = resolve_pm(store, customer, p["default_payment_method"],
                                                   param="default_payment_method")
    for ii in pending:
        billing.add_item_line(store, inv, ii)
    billing.compute_totals(store, inv)
    emit(store, "invoice.created", inv)
    return render(store, inv)


@route("POST", "/v1/invoices/{id}", Hash(metadata=Meta(), description=Str(), footer=Str(),
                                         auto_advance=Bool()), "InvoiceUpdateParams")
def update(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    inv = ctx.store.get(id, "invoice")
    with Tracker(ctx.store, inv, "invoice.updated"):
        set_metadata(inv, p)
        set_fields(inv, p, "description", "footer", "auto_advance")
    return render(ctx.store, inv)


@route("DELETE", "/v1/invoices/{id}", Hash(), "InvoiceDeleteParams")
def delete(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    store = ctx.store
    inv = store.get(id, "invoice")
    if inv["status"] != "draft":
        raise invalid("You can only delete draft invoices.")
    for ii in store.all("invoiceitem"):
        if ii["invoice"] == id:
            ii["invoice"] = None
    snapshot = render(store, inv)
    inv["_deleted"] = True
    emit(store, "invoice.deleted", inv, snapshot=snapshot)
    return {"id": id, "object": "invoice", "deleted": True}


@route("POST", "/v1/invoices/{id}/finalize", Hash(auto_advance=Bool()),
       "InvoiceFinalizeInvoiceParams")
def finalize(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    inv = ctx.store.get(id, "invoice")
    if inv["status"] != "draft":
        raise invalid("This invoice is already finalized, you can't re-finalize a "
                      "non-draft invoice.")
    if "auto_advance" in p:
        inv["auto_advance"] = bool(p["auto_advance"])
    billing.finalize(ctx.store, inv)
    return render(ctx.store, inv)


@route("POST", "/v1/invoices/{id}/pay", Hash(
    payment_method=Str(), paid_out_of_band=Bool(), off_session=Bool(), forgive=Bool(),
), "InvoicePayParams")
def pay(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    from .customers import resolve_pm

    store = ctx.store
    inv = store.get(id, "invoice")
    if inv["status"] == "paid":
        raise invalid("Invoice is already paid")
    if inv["status"] in ("void", "uncollectible"):
        raise invalid(f"This invoice can no longer be paid because it is {inv['status']}.")
    if inv["status"] == "draft":
        billing.finalize(store, inv)
        if inv["status"] == "paid":
            return render(store, inv)
    if p.get("paid_out_of_band"):
        billing.mark_paid(store, inv, out_of_band=True)
        return render(store, inv)
    pm = None
    if p.get("payment_method"):
        pm = resolve_pm(store, store.objects[inv["customer"]], p["payment_method"],
                        param="payment_method")
    attempt = billing.attempt_payment(store, inv, payment_method=pm)
    if not attempt.ok:
        assert attempt.error is not None
        raise attempt.error
    return render(store, inv)


@route("POST", "/v1/invoices/{id}/void", Hash(), "InvoiceVoidInvoiceParams")
def void(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    inv = ctx.store.get(id, "invoice")
    if inv["status"] != "open":
        raise invalid("You can only pass in open invoices. This invoice isn't open.")
    billing.void(ctx.store, inv)
    return render(ctx.store, inv)


# --- previews ----------------------------------------------------------------------------------

PREVIEW_ITEM = Hash(id=Str(), price=Str(), quantity=Int(), deleted=Bool(), metadata=Meta(),
                    clear_usage=Bool())


@route("POST", "/v1/invoices/create_preview", Hash(
    customer=Str(), subscription=Str(), discounts=DISCOUNTS,
    subscription_details=Hash(items=Arr(PREVIEW_ITEM), proration_date=Int(),
                              proration_behavior=PRORATION, cancel_at_period_end=Bool(),
                              trial_end=TRIAL_END, metadata=Meta()),
), "InvoiceCreatePreviewParams")
def create_preview(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    """What the subscription change (or the next renewal) would invoice. Runs the real code on
    a snapshot and throws the state away, so the numbers match the real update at the same
    ``proration_date``."""
    store = ctx.store
    snap = store.snapshot()
    try:
        out = render(store, _preview(store, p))
    finally:
        store.restore(snap)
    return as_preview(out)


def _preview(store: Store, p: dict[str, Any]) -> dict[str, Any]:
    details = dict(p.get("subscription_details") or {})
    if p.get("subscription"):
        sub = store.get(p["subscription"], "subscription", param="subscription")
        if p.get("customer") and p["customer"] != sub["customer"]:
            raise invalid("The customer does not match the subscription's customer.",
                          param="customer")
        if sub["status"] in ("canceled", "incomplete_expired"):
            raise StripeError(404, f"No upcoming invoices for customer: {sub['customer']}",
                              code="invoice_upcoming_none")
        if "discounts" in p:  # "if not specified, inherits the discount from the subscription"
            from .coupons import make_discounts

            sub["discounts"] = make_discounts(store, p["discounts"], customer=sub["customer"],
                                              subscription=sub["id"]) if p["discounts"] else []
        inv = update_subscription(store, sub, details, preview=True,
                                  param_prefix="subscription_details")
        assert inv is not None
        return inv
    if not p.get("customer"):
        raise missing_param("customer")
    customer = store.get(p["customer"], "customer", param="customer")
    if details.get("items"):
        bad = [f"subscription_details[items][{i}][{k}]"
               for i, e in enumerate(details["items"]) for k in ("id", "deleted") if k in e]
        if bad:
            raise invalid(f"Received unknown parameter: {bad[0]}", param=bad[0])
        sub = create_subscription(store, {"customer": customer["id"], **details},
                                  preview=True)
        return store.objects[sub["latest_invoice"]]
    subs = [s for s in store.all("subscription") if s["customer"] == customer["id"]
            and s["status"] in ("active", "past_due", "trialing", "unpaid")]
    if len(subs) == 1:
        return renewal_preview(store, subs[0])
    pending = billing.pending_items(store, customer["id"], None)
    if not pending:
        raise StripeError(404, f"No upcoming invoices for customer: {customer['id']}",
                          code="invoice_upcoming_none")
    inv = billing.new_invoice(store, customer=customer, billing_reason="manual",
                              currency=pending[0]["currency"])
    for ii in pending:
        billing.add_item_line(store, inv, ii)
    billing.finalize(store, inv)
    return inv


def as_preview(out: dict[str, Any]) -> dict[str, Any]:
    """A finalized invoice rendered as Stripe shows a preview (a draft with temporary ids)."""
    preview_id = "upcoming_" + out["id"]
    out["id"] = preview_id
    out["status"] = "draft"
    out["number"] = None
    out["billing_reason"] = "upcoming"
    out["amount_paid"] = 0
    out["amount_remaining"] = out["amount_due"]
    out["attempt_count"] = 0
    out["attempted"] = False
    out["hosted_invoice_url"] = out["invoice_pdf"] = None
    out["effective_at"] = None
    out["status_transitions"] = {k: None for k in out["status_transitions"]}
    for line in out["lines"]["data"]:
        line["id"] = "il_tmp_" + line["id"].split("_", 1)[1]
        line["invoice"] = preview_id
    out["lines"]["url"] = f"/v1/invoices/{preview_id}/lines"
    return out
