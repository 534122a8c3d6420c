"""Invoices: lines, discounts, totals, customer balance, finalization and payment attempts.

Shared by subscriptions (create / update / renew), the invoice endpoints and checkout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import StripeError, card_declined
from .events import Tracker, emit
from .proration import allocate, decimal_string, percent_of
from .state import Store

ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf",
                "vnd", "vuv", "xaf", "xof", "xpf"}
SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "cad": "CA$", "aud": "A$"}


def format_amount(amount: int, currency: str) -> str:
    if currency in ZERO_DECIMAL:
        text = f"{amount}"
    else:
        text = f"{amount // 100}.{amount % 100:02d}" if amount >= 0 else \
            f"-{(-amount) // 100}.{(-amount) % 100:02d}"
    sym = SYMBOLS.get(currency)
    return f"{sym}{text}" if sym else f"{text} {currency.upper()}"


def qty_name(quantity: int, name: str) -> str:
    return name if quantity == 1 else f"{quantity} × {name}"


# --- invoice items and lines ------------------------------------------------------------------

def new_invoice_item(store: Store, *, customer: str, amount: int, currency: str,
                     description: str | None, period: tuple[int, int],
                     price: dict[str, Any] | None = None, quantity: int = 1,
                     proration: bool = False, subscription: str | None = None,
                     subscription_item: str | None = None, metadata: dict[str, str] | None = None,
                     discountable: bool = True, invoice: str | None = None) -> dict[str, Any]:
    unit = decimal_string(amount, quantity) if quantity else "0"
    ii = {
        "id": store.new_id("ii"), "object": "invoiceitem", "amount": amount,
        "currency": currency, "customer": customer, "customer_account": None,
        "date": store.now, "description": description, "discountable": discountable,
        "discounts": [], "invoice": invoice, "livemode": False, "metadata": metadata or {},
        "net_amount": amount,
        "parent": ({"type": "subscription_details",
                    "subscription_details": {"subscription": subscription,
                                             "subscription_item": subscription_item}}
                   if subscription else None),
        "period": {"start": period[0], "end": period[1]},
        "pricing": {"type": "price_details",
                    "price_details": ({"price": price["id"], "product": price["product"]}
                                      if price else None),
                    "unit_amount_decimal": unit},
        "proration": proration, "quantity": quantity, "quantity_decimal": str(quantity),
        "tax_rates": [], "test_clock": None,
    }
    return store.add(ii)


def _line(store: Store, invoice: dict[str, Any], *, amount: int, description: str | None,
          period: tuple[int, int], quantity: int, price: dict[str, Any] | None,
          parent: dict[str, Any], subscription: str | None, discountable: bool = True,
          metadata: dict[str, str] | None = None, unit_amount_decimal: str | None = None,
          ) -> dict[str, Any]:
    return {
        "id": store.new_id("il"), "object": "line_item", "amount": amount,
        "currency": invoice["currency"], "description": description, "discount_amounts": [],
        "discountable": discountable, "discounts": [], "invoice": invoice["id"],
        "livemode": False, "metadata": metadata or {},
        "parent": parent,
        "period": {"start": period[0], "end": period[1]},
        "pretax_credit_amounts": [],
        "pricing": {"type": "price_details",
                    "price_details": ({"price": price["id"], "product": price["product"]}
                                      if price else None),
                    "unit_amount_decimal": unit_amount_decimal},
        "quantity": quantity, "quantity_decimal": str(quantity),
        "subscription": subscription, "subtotal": amount, "taxes": [],
    }


def add_item_line(store: Store, invoice: dict[str, Any], ii: dict[str, Any]) -> dict[str, Any]:
    """Put a pending invoice item on an invoice."""
    ii["invoice"] = invoice["id"]
    sub_details = (ii.get("parent") or {}).get("subscription_details") or {}
    price = None
    pd = ii["pricing"]["price_details"]
    if pd:
        price = {"id": pd["price"], "product": pd["product"]}
    if sub_details.get("subscription_item"):
        parent = {"type": "subscription_item_details", "invoice_item_details": None,
                  "subscription_item_details": {
                      "invoice_item": ii["id"], "proration": ii["proration"],
                      "proration_details": {"credited_items": ii.get("_credited")},
                      "subscription": sub_details["subscription"],
                      "subscription_item": sub_details["subscription_item"]}}
    else:
        parent = {"type": "invoice_item_details", "subscription_item_details": None,
                  "invoice_item_details": {
                      "invoice_item": ii["id"], "proration": ii["proration"],
                      "proration_details": {"credited_items": None},
                      "subscription": sub_details.get("subscription")}}
    line = _line(store, invoice, amount=ii["amount"], description=ii["description"],
                 period=(ii["period"]["start"], ii["period"]["end"]), quantity=ii["quantity"],
                 price=price, parent=parent, subscription=sub_details.get("subscription"),
                 discountable=ii["discountable"], metadata=dict(ii["metadata"]),
                 unit_amount_decimal=ii["pricing"]["unit_amount_decimal"])
    invoice["_lines"].append(line)
    return line


def add_subscription_line(store: Store, invoice: dict[str, Any], *, sub: dict[str, Any],
                          item: dict[str, Any], price: dict[str, Any], product_name: str,
                          period: tuple[int, int], trial: bool) -> dict[str, Any]:
    q = item["quantity"]
    if trial:
        amount, description = 0, f"Trial period for {product_name}"
    else:
        amount = price["unit_amount"] * q
        r = price["recurring"]
        every = r["interval"] if r["interval_count"] == 1 else \
            f"every {r['interval_count']} {r['interval']}s"
        description = (f"{q} × {product_name} (at "
                       f"{format_amount(price['unit_amount'], price['currency'])} / {every})")
    parent = {"type": "subscription_item_details", "invoice_item_details": None,
              "subscription_item_details": {
                  "invoice_item": None, "proration": False,
                  "proration_details": {"credited_items": None},
                  "subscription": sub["id"], "subscription_item": item["id"]}}
    line = _line(store, invoice, amount=amount, description=description, period=period,
                 quantity=q, price=price, parent=parent, subscription=sub["id"],
                 metadata=dict(item["metadata"]),
                 unit_amount_decimal="0" if trial else price["unit_amount_decimal"])
    invoice["_lines"].append(line)
    item["_billed"] = {"invoice": invoice["id"], "invoice_line_items": [line["id"]]}
    return line


def pending_items(store: Store, customer: str, subscription: str | None) -> list[dict[str, Any]]:
    """Pending invoice items a subscription's next invoice picks up: the subscription's own
    and the customer's items that belong to no subscription."""
    out = []
    for ii in store.all("invoiceitem"):
        if ii["customer"] != customer or ii["invoice"] is not None:
            continue
        sub = ((ii.get("parent") or {}).get("subscription_details") or {}).get("subscription")
        if sub is None or sub == subscription:
            out.append(ii)
    return out


# --- invoices ---------------------------------------------------------------------------------

def new_invoice(store: Store, *, customer: dict[str, Any], billing_reason: str,
                currency: str, subscription: dict[str, Any] | None = None,
                period: tuple[int, int] | None = None,
                collection_method: str = "charge_automatically",
                days_until_due: int | None = None, discounts: list[str] | None = None,
                description: str | None = None, metadata: dict[str, str] | None = None,
                auto_advance: bool = True) -> dict[str, Any]:
    iid = store.new_id("in")
    start, end = period or (store.now, store.now)
    inv = {
        "id": iid, "object": "invoice", "account_country": "US", "account_name": "FakeStripe",
        "account_tax_ids": None, "amount_due": 0, "amount_overpaid": 0, "amount_paid": 0,
        "amount_remaining": 0, "amount_shipping": 0, "application": None,
        "attempt_count": 0, "attempted": False, "auto_advance": auto_advance,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None,
                          "provider": None, "status": None},
        "automatically_finalizes_at": None, "billing_reason": billing_reason,
        "collection_method": collection_method, "created": store.now, "currency": currency,
        "custom_fields": None, "customer": customer["id"], "customer_account": None,
        "customer_address": customer["address"], "customer_email": customer["email"],
        "customer_name": customer["name"], "customer_phone": customer["phone"],
        "customer_shipping": customer["shipping"], "customer_tax_exempt": "none",
        "customer_tax_ids": [], "default_payment_method": None, "default_source": None,
        "default_tax_rates": [], "description": description, "discounts": list(discounts or []),
        "due_date": None, "effective_at": None, "ending_balance": None, "footer": None,
        "from_invoice": None, "hosted_invoice_url": None, "invoice_pdf": None,
        "issuer": {"type": "self"}, "last_finalization_error": None, "latest_revision": None,
        "livemode": False, "metadata": dict(metadata or {}), "next_payment_attempt": None,
        "number": None, "on_behalf_of": None,
        "parent": ({"type": "subscription_details", "quote_details": None,
                    "subscription_details": {"metadata": dict(subscription["metadata"]),
                                             "subscription": subscription["id"]}}
                   if subscription else None),
        "payment_settings": {"default_mandate": None, "payment_method_options": None,
                             "payment_method_types": None},
        "period_end": end, "period_start": start, "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0, "receipt_number": None, "rendering": None,
        "shipping_cost": None, "shipping_details": None, "starting_balance": 0,
        "statement_descriptor": None, "status": "draft",
        "status_transitions": {"finalized_at": None, "marked_uncollectible_at": None,
                               "paid_at": None, "voided_at": None},
        "subscription": subscription["id"] if subscription else None,
        "subtotal": 0, "subtotal_excluding_tax": 0, "test_clock": None, "total": 0,
        "total_discount_amounts": [], "total_excluding_tax": 0,
        "total_pretax_credit_amounts": [], "total_taxes": [], "webhooks_delivered_at": None,
        "_lines": [], "_days_until_due": days_until_due,
    }
    store.add(inv)
    return inv


def active_discounts(store: Store, ids: list[str], at: int) -> list[dict[str, Any]]:
    out = []
    for di_id in ids:
        di = store.objects.get(di_id)
        if di is None or di.get("_deleted"):
            continue
        if di["end"] is not None and at >= di["end"]:
            continue
        out.append(di)
    return out


def compute_totals(store: Store, inv: dict[str, Any]) -> None:
    """Discounts (per line), subtotal, total, and amount_due before any customer balance."""
    lines = inv["_lines"]
    for line in lines:
        line["discount_amounts"] = []
    totals: dict[str, int] = {}
    for di in active_discounts(store, inv["discounts"], inv["created"]):
        coupon = store.objects[di["source"]["coupon"]]
        products = (coupon.get("applies_to") or {}).get("products")
        eligible = [ln for ln in lines if ln["discountable"] and (
            not products or (ln["pricing"]["price_details"] or {}).get("product") in products)]

        def net(ln: dict[str, Any]) -> int:
            return ln["amount"] - sum(d["amount"] for d in ln["discount_amounts"])

        if coupon["_percent_off"] is not None:
            parts = [percent_of(net(ln), coupon["_percent_off"]) for ln in eligible]
        else:
            if coupon["currency"] != inv["currency"]:
                continue
            cap = max(0, sum(net(ln) for ln in eligible))
            parts = allocate(min(coupon["amount_off"], cap),
                             [max(0, net(ln)) for ln in eligible])
        for ln, amt in zip(eligible, parts, strict=True):
            ln["discount_amounts"].append({"amount": amt, "discount": di["id"]})
        totals[di["id"]] = totals.get(di["id"], 0) + sum(parts)
    subtotal = sum(ln["amount"] for ln in lines)
    discount = sum(totals.values())
    inv["total_discount_amounts"] = [{"amount": a, "discount": d} for d, a in totals.items()]
    inv["subtotal"] = inv["subtotal_excluding_tax"] = subtotal
    inv["total"] = inv["total_excluding_tax"] = subtotal - discount
    inv["amount_due"] = inv["amount_remaining"] = max(0, inv["total"])


def finalize(store: Store, inv: dict[str, Any]) -> None:
    """draft -> open: number, customer balance applied, ``invoice.finalized``; a $0 invoice
    is paid right away (``invoice.paid`` / ``invoice.payment_succeeded``)."""
    compute_totals(store, inv)
    customer = store.objects[inv["customer"]]
    balance = customer["balance"]
    x = inv["total"] + balance
    inv["starting_balance"] = balance
    inv["ending_balance"] = min(0, x)
    inv["amount_due"] = inv["amount_remaining"] = max(0, x)
    with Tracker(store, customer, "customer.updated"):  # an event only when it changed
        customer["balance"] = inv["ending_balance"]
    if customer["currency"] is None:
        customer["currency"] = inv["currency"]
    inv["number"] = f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}"
    customer["next_invoice_sequence"] += 1
    inv["status"] = "open"
    inv["status_transitions"]["finalized_at"] = store.now
    inv["effective_at"] = store.now
    inv["hosted_invoice_url"] = f"https://invoice.stripe.com/i/acct_fake/test_{inv['id']}"
    inv["invoice_pdf"] = f"https://pay.stripe.com/invoice/acct_fake/test_{inv['id']}/pdf"
    if inv["collection_method"] == "send_invoice":
        inv["due_date"] = store.now + 86_400 * (inv["_days_until_due"] or 30)
    use_up_once(store, inv)
    if inv["amount_due"] > 0:
        open_payment(store, inv)
    emit(store, "invoice.finalized", inv)
    if inv["amount_due"] == 0:
        mark_paid(store, inv)


def use_up_once(store: Store, inv: dict[str, Any]) -> None:
    """A ``once`` discount that took something off this invoice is used up: its subscription
    drops it. (Checkout calls this again once it has tied the discount to the subscription it
    made, since that subscription's first invoice is finalized before.)"""
    used = {d["discount"] for d in inv["total_discount_amounts"] if d["amount"] > 0}
    for di in active_discounts(store, inv["discounts"], inv["created"]):
        if di.get("_once") and di["subscription"] and di["id"] in used:
            sub = store.objects[di["subscription"]]
            sub["discounts"] = [d for d in sub["discounts"] if d != di["id"]]


def mark_paid(store: Store, inv: dict[str, Any], *, out_of_band: bool = False) -> None:
    settle_payment(store, inv, "canceled" if out_of_band else "paid")
    inv["amount_paid"] = inv["amount_due"]
    inv["amount_remaining"] = 0
    inv["status"] = "paid"
    inv["status_transitions"]["paid_at"] = store.now
    inv["next_payment_attempt"] = None
    customer = store.objects[inv["customer"]]
    customer["delinquent"] = any(
        o["status"] == "open" and o["attempted"] and o["id"] != inv["id"]
        for o in store.all("invoice") if o["customer"] == customer["id"])
    emit(store, "invoice.paid", inv)
    if not out_of_band:
        emit(store, "invoice.payment_succeeded", inv)
    from .engine import on_invoice_paid

    on_invoice_paid(store, inv)


@dataclass
class Attempt:
    ok: bool
    error: StripeError | None = None


def payment_method_for(store: Store, inv: dict[str, Any], explicit: str | None = None
                       ) -> dict[str, Any] | None:
    customer = store.objects[inv["customer"]]
    candidates = [explicit, inv.get("default_payment_method")]
    if inv["subscription"]:
        candidates.append(store.objects[inv["subscription"]].get("default_payment_method"))
    candidates.append(customer["invoice_settings"]["default_payment_method"])
    for pm_id in candidates:
        if pm_id:
            return store.objects.get(pm_id)
    return None


def next_decline(store: Store, customer_id: str) -> str | None:
    """The decline code injected for the customer's next payment attempt (used up), if any."""
    queued = store.decline_next.get(customer_id)
    if not queued:
        return None
    decline = queued.pop(0)
    if not queued:
        del store.decline_next[customer_id]
    return decline


def attempt_payment(store: Store, inv: dict[str, Any], *, payment_method: str | None = None,
                    ) -> Attempt:
    """Charge an open invoice. Failure leaves it open, counts the attempt, marks the customer
    delinquent and records ``invoice.payment_failed``."""
    if inv["status"] == "paid":
        return Attempt(True)
    if inv["amount_due"] == 0:
        mark_paid(store, inv)
        return Attempt(True)
    customer = store.objects[inv["customer"]]
    pm = payment_method_for(store, inv, payment_method)
    inv["attempted"] = True
    inv["attempt_count"] += 1
    error: StripeError | None = None
    if pm is None:
        error = StripeError(400, "This customer has no attached payment source or default "
                                 "payment method. Please consider adding a default payment "
                                 "method.", commit=True)
    elif (decline := next_decline(store, customer["id"])) is not None:
        error = card_declined(decline_code=decline)
    elif pm.get("_behaviour") == "charge_fails":
        error = card_declined(decline_code=pm["_decline_code"])
    if error is not None:
        if error.type == "card_error":
            assert pm is not None
            record_failure(store, inv, pm, error)
        customer["delinquent"] = True
        emit(store, "invoice.payment_failed", inv)
        return Attempt(False, error)
    payment_intent_of(store, inv)["payment_method"] = pm["id"]
    mark_paid(store, inv)
    return Attempt(True)


def void(store: Store, inv: dict[str, Any]) -> None:
    settle_payment(store, inv, "canceled", reason="void_invoice")
    inv["status"] = "void"
    inv["amount_remaining"] = 0
    inv["status_transitions"]["voided_at"] = store.now
    emit(store, "invoice.voided", inv)


# --- the invoice's payment: an invoice_payment linking it to a PaymentIntent --------------------

def open_payment(store: Store, inv: dict[str, Any]) -> dict[str, Any]:
    """The invoice's default payment, made when it is finalized with an amount due (as Stripe
    does): a PaymentIntent for the amount due and the ``invoice_payment`` that links the two
    (listed by the invoice's includable ``payments``)."""
    pi_id = store.new_id("pi")
    secret = store.new_id("secret").split("_", 1)[1]
    intent = store.add({
        "id": pi_id, "object": "payment_intent", "amount": inv["amount_due"],
        "amount_capturable": 0, "amount_details": {"tip": {}}, "amount_received": 0,
        "application": None, "application_fee_amount": None,
        "automatic_payment_methods": None, "canceled_at": None, "cancellation_reason": None,
        "capture_method": "automatic", "client_secret": f"{pi_id}_secret_{secret}",
        "confirmation_method": "automatic", "created": store.now,
        "currency": inv["currency"], "customer": inv["customer"], "customer_account": None,
        "description": None, "excluded_payment_method_types": None,
        "last_payment_error": None, "latest_charge": None, "livemode": False,
        "managed_payments": None, "metadata": {}, "next_action": None, "on_behalf_of": None,
        "payment_method": None, "payment_method_configuration_details": None,
        "payment_method_options": {}, "payment_method_types": ["card"], "processing": None,
        "receipt_email": None, "review": None, "setup_future_usage": None, "shipping": None,
        "source": None, "statement_descriptor": None, "statement_descriptor_suffix": None,
        "status": "requires_payment_method", "transfer_data": None, "transfer_group": None,
    })
    payment = store.add({
        "id": store.new_id("inpay"), "object": "invoice_payment", "amount_paid": None,
        "amount_requested": inv["amount_due"], "created": store.now,
        "currency": inv["currency"], "invoice": inv["id"], "is_default": True,
        "livemode": False, "payment": {"type": "payment_intent", "payment_intent": pi_id},
        "status": "open", "status_transitions": {"canceled_at": None, "paid_at": None},
    })
    inv.setdefault("_payments", []).append(payment["id"])
    return intent


def payment_intent_of(store: Store, inv: dict[str, Any]) -> dict[str, Any]:
    """The PaymentIntent of the invoice's default payment (made now if it has none yet)."""
    for payment_id in inv.get("_payments", []):
        payment = store.objects[payment_id]
        if payment["is_default"]:
            return store.objects[payment["payment"]["payment_intent"]]
    return open_payment(store, inv)


def record_failure(store: Store, inv: dict[str, Any], pm: dict[str, Any],
                   error: StripeError) -> None:
    """A declined attempt: the PaymentIntent keeps Stripe's card error as
    ``last_payment_error`` (the 402's ``error`` object, with the payment method tried) and
    waits for another payment method."""
    from .render import render

    last = error.body()["error"]
    last["payment_method"] = render(store, pm)
    intent = payment_intent_of(store, inv)
    intent.update(status="requires_payment_method", payment_method=None,
                  last_payment_error=last)


def settle_payment(store: Store, inv: dict[str, Any], status: str, *,
                   reason: str | None = None) -> None:
    """The invoice's open payment ends: ``paid`` (its PaymentIntent succeeded; a later success
    clears ``last_payment_error``) or ``canceled`` (the invoice voided or paid out of band;
    the PaymentIntent canceled, its last error kept)."""
    for payment_id in inv.get("_payments", []):
        payment = store.objects[payment_id]
        if payment["status"] != "open":
            continue
        intent = store.objects[payment["payment"]["payment_intent"]]
        payment["status"] = status
        if status == "paid":
            payment["amount_paid"] = payment["amount_requested"]
            payment["status_transitions"]["paid_at"] = store.now
            intent.update(status="succeeded", amount_received=intent["amount"],
                          last_payment_error=None)
        else:
            payment["status_transitions"]["canceled_at"] = store.now
            intent.update(status="canceled", canceled_at=store.now,
                          cancellation_reason=reason)


def invoice_payments(store: Store, out: dict[str, Any]) -> dict[str, Any]:
    """The includable ``payments`` of an invoice (returned only when expanded), newest first."""
    from .render import render

    record = store.find(out["id"]) or {}
    data = [render(store, store.objects[i]) for i in reversed(record.get("_payments", []))]
    return {"object": "list", "data": data, "has_more": False,
            "url": f"/v1/invoice_payments?invoice={out['id']}"}


def render_invoice(store: Store, record: dict[str, Any], out: dict[str, Any]) -> None:
    import copy

    lines = copy.deepcopy(record["_lines"])
    for ln in lines:
        ln.pop("_credited", None)
    out["lines"] = {"object": "list", "data": lines, "has_more": False,
                    "total_count": len(lines), "url": f"/v1/invoices/{record['id']}/lines"}


def _register() -> None:
    from .render import INCLUDABLE, RENDERERS

    RENDERERS["invoice"] = render_invoice
    INCLUDABLE["invoice"] = {"payments": invoice_payments}


_register()
