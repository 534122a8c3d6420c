"""Contract: the fake's objects have the fields of Stripe's own published fixtures.

For each object type the fake produces, one object is created through the real SDK and compared
with the fixture of the same type in Stripe's ``fixtures3.json`` (read from
``../shared/stripe/fixtures3.json`` relative to the project root; not copied into the project):
every top-level key of the fixture must be present, except the few in OMITTED below, and keys
present in both must have the same JSON type (null is compatible with anything; integers and
floats are both "number").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from billing import event_shapes
from tests.fakestripe import FakeStripe

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = PROJECT_ROOT.parent / "shared" / "stripe" / "fixtures3.json"

# Keys of Stripe's fixtures that the fake deliberately does not return (keep this short).
# Currently empty: every top-level key of the compared fixtures is returned (often as null
# where the fake has no such feature, e.g. tax, shipping, Connect).
OMITTED: dict[str, set[str]] = {
    # "invoice": {"shipping_cost"},  # example of an entry
}

TYPES = ["customer", "product", "price", "subscription", "subscription_item", "invoice",
         "invoiceitem", "checkout.session", "coupon", "promotion_code", "event",
         "invoice_payment", "payment_intent"]


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise TypeError(type(value))


@pytest.fixture(scope="module")
def fixtures() -> dict[str, Any]:
    if not FIXTURES.is_file():
        pytest.skip(f"Stripe fixtures not found at {FIXTURES} (shared/stripe/fixtures3.json "
                    "sits beside the checkout in CI)")
    return json.loads(FIXTURES.read_text())["resources"]


@pytest.fixture(scope="module")
def produced() -> dict[str, dict[str, Any]]:
    """One object of each type, created through the real SDK, as the raw JSON it received."""
    with FakeStripe() as fake:
        c = fake.client()
        out: dict[str, dict[str, Any]] = {}

        def keep(obj: Any) -> Any:
            data = obj.last_response.data
            out.setdefault(data["object"], data)
            return obj

        product = keep(c.v1.products.create({"name": "Pro", "description": "Pro plan"}))
        price = keep(c.v1.prices.create({"product": product.id, "currency": "usd",
                                         "unit_amount": 2000, "lookup_key": "pro",
                                         "recurring": {"interval": "month"}}))
        coupon = keep(c.v1.coupons.create({"percent_off": 25.5, "duration": "repeating",
                                           "duration_in_months": 3}))
        keep(c.v1.promotion_codes.create({"promotion": {"type": "coupon", "coupon": coupon.id},
                                          "code": "FALL20"}))
        customer = keep(c.v1.customers.create({"email": "a@example.com",
                                               "payment_method": "pm_card_visa"}))
        c.v1.customers.update(customer.id, {
            "invoice_settings": {"default_payment_method": "pm_card_visa"}})
        sub = keep(c.v1.subscriptions.create({"customer": customer.id,
                                              "items": [{"price": price.id}],
                                              "discounts": [{"coupon": coupon.id}]}))
        keep(c.v1.subscription_items.retrieve(sub["items"].data[0].id))
        keep(c.v1.invoices.retrieve(sub.latest_invoice))
        invoice = c.v1.invoices.retrieve(sub.latest_invoice, {"expand": ["payments"]})
        payment = keep(c.v1.invoice_payments.retrieve(invoice.payments.data[0].id))
        keep(c.v1.payment_intents.retrieve(payment.payment.payment_intent))
        keep(c.v1.invoice_items.create({"customer": customer.id, "amount": 1000,
                                        "currency": "usd", "description": "Setup"}))
        keep(c.v1.checkout.sessions.create({
            "mode": "subscription", "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": "https://example.com/success",
            "cancel_url": "https://example.com/cancel"}))
        event = c.v1.events.list({"limit": 1}).data[0]
        keep(c.v1.events.retrieve(event.id))
        assert fake.internal_errors == []
        return out


@pytest.mark.parametrize("kind", TYPES)
def test_object_matches_stripe_fixture(kind: str, fixtures: dict[str, Any],
                                       produced: dict[str, dict[str, Any]]) -> None:
    fixture = fixtures[kind]
    ours = produced[kind]
    assert ours["object"] == fixture["object"]
    missing = sorted(set(fixture) - set(ours) - OMITTED.get(kind, set()))
    assert missing == [], f"{kind}: fields of Stripe's fixture missing from the fake: {missing}"
    mismatched = {
        key: (json_type(fixture[key]), json_type(ours[key]))
        for key in set(fixture) & set(ours)
        if "null" not in (json_type(fixture[key]), json_type(ours[key]))
        and json_type(fixture[key]) != json_type(ours[key])}
    assert mismatched == {}, f"{kind}: (fixture type, fake type) differ: {mismatched}"


# Embedded list elements compared the same way: (type, path to the list).
NESTED = [("subscription", ("items", "data")), ("invoice", ("lines", "data"))]


@pytest.mark.parametrize(("kind", "path"), NESTED)
def test_embedded_objects_match_too(kind: str, path: tuple[str, ...], fixtures: dict[str, Any],
                                    produced: dict[str, dict[str, Any]]) -> None:
    fixture, ours = fixtures[kind], produced[kind]
    for key in path:
        fixture, ours = fixture[key], ours[key]
    fixture, ours = fixture[0], ours[0]
    assert sorted(set(fixture) - set(ours)) == []
    assert {k for k in set(fixture) & set(ours)
            if "null" not in (json_type(fixture[k]), json_type(ours[k]))
            and json_type(fixture[k]) != json_type(ours[k])} == set()


def test_omitted_keys_are_really_in_the_fixtures(fixtures: dict[str, Any]) -> None:
    for kind, keys in OMITTED.items():
        assert keys <= set(fixtures[kind]), f"stale allowlist entry for {kind}"


def test_fixture_file_is_not_copied_into_the_project() -> None:
    copies = [p for p in PROJECT_ROOT.rglob("fixtures3*.json") if ".git" not in p.parts]
    assert copies == []


@pytest.mark.parametrize(
    ("event_type", "kind"),
    [
        ("invoice.paid", "invoice"),
        ("customer.subscription.updated", "subscription"),
        ("checkout.session.completed", "checkout.session"),
    ],
)
def test_stripes_published_objects_pass_the_webhook_shape_check(
    event_type: str, kind: str, fixtures: dict[str, Any], produced: dict[str, dict[str, Any]]
) -> None:
    """The types tiergate's webhook requires (billing/event_shapes.py) are Stripe's own: its
    published objects, and the fake's, are never refused as malformed."""
    assert event_shapes.problem(event_type, fixtures[kind]) is None
    if kind in produced:
        assert event_shapes.problem(event_type, produced[kind]) is None
