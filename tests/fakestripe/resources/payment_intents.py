"""PaymentIntents (retrieve) and invoice payments (retrieve, list by invoice).

The fake makes them only for invoices (see ``billing.open_payment``): a PaymentIntent per
finalized invoice with an amount due, carrying the last declined attempt's card error as
``last_payment_error``; creating or confirming one through the API is not implemented.
"""

from __future__ import annotations

from typing import Any

from ..params import Enum, Hash, Str
from ..render import paginate, render
from . import Ctx, route
from .common import LIST_SPEC


@route("GET", "/v1/payment_intents/{id}", Hash(), "PaymentIntentRetrieveParams")
def retrieve(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    return render(ctx.store, ctx.store.get(id, "payment_intent"))


@route("GET", "/v1/invoice_payments/{id}", Hash(), "InvoicePaymentRetrieveParams")
def retrieve_payment(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    return render(ctx.store, ctx.store.get(id, "invoice_payment"))


@route("GET", "/v1/invoice_payments", Hash(
    LIST_SPEC, invoice=Str(), status=Enum("canceled", "open", "paid"),
), "InvoicePaymentListParams")
def list_payments(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    items = ctx.store.all("invoice_payment")
    for key in ("invoice", "status"):
        if p.get(key) is not None:
            items = [o for o in items if o[key] == p[key]]
    return paginate(ctx.store, items, p, "/v1/invoice_payments")
