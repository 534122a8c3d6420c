"""The fields of a Stripe event's object that tiergate's handlers read, and their types.

A signed delivery whose object has one of these fields with the wrong type (a text amount, a
list where Stripe sends an object, a timestamp past the year 9999) is not an event Stripe sends:
it is refused with 400 naming the field, before anything is stored, instead of failing inside a
handler. Fields not listed here are not read, so they are not checked; every listed field may be
missing or null, as Stripe leaves optional fields, except the object's `id`.
"""

from __future__ import annotations

from typing import Any

TEXT = "text"  # a string
TIME = "time"  # unix seconds between 1970 and the year 9999
AMOUNT = "amount"  # integer minor units (a credit line is negative)
COUNT = "count"  # a small non-negative integer
FLAG = "flag"  # true or false
TAGS = "tags"  # metadata: an object of strings

Shape = dict[str, Any]  # field name -> a kind above, a nested Shape, or [Shape] for a list

_LAST_SECOND = 253_402_300_799  # 9999-12-31T23:59:59Z
_MAX_AMOUNT = 10**15

# where the handlers look for tiergate's tags, on every object (an invoice carries its
# subscription's under `parent`)
_TAGGED: Shape = {
    "metadata": TAGS,
    "parent": {"subscription_details": {"subscription": TEXT, "metadata": TAGS}},
    "subscription_details": {"metadata": TAGS},
}

SUBSCRIPTION: Shape = {**_TAGGED, "id": TEXT, "customer": TEXT, "trial_end": TIME}

CHECKOUT_SESSION: Shape = {
    **_TAGGED,
    "id": TEXT,
    "customer": TEXT,
    "client_reference_id": TEXT,
    "subscription": TEXT,
}

_PRORATION: Shape = {"proration": FLAG}
INVOICE: Shape = {
    **_TAGGED,
    "id": TEXT,
    "customer": TEXT,
    "status": TEXT,
    "currency": TEXT,
    "amount_due": AMOUNT,
    "amount_paid": AMOUNT,
    "created": TIME,
    "attempt_count": COUNT,
    "billing_reason": TEXT,
    "subscription": TEXT,
    "status_transitions": {"paid_at": TIME},
    "lines": {
        "data": [
            {
                "description": TEXT,
                "amount": AMOUNT,
                "metadata": TAGS,
                "proration": FLAG,
                "parent": {
                    "subscription_item_details": _PRORATION,
                    "invoice_item_details": _PRORATION,
                },
            }
        ]
    },
}

CUSTOMER: Shape = {"id": TEXT, "metadata": TAGS}

# The event types billing/webhooks.py dispatches; any other type is acknowledged unread, so
# its object is not checked (an `invoice.upcoming` preview, for one, has no id).
SHAPES: dict[str, Shape] = {
    "checkout.session.completed": CHECKOUT_SESSION,
    "customer.updated": CUSTOMER,
    **{
        f"customer.subscription.{change}": SUBSCRIPTION
        for change in (
            "created",
            "updated",
            "deleted",
            "pending_update_applied",
            "pending_update_expired",
            "trial_will_end",
        )
    },
    **{f"invoice.{change}": INVOICE for change in ("paid", "payment_failed", "voided")},
}


def problem(event_type: str, obj: dict[str, Any]) -> str | None:
    """What is wrong with the object of an event of this type, naming the field; None: fine."""
    shape = SHAPES.get(event_type)
    if shape is None:
        return None  # a type tiergate does not handle reads nothing from its object
    if not isinstance(obj.get("id"), str) or not obj["id"]:
        return "'data.object.id' must be a non-empty string"
    return _object_problem(obj, shape, "data.object")


def _object_problem(obj: dict[str, Any], shape: Shape, path: str) -> str | None:
    for name, kind in shape.items():
        value = obj.get(name)
        if value is None:
            continue
        where = f"{path}.{name}"
        if isinstance(kind, dict):
            found = (
                _object_problem(value, kind, where)
                if isinstance(value, dict)
                else f"'{where}' must be an object"
            )
        elif isinstance(kind, list):
            found = _list_problem(value, kind[0], where)
        else:
            found = _value_problem(value, kind, where)
        if found:
            return found
    return None


def _list_problem(value: Any, shape: Shape, where: str) -> str | None:
    if not isinstance(value, list):
        return f"'{where}' must be a list"
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            return f"'{where}[{index}]' must be an object"
        found = _object_problem(item, shape, f"{where}[{index}]")
        if found:
            return found
    return None


def _value_problem(value: Any, kind: str, where: str) -> str | None:
    if kind == TEXT:
        return None if isinstance(value, str) else f"'{where}' must be a string"
    if kind == FLAG:
        return None if isinstance(value, bool) else f"'{where}' must be true or false"
    if kind == TAGS:
        if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
            return None
        return f"'{where}' must be an object of strings (Stripe metadata)"
    low, high, what = {
        TIME: (0, _LAST_SECOND, "a unix timestamp"),
        AMOUNT: (-_MAX_AMOUNT, _MAX_AMOUNT, "an integer amount in minor units"),
        COUNT: (0, 1_000_000, "a small non-negative integer"),
    }[kind]
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return None
    return f"'{where}' must be {what}"


def timestamp_problem(value: Any, where: str) -> str | None:
    """The envelope's `created` checked as a TIME field."""
    return _value_problem(value, TIME, where)
