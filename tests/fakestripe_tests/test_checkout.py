"""Checkout Sessions and the completion helper."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest
import stripe

from tests.fakestripe import FakeStripe, StripeError


def new_session(client: Any, catalog: Any, **extra: Any) -> Any:
    return client.v1.checkout.sessions.create({
        "mode": "subscription", "client_reference_id": "acct_42",
        "line_items": [{"price": catalog.pro.id, "quantity": 1}],
        "success_url": "https://app.example/billing/done?session={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://app.example/billing", "metadata": {"account": "acct_42"},
        **extra})


def test_subscription_checkout_with_trial(client: Any, fake: FakeStripe, catalog: Any) -> None:
    cs = new_session(client, catalog, customer_email="new@example.com",
                     subscription_data={"trial_period_days": 7,
                                        "metadata": {"account": "acct_42"}})
    assert cs.id.startswith("cs_test_") and cs.status == "open" and cs.mode == "subscription"
    assert cs.url and cs.payment_status == "unpaid" and cs.client_reference_id == "acct_42"
    n = len(fake.events)  # the catalog's product/price events
    assert fake.event_types()[n - 1] == "price.created"  # nothing until the customer pays
    done = fake.complete_checkout(cs.id)
    assert done["status"] == "complete" and done["payment_status"] == "no_payment_required"
    session = client.v1.checkout.sessions.retrieve(cs.id, {"expand": ["subscription"]})
    sub = session.subscription
    assert sub.status == "trialing" and sub.metadata["account"] == "acct_42"
    assert sub.customer == session.customer
    assert client.v1.customers.retrieve(session.customer).email == "new@example.com"
    types = fake.event_types()[n:]
    assert types[0] == "customer.created" and types[-1] == "checkout.session.completed"
    assert "customer.subscription.created" in types and "invoice.paid" in types
    completed = fake.events[-1]["data"]["object"]
    assert completed["client_reference_id"] == "acct_42"
    assert completed["metadata"] == {"account": "acct_42"}


def test_subscription_checkout_charges_and_applies_promotion_code(
        client: Any, fake: FakeStripe, catalog: Any) -> None:
    coupon = client.v1.coupons.create({"percent_off": 50, "duration": "once"})
    client.v1.promotion_codes.create({"promotion": {"type": "coupon", "coupon": coupon.id},
                                      "code": "HALF"})
    cs = new_session(client, catalog, allow_promotion_codes=True)
    fake.complete_checkout(cs.id, email="payer@example.com", promotion_code="HALF")
    session = client.v1.checkout.sessions.retrieve(cs.id, {"expand": ["invoice"]})
    assert session.payment_status == "paid"
    assert session.amount_subtotal == 2000 and session.amount_total == 1000
    assert session.invoice.amount_paid == 1000
    sub = client.v1.subscriptions.retrieve(session.subscription)
    # Checkout saves the card on the subscription, not as the customer's default
    assert sub.default_payment_method.startswith("pm_")
    assert sub.status == "active"


def test_declined_checkout_keeps_session_open(client: Any, fake: FakeStripe,
                                              catalog: Any) -> None:
    cs = new_session(client, catalog)
    n = len(fake.events)
    with pytest.raises(StripeError) as exc:
        fake.complete_checkout(cs.id, payment_method="pm_card_chargeCustomerFail")
    assert exc.value.code == "card_declined"
    assert client.v1.checkout.sessions.retrieve(cs.id).status == "open"
    assert client.v1.customers.list().data == [] and len(fake.events) == n


def test_payment_mode_checkout(client: Any, fake: FakeStripe, catalog: Any,
                               customer: Any) -> None:
    cs = client.v1.checkout.sessions.create({
        "mode": "payment", "customer": customer.id,
        "line_items": [{"price": catalog.setup_fee.id, "quantity": 2}],
        "success_url": "https://app.example/ok"})
    assert cs.amount_total == 10000
    fake.complete_checkout(cs.id)
    done = client.v1.checkout.sessions.retrieve(cs.id)
    assert done.payment_status == "paid" and done.payment_intent.startswith("pi_")
    items = client.v1.checkout.sessions.line_items.list(cs.id)
    assert [(i.price.id, i.quantity, i.amount_total) for i in items.data] == [
        (catalog.setup_fee.id, 2, 10000)]


def test_a_declined_payment_mode_checkout_carries_the_decline_code_asked_for(
        client: Any, fake: FakeStripe, catalog: Any, customer: Any) -> None:
    fake.decline_next_payment(customer.id, decline_code="card_velocity_exceeded")
    cs = client.v1.checkout.sessions.create({
        "mode": "payment", "customer": customer.id,
        "line_items": [{"price": catalog.setup_fee.id, "quantity": 1}],
        "success_url": "https://app.example/ok"})
    with pytest.raises(StripeError) as exc:
        fake.complete_checkout(cs.id)
    body = exc.value.body()["error"]
    assert (body["type"], body["code"], body["decline_code"]) == (
        "card_error", "card_declined", "card_velocity_exceeded")
    fake.complete_checkout(cs.id)  # used up: the next try is paid
    assert client.v1.checkout.sessions.retrieve(cs.id).payment_status == "paid"


def test_checkout_validation(client: Any, catalog: Any) -> None:
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.checkout.sessions.create({
            "mode": "payment", "line_items": [{"price": catalog.pro.id, "quantity": 1}],
            "success_url": "https://x"})
    assert "recurring price" in exc.value.user_message
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.checkout.sessions.create({
            "mode": "subscription", "line_items": [{"price": catalog.pro.id}],
            "success_url": "https://x"})
    assert exc.value.param == "line_items[0][quantity]"


def test_expire_and_automatic_expiry(client: Any, fake: FakeStripe, catalog: Any) -> None:
    cs = new_session(client, catalog)
    assert client.v1.checkout.sessions.expire(cs.id).status == "expired"
    other = new_session(client, catalog)
    fake.advance(24 * 3600)
    assert client.v1.checkout.sessions.retrieve(other.id).status == "expired"
    assert fake.event_types()[-2:] == ["checkout.session.expired", "checkout.session.expired"]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def test_hosted_checkout_page_completes_and_redirects(client: Any, fake: FakeStripe,
                                                      catalog: Any) -> None:
    cs = new_session(client, catalog)
    assert cs.url.startswith(fake.api_base)
    with urllib.request.urlopen(cs.url, timeout=5) as page:
        assert b'id="pay"' in page.read()
    opener = urllib.request.build_opener(_NoRedirect)
    data = urllib.parse.urlencode({"email": "web@example.com",
                                   "payment_method": "pm_card_visa"}).encode()
    with pytest.raises(urllib.error.HTTPError) as exc:
        opener.open(urllib.request.Request(cs.url, data=data, method="POST"), timeout=5)
    assert exc.value.code == 303
    assert exc.value.headers["Location"] == \
        f"https://app.example/billing/done?session={cs.id}"
    assert client.v1.checkout.sessions.retrieve(cs.id).status == "complete"
