"""Subscription billing engine: create, update (with proration), renew, cancel, pending updates.

Every function works on the :class:`~tests.fakestripe.state.Store` in place; the server runs
each request against a snapshot, so raising :class:`StripeError` undoes partial work.
Invoice previews run the same code on a snapshot and throw the result away, so a preview shows
exactly what the real call would charge at the same ``proration_date``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import billing
from .errors import StripeError, invalid, missing_param
from .events import Tracker, emit
from .periods import DAY, boundary, fmt_date
from .proration import prorate
from .render import render
from .state import Store

BILLABLE = ("active", "past_due", "trialing", "unpaid")
PENDING_ALLOWED = {"expand", "payment_behavior", "proration_behavior", "proration_date",
                   "billing_cycle_anchor", "items", "trial_end", "trial_from_plan",
                   "add_invoice_items", "off_session"}
INCOMPLETE_EXPIRY = 23 * 3600
TRIAL_WILL_END_BEFORE = 3 * DAY


# --- helpers -------------------------------------------------------------------------------

def items_of(store: Store, sub: dict[str, Any]) -> list[dict[str, Any]]:
    return [store.objects[i] for i in sub["_items"]]


def product_name(store: Store, price: dict[str, Any]) -> str:
    prod = store.objects.get(price["product"])
    return prod["name"] if prod else price["product"]


def recurring_price(store: Store, price_id: Any, param: str) -> dict[str, Any]:
    if not price_id:
        raise missing_param(param)
    price = store.get(price_id, "price", param=param)
    if price["type"] != "recurring":
        raise invalid("The price specified is set to `type=one_time` but this field only "
                      "accepts prices with `type=recurring`.", param=param)
    if not price["active"]:
        raise invalid("The price specified is inactive. This field only accepts active "
                      "prices.", param=param)
    return price


def interval_of(price: dict[str, Any]) -> tuple[str, int]:
    r = price["recurring"]
    return r["interval"], r["interval_count"]


def new_item(store: Store, sub: dict[str, Any], price: dict[str, Any], quantity: int,
             metadata: dict[str, Any] | None) -> dict[str, Any]:
    si = {
        "id": store.new_id("si"), "object": "subscription_item", "billing_thresholds": None,
        "created": store.now, "discounts": [],
        "metadata": {k: v for k, v in (metadata or {}).items() if v is not None},
        "price": price["id"], "quantity": quantity, "subscription": sub["id"],
        "tax_rates": [],
    }
    return store.add(si)


# --- item plans: what an update does to each item ----------------------------------------------

def build_plans(store: Store, sub: dict[str, Any], entries: list[dict[str, Any]] | None,
                param: str = "items") -> list[dict[str, Any]]:
    """One plan per item after the change: {item, price, quantity, old_price, old_quantity,
    deleted, new, metadata?}. New items get a subscription_item record right away (it joins
    the subscription only when the plan is applied)."""
    plans = [{"item": it["id"], "price": it["price"], "quantity": it["quantity"],
              "old_price": it["price"], "old_quantity": it["quantity"],
              "deleted": False, "new": False} for it in items_of(store, sub)]
    by_id = {pl["item"]: pl for pl in plans}
    for i, e in enumerate(entries or []):
        where = f"{param}[{i}]"
        if e.get("id"):
            pl = by_id.get(e["id"])
            if pl is None:
                raise invalid(f"No such subscription item: '{e['id']}'", param=f"{where}[id]",
                              code="resource_missing")
            if e.get("deleted"):
                pl["deleted"] = True
                continue
            if e.get("price"):
                pl["price"] = recurring_price(store, e["price"], f"{where}[price]")["id"]
            if e.get("quantity") is not None:
                pl["quantity"] = e["quantity"]
            if "metadata" in e:
                pl["metadata"] = e["metadata"]
        else:
            if e.get("deleted"):
                raise invalid("You must pass an id to delete a subscription item.",
                              param=f"{where}[id]")
            price = recurring_price(store, e.get("price"), f"{where}[price]")
            si = new_item(store, sub, price, 1 if e.get("quantity") is None else e["quantity"],
                          e.get("metadata"))
            si["_pending"] = True
            pl = {"item": si["id"], "price": price["id"], "quantity": si["quantity"],
                  "old_price": None, "old_quantity": None, "deleted": False, "new": True}
            plans.append(pl)
            by_id[si["id"]] = pl
    for pl in plans:
        if pl["quantity"] < 0:
            raise invalid("Invalid integer: quantity must be greater than or equal to 0",
                          param=f"{param}[quantity]")
    seen: set[str] = set()
    for pl in plans:
        if pl["deleted"]:
            continue
        if pl["price"] in seen:
            raise invalid("Cannot add multiple subscription items with the same price: "
                          f"{pl['price']}", param=param)
        seen.add(pl["price"])
    if not seen:
        raise invalid("A subscription must have at least one active price. To cancel a "
                      "subscription, please use the cancel API endpoint on /v1/subscriptions.",
                      param=param)
    check_same_terms(store, [store.objects[pl["price"]] for pl in plans if not pl["deleted"]],
                     param)
    return plans


def check_same_terms(store: Store, prices: list[dict[str, Any]], param: str) -> None:
    if len({p["currency"] for p in prices}) > 1:
        raise invalid("Currency and interval fields must match across all plans on this "
                      "subscription. Found mismatch in currency field.", param=param)
    if len({interval_of(p) for p in prices}) > 1:
        raise invalid("Currency and interval fields must match across all plans on this "
                      "subscription. Found mismatch in interval field.", param=param)


def changed(pl: dict[str, Any]) -> bool:
    return pl["deleted"] or pl["new"] or pl["price"] != pl["old_price"] \
        or pl["quantity"] != pl["old_quantity"]


def proration_items(store: Store, sub: dict[str, Any], plans: list[dict[str, Any]], t: int,
                    ) -> list[dict[str, Any]]:
    """Pending invoice items for the unused time of old prices (credits) and the remaining time
    of new prices (debits), prorated to the second from ``t`` to the period end."""
    if sub["billing_mode"]["type"] != "classic" and any(changed(pl) for pl in plans):
        raise invalid(
            "The fake Stripe prorates in the classic billing mode only: create the subscription "
            "with billing_mode[type]=classic (flexible, Stripe's default, credits the amount "
            "previously debited and leaves add_invoice_items pending).", param="billing_mode")
    start, end = sub["_period"]
    out = []
    for pl in plans:
        if not changed(pl):
            continue
        item = store.objects[pl["item"]]
        if pl["old_price"] is not None:
            old = store.objects[pl["old_price"]]
            amount = -prorate(old["unit_amount"] * pl["old_quantity"], start, end, t)
            if amount:
                ii = billing.new_invoice_item(
                    store, customer=sub["customer"], amount=amount, currency=old["currency"],
                    description=f"Unused time on "
                                f"{billing.qty_name(pl['old_quantity'], product_name(store, old))}"
                                f" after {fmt_date(t)}",
                    period=(t, end), price=old, quantity=pl["old_quantity"], proration=True,
                    subscription=sub["id"], subscription_item=item["id"])
                ii["_credited"] = item.get("_billed")
                out.append(ii)
        if not pl["deleted"]:
            new = store.objects[pl["price"]]
            amount = prorate(new["unit_amount"] * pl["quantity"], start, end, t)
            if amount:
                out.append(billing.new_invoice_item(
                    store, customer=sub["customer"], amount=amount, currency=new["currency"],
                    description=f"Remaining time on "
                                f"{billing.qty_name(pl['quantity'], product_name(store, new))}"
                                f" after {fmt_date(t)}",
                    period=(t, end), price=new, quantity=pl["quantity"], proration=True,
                    subscription=sub["id"], subscription_item=item["id"]))
    return out


def apply_plans(store: Store, sub: dict[str, Any], plans: list[dict[str, Any]]) -> None:
    keep = []
    for pl in plans:
        item = store.objects[pl["item"]]
        if pl["deleted"]:
            item["_deleted"] = True
            continue
        item["price"] = pl["price"]
        item["quantity"] = pl["quantity"]
        if "metadata" in pl:
            from .resources.common import set_metadata

            set_metadata(item, {"metadata": pl["metadata"]})
        item.pop("_pending", None)
        keep.append(item["id"])
    sub["_items"] = keep
    first = store.objects[store.objects[keep[0]]["price"]]
    sub["_interval"] = list(interval_of(first))
    sub["currency"] = first["currency"]


def discard_plans(store: Store, plans: list[dict[str, Any]]) -> None:
    for pl in plans:
        if pl["new"]:
            store.objects[pl["item"]]["_deleted"] = True


def start_period(sub: dict[str, Any], anchor: int) -> None:
    interval, count = sub["_interval"]
    sub["billing_cycle_anchor"] = sub["_anchor"] = anchor
    sub["_cycle"] = 0
    sub["_period"] = [anchor, boundary(anchor, interval, count, 1)]


# --- invoices for a subscription ---------------------------------------------------------------

def subscription_invoice(store: Store, sub: dict[str, Any], billing_reason: str, *,
                         period: tuple[int, int] | None = None,
                         full_lines: Sequence[tuple[dict[str, Any], dict[str, Any]]] = (),
                         line_period: tuple[int, int] | None = None, trial: bool = False,
                         emit_created: bool = True) -> dict[str, Any]:
    """A draft invoice: every pending invoice item of the subscription (prorations) and of the
    customer, then full-period lines for ``full_lines`` (item, price)."""
    customer = store.objects[sub["customer"]]
    inv = billing.new_invoice(
        store, customer=customer, billing_reason=billing_reason, currency=sub["currency"],
        subscription=sub, period=period, collection_method=sub["collection_method"],
        days_until_due=sub["days_until_due"], discounts=list(sub["discounts"]))
    sub["latest_invoice"] = inv["id"]
    for ii in billing.pending_items(store, sub["customer"], sub["id"]):
        billing.add_item_line(store, inv, ii)
    for item, price in full_lines:
        billing.add_subscription_line(store, inv, sub=sub, item=item, price=price,
                                      product_name=product_name(store, price),
                                      period=line_period or tuple(sub["_period"]), trial=trial)
    if emit_created:
        emit(store, "invoice.created", inv)
    return inv


def collect(store: Store, sub: dict[str, Any], inv: dict[str, Any], payment_behavior: str,
            *, preview: bool) -> billing.Attempt | None:
    """Finalize and (unless told not to) charge. None: no payment attempted."""
    billing.finalize(store, inv)
    if preview:
        return None
    if inv["status"] == "paid":
        return billing.Attempt(True)
    if sub["collection_method"] == "send_invoice" or payment_behavior == "default_incomplete":
        return None
    return billing.attempt_payment(store, inv)


def full_lines(store: Store, sub: dict[str, Any], plans: list[dict[str, Any]] | None = None,
               ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    if plans is None:
        return [(it, store.objects[it["price"]]) for it in items_of(store, sub)]
    out = []
    for pl in plans:
        if pl["deleted"]:
            continue
        view = {**store.objects[pl["item"]], "price": pl["price"], "quantity": pl["quantity"]}
        out.append((view, store.objects[pl["price"]]))
    return out


# --- create ------------------------------------------------------------------------------------

def billing_mode(param: dict[str, Any] | None) -> dict[str, Any]:
    """A new subscription's billing mode: flexible unless classic is asked for (Stripe's
    default since API version 2025-09-30.clover, Checkout and previews included)."""
    kind = (param or {}).get("type") or "flexible"
    if kind == "classic":
        return {"type": "classic", "flexible": None}
    return {"type": kind, "flexible": {"proration_discounts": "included"}}


def create_subscription(store: Store, p: dict[str, Any], *, preview: bool = False,
                        default_payment_method: str | None = None,
                        discounts: list[str] | None = None) -> dict[str, Any]:
    from .resources.coupons import make_discounts
    from .resources.customers import resolve_pm

    if not p.get("customer"):
        raise missing_param("customer")
    customer = store.get(p["customer"], "customer", param="customer")
    entries = p.get("items") or []
    if not entries:
        raise missing_param("items")
    prices = []
    for i, e in enumerate(entries):
        for bad in ("id", "deleted"):
            if e.get(bad) is not None:
                raise invalid(f"Received unknown parameter: items[{i}][{bad}]",
                              param=f"items[{i}][{bad}]")
        prices.append(recurring_price(store, e.get("price"), f"items[{i}][price]"))
    if len({p_["id"] for p_ in prices}) != len(prices):
        raise invalid("Cannot add multiple subscription items with the same price: "
                      f"{prices[0]['id']}", param="items")
    check_same_terms(store, prices, "items")
    now = store.now
    trial_end = p.get("trial_end")
    if trial_end == "now":
        trial_end = None
    if trial_end is None and p.get("trial_period_days"):
        trial_end = now + p["trial_period_days"] * DAY
    if trial_end is None and p.get("trial_from_plan"):
        days = max((pr["recurring"]["trial_period_days"] or 0) for pr in prices)
        trial_end = now + days * DAY if days else None
    if trial_end is not None and trial_end <= now:
        raise invalid("Invalid timestamp: must be in the future", param="trial_end")
    if trial_end is not None and trial_end > now + 730 * DAY:
        raise invalid("trial_end can be no more than 730 days in the future.",
                      param="trial_end")
    collection = p.get("collection_method") or "charge_automatically"
    if collection == "send_invoice" and p.get("days_until_due") is None:
        raise invalid("Missing required param: days_until_due.", param="days_until_due")
    sid = store.new_id("sub")
    sub: dict[str, Any] = {
        "id": sid, "object": "subscription", "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": now, "billing_cycle_anchor_config": None,
        "billing_mode": billing_mode(p.get("billing_mode")), "billing_schedules": [],
        "billing_thresholds": None, "cancel_at": None, "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": collection, "created": now, "currency": prices[0]["currency"],
        "customer": customer["id"], "customer_account": None,
        "days_until_due": p.get("days_until_due"), "default_payment_method": None,
        "default_source": None, "default_tax_rates": [], "description": p.get("description"),
        "discounts": [], "ended_at": None,
        "invoice_settings": {"account_tax_ids": None, "custom_fields": None,
                             "description": None, "footer": None, "issuer": {"type": "self"}},
        "latest_invoice": None, "livemode": False, "managed_payments": {"enabled": False},
        "metadata": {k: v for k, v in (p.get("metadata") or {}).items() if v is not None},
        "next_pending_invoice_item_invoice": None, "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {"payment_method_options": None, "payment_method_types": None,
                             "save_default_payment_method": "off"},
        "pending_invoice_item_interval": None, "pending_setup_intent": None,
        "pending_update": None, "schedule": None, "start_date": now,
        "status": "trialing" if trial_end else (
            "active" if collection == "send_invoice" else "incomplete"), "test_clock": None,
        "transfer_data": None, "trial_end": trial_end,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": now if trial_end else None,
        "_items": [], "_interval": list(interval_of(prices[0])),
    }
    store.add(sub)
    if trial_end:
        sub["billing_cycle_anchor"] = sub["_anchor"] = trial_end
        sub["_cycle"] = -1
        sub["_period"] = [now, trial_end]
    else:
        start_period(sub, now)
    for e, price in zip(entries, prices, strict=True):
        item = new_item(store, sub, price, 1 if e.get("quantity") is None else e["quantity"],
                        e.get("metadata"))
        sub["_items"].append(item["id"])
    pm = default_payment_method or p.get("default_payment_method")
    if pm:
        sub["default_payment_method"] = resolve_pm(store, customer, pm,
                                                   param="default_payment_method")
    sub["discounts"] = list(discounts or []) + make_discounts(
        store, p.get("discounts"), customer=customer["id"], subscription=sid)
    if p.get("cancel_at_period_end"):
        sub["cancel_at_period_end"] = True
        sub["cancel_at"] = sub["_period"][1]
        sub["canceled_at"] = now
    for i, extra in enumerate(p.get("add_invoice_items") or []):
        price = store.get(extra.get("price"), "price", param=f"add_invoice_items[{i}][price]")
        q = extra.get("quantity") or 1
        billing.new_invoice_item(
            store, customer=customer["id"], amount=price["unit_amount"] * q,
            currency=price["currency"], description=product_name(store, price),
            period=(now, now), price=price, quantity=q, subscription=sid,
            metadata={k: v for k, v in (extra.get("metadata") or {}).items() if v})
    behavior = p.get("payment_behavior") or "allow_incomplete"
    inv = subscription_invoice(store, sub, "subscription_create", trial=bool(trial_end),
                               full_lines=full_lines(store, sub), emit_created=False)
    emit(store, "customer.subscription.created", sub)
    emit(store, "invoice.created", inv)
    attempt = collect(store, sub, inv, behavior, preview=preview)
    if attempt is not None and not attempt.ok and behavior == "error_if_incomplete":
        assert attempt.error is not None
        attempt.error.commit = False
        raise attempt.error
    return sub


# --- update ------------------------------------------------------------------------------------

def update_subscription(store: Store, sub: dict[str, Any], p: dict[str, Any], *,
                        preview: bool = False, param_prefix: str = "",
                        ) -> dict[str, Any] | None:
    """Apply an update. With ``preview=True`` returns the invoice that the update would bill:
    the immediate one (always_invoice, period reset) or else the next renewal invoice."""
    from .resources.common import set_metadata
    from .resources.coupons import make_discounts
    from .resources.customers import resolve_pm

    def name(n: str) -> str:
        return f"{param_prefix}[{n}]" if param_prefix else n

    if sub["status"] in ("canceled", "incomplete_expired") and \
            set(p) - {"metadata", "cancellation_details", "expand"}:
        raise invalid("A canceled subscription can only update its cancellation_details "
                          "and metadata.")
    behavior = p.get("payment_behavior") or "allow_incomplete"
    if behavior == "pending_if_incomplete":
        bad = sorted(set(p) - PENDING_ALLOWED)
        bad += [f"items[{i}][{k}]" for i, e in enumerate(p.get("items") or [])
                for k in e if k not in ("id", "price", "quantity")]
        if bad:
            raise invalid("When `payment_behavior` is `pending_if_incomplete`, you may only "
                          "update these parameters: " + ", ".join(sorted(PENDING_ALLOWED)) +
                          f". Received: {', '.join(bad)}", param=bad[0])
    proration = p.get("proration_behavior") or "create_prorations"
    start, end = sub["_period"]
    t = p.get("proration_date")
    if t is None:
        t = store.now
    elif not start <= t <= end:
        raise invalid("The proration date must be within the current billing period "
                      f"({start} - {end}).", param=name("proration_date"))
    customer = store.objects[sub["customer"]]

    plans = build_plans(store, sub, p.get("items"), name("items"))
    new_interval: list[Any] = list(interval_of(store.objects[
        next(pl["price"] for pl in plans if not pl["deleted"])]))
    trialing = sub["status"] == "trialing"
    end_trial_now = trialing and p.get("trial_end") == "now"
    # a trial kept (trial_end given, in the future) goes on: the new items, interval included,
    # start when it ends, the billing cycle anchored there
    keep_trial = trialing and p.get("trial_end") not in (None, "now")
    reset = not keep_trial and (new_interval != sub["_interval"]
             or (p.get("billing_cycle_anchor") or {}).get("type") == "now" or end_trial_now)
    if p.get("trial_end") not in (None, "now"):
        if not trialing:
            raise StripeError(400, "fakestripe only supports changing trial_end while the "
                                   "subscription is trialing", param="trial_end",
                              code="fakestripe_unsupported_parameter")
        if p["trial_end"] <= store.now:
            raise invalid("Invalid timestamp: must be in the future", param="trial_end")
    items_changed = any(changed(pl) for pl in plans)

    before = render(store, sub)
    n_events = len(store.events)
    if "discounts" in p:  # before invoicing: the update's own invoice carries them (a failed
        # payment with error_if_incomplete rolls the whole request back)
        sub["discounts"] = make_discounts(store, p["discounts"], customer=customer["id"],
                                          subscription=sub["id"]) if p["discounts"] else []
    prorations: list[dict[str, Any]] = []
    if proration != "none" and not trialing and sub["status"] in BILLABLE:
        if reset:
            # a new billing period: credit the unused time of every current item; the new
            # period is billed in full below
            prorations = proration_items(
                store, sub, [{**pl, "deleted": True} for pl in plans if not pl["new"]], t)
        elif items_changed:
            prorations = proration_items(store, sub, plans, t)
    immediate = sub["status"] in BILLABLE and (
        reset or (proration == "always_invoice" and bool(prorations)))

    result_invoice = None
    if immediate:
        if behavior != "pending_if_incomplete":
            apply_plans(store, sub, plans)
            lines_from = None
        else:
            lines_from = plans
        anchor_at = store.now
        if reset and behavior != "pending_if_incomplete":
            if end_trial_now:
                sub["trial_end"] = store.now
                sub["status"] = "active"
            start_period(sub, anchor_at)
        new_period = (anchor_at, boundary(anchor_at, new_interval[0], new_interval[1], 1)) \
            if reset else None
        inv = subscription_invoice(
            store, sub, "subscription_update", period=(store.now, store.now),
            full_lines=full_lines(store, sub, lines_from) if reset else (),
            line_period=new_period)
        result_invoice = inv
        attempt = collect(store, sub, inv, behavior, preview=preview)
        if attempt is not None and not attempt.ok:
            if behavior == "error_if_incomplete":
                assert attempt.error is not None
                attempt.error.commit = False
                raise attempt.error
            if behavior == "pending_if_incomplete":
                sub["_pending"] = {"invoice": inv["id"], "plans": plans,
                                   "reset_at": anchor_at if reset else None,
                                   "interval": new_interval, "end_trial": end_trial_now}
                sub["pending_update"] = {
                    "billing_cycle_anchor": anchor_at if reset else None,
                    "discount": None, "discounts": None,
                    "expires_at": min(store.now + INCOMPLETE_EXPIRY,
                                      sub["trial_end"] if trialing and sub["trial_end"]
                                      else sub["_period"][1]),
                    "metadata": None,
                    "subscription_items": [_item_json(store, sub, view)
                                           for view, _ in full_lines(store, sub, plans)],
                    "trial_end": store.now if end_trial_now else None,
                    "trial_from_plan": None,
                }
            elif sub["status"] == "active":
                sub["status"] = "past_due"
        elif behavior == "pending_if_incomplete" and (attempt is None or attempt.ok) \
                and sub.get("_pending") is None:
            _apply_pending(store, sub, plans, anchor_at if reset else None, new_interval,
                           end_trial_now)
    else:
        apply_plans(store, sub, plans)
        if trialing and p.get("trial_end") not in (None, "now"):
            sub["trial_end"] = sub["billing_cycle_anchor"] = sub["_anchor"] = p["trial_end"]
            sub["_period"][1] = p["trial_end"]

    # plain attribute updates
    set_metadata(sub, p)
    for key in ("description", "days_until_due", "collection_method"):
        if key in p:
            sub[key] = p[key]
    if "default_payment_method" in p:
        sub["default_payment_method"] = resolve_pm(store, customer, p["default_payment_method"],
                                                   param="default_payment_method") \
            if p["default_payment_method"] else None
    if "cancel_at_period_end" in p:
        flag = bool(p["cancel_at_period_end"])
        sub["cancel_at_period_end"] = flag
        sub["cancel_at"] = sub["_period"][1] if flag else None
        sub["canceled_at"] = store.now if flag else None
        if flag:
            sub["cancellation_details"]["reason"] = "cancellation_requested"
        else:
            sub["cancellation_details"]["reason"] = None
    if "cancellation_details" in p:
        for k, v in (p["cancellation_details"] or {}).items():
            sub["cancellation_details"][k] = v

    if preview:
        if result_invoice is not None:
            return result_invoice
        return renewal_preview(store, sub)
    after = render(store, sub)
    from .events import diff

    prev = diff(before, after)
    if prev:
        event = emit(store, "customer.subscription.updated", sub, previous=prev, snapshot=after)
        # the update's own event comes before the invoice events it caused
        store.events.remove(event)
        store.events.insert(n_events, event)
    return None


def _item_json(store: Store, sub: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    from .resources.subscription_items import render_item_json

    return render_item_json(store, sub, item)


def _apply_pending(store: Store, sub: dict[str, Any], plans: list[dict[str, Any]],
                   reset_at: int | None, interval: list[Any], end_trial: bool) -> None:
    apply_plans(store, sub, plans)
    if reset_at is not None:
        sub["_interval"] = interval
        if end_trial:
            sub["trial_end"] = reset_at
            sub["status"] = "active"
        start_period(sub, reset_at)


def on_invoice_paid(store: Store, inv: dict[str, Any]) -> None:
    """A subscription's invoice got paid: apply a pending update, leave incomplete/past_due."""
    if not inv["subscription"]:
        return
    sub = store.objects[inv["subscription"]]
    pending = sub.get("_pending")
    if pending and pending["invoice"] == inv["id"]:
        before = render(store, sub)
        _apply_pending(store, sub, pending["plans"], pending["reset_at"], pending["interval"],
                       pending["end_trial"])
        sub["_pending"] = None
        sub["pending_update"] = None
        after = render(store, sub)
        from .events import diff

        prev = diff(before, after)
        emit(store, "customer.subscription.updated", sub, previous=prev, snapshot=after)
        emit(store, "customer.subscription.pending_update_applied", sub, previous=prev,
             snapshot=after)
    if sub["status"] in ("incomplete", "past_due", "unpaid"):
        still_open = any(o["status"] == "open" and o["attempted"]
                         for o in store.all("invoice") if o["subscription"] == sub["id"])
        if not still_open:
            with Tracker(store, sub, "customer.subscription.updated"):
                trial = sub["trial_end"] is not None and sub["trial_end"] > store.now
                sub["status"] = "trialing" if trial else "active"


# --- time-driven processes ---------------------------------------------------------------------

def renewal_preview(store: Store, sub: dict[str, Any]) -> dict[str, Any]:
    """The next renewal invoice (only meaningful on a snapshot that is thrown away)."""
    if sub["status"] not in BILLABLE:
        raise invalid("No upcoming invoices for this subscription.", code="invoice_upcoming_none")
    store.now = max(store.now, sub["_period"][1])
    inv = renew(store, sub, preview=True)
    if inv is None:
        raise invalid("No upcoming invoices for this subscription: it is set to cancel at the "
                      "end of the period.", code="invoice_upcoming_none")
    return inv


def renew(store: Store, sub: dict[str, Any], *, preview: bool = False
          ) -> dict[str, Any] | None:
    """Period end: cancel if asked to, else start the next period and bill it."""
    if sub["cancel_at"] is not None and sub["cancel_at"] <= sub["_period"][1]:
        if preview:
            return None
        cancel_now(store, sub, reason="cancellation_requested")
        return None
    with Tracker(store, sub, "customer.subscription.updated"):
        previous = tuple(sub["_period"])
        if sub["status"] == "trialing":
            sub["status"] = "active"
            start_period(sub, sub["trial_end"])
        else:
            interval, count = sub["_interval"]
            sub["_cycle"] += 1
            sub["_period"] = [boundary(sub["_anchor"], interval, count, sub["_cycle"]),
                              boundary(sub["_anchor"], interval, count, sub["_cycle"] + 1)]
        inv = subscription_invoice(store, sub, "subscription_cycle", period=previous,
                                   full_lines=full_lines(store, sub))
        attempt = collect(store, sub, inv, "allow_incomplete", preview=preview)
        if attempt is not None and not attempt.ok and sub["status"] == "active":
            sub["status"] = "past_due"
    return inv


def cancel_now(store: Store, sub: dict[str, Any], *, reason: str, prorate_: bool = False,
               invoice_now: bool = False, details: dict[str, Any] | None = None) -> None:
    snapshot_before = render(store, sub)
    if prorate_ and sub["status"] in BILLABLE and sub["status"] != "trialing":
        plans = [{"item": it["id"], "price": it["price"], "quantity": it["quantity"],
                  "old_price": it["price"], "old_quantity": it["quantity"], "deleted": True,
                  "new": False} for it in items_of(store, sub)]
        proration_items(store, sub, plans, store.now)
    if invoice_now and billing.pending_items(store, sub["customer"], sub["id"]):
        inv = subscription_invoice(store, sub, "subscription_update")
        billing.finalize(store, inv)
        if inv["status"] == "open" and sub["collection_method"] == "charge_automatically":
            billing.attempt_payment(store, inv)
    if sub.get("_pending"):
        discard_plans(store, sub["_pending"]["plans"])
        sub["_pending"] = None
        sub["pending_update"] = None
    sub["status"] = "canceled"
    sub["canceled_at"] = sub["canceled_at"] or store.now
    sub["ended_at"] = store.now
    sub["cancellation_details"]["reason"] = reason
    for k, v in (details or {}).items():
        sub["cancellation_details"][k] = v
    from .events import diff

    after = render(store, sub)
    emit(store, "customer.subscription.deleted", sub, previous=diff(snapshot_before, after),
         snapshot=after)


def expire_pending_update(store: Store, sub: dict[str, Any]) -> None:
    pending = sub["_pending"]
    with Tracker(store, sub, "customer.subscription.updated"):
        inv = store.objects[pending["invoice"]]
        if inv["status"] == "open":
            billing.void(store, inv)
        discard_plans(store, pending["plans"])
        sub["_pending"] = None
        sub["pending_update"] = None
    emit(store, "customer.subscription.pending_update_expired", sub)


def expire_incomplete(store: Store, sub: dict[str, Any]) -> None:
    with Tracker(store, sub, "customer.subscription.updated"):
        inv = store.objects.get(sub["latest_invoice"] or "")
        if inv and inv["status"] == "open":
            billing.void(store, inv)
        sub["status"] = "incomplete_expired"
        sub["ended_at"] = store.now
