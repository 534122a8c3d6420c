"""What a customer reads when Stripe declines the card: the reason in plain words and what to do
next, by Stripe's decline code; only that the card was declined when the bank gives no reason or
suspects fraud (Stripe advises never to tell the customer that); never Stripe's codes.

The table is checked on its own, then through the real SDK against the fake Stripe API (both of
Stripe's error shapes), then on the offer page end to end."""

# ruff: noqa: F811 - the pytest fixtures imported here are parameters
from __future__ import annotations

import html
import re
from typing import Any

import pytest

from billing.models import ChangeStatus
from billing.provider import ItemKind, OneTimeRequest, PaymentDeclined, Price
from billing.stripe_errors import DECLINED, decline_message
from billing.stripe_provider import StripeBilling
from tests.billing.stripe_fixtures import (
    fake_stripe,  # noqa: F401 - a fixture
    stripe_billing,  # noqa: F401 - a fixture
    stripe_customer,
)
from tests.billing.test_pages import event_types, post_form
from tests.billing.test_stripe_pages import (
    STARTER,
    Shop,
    changes,
    customer_id,
    db,  # noqa: F401 - a fixture
    gate_offer_link,
    local_invoices,
    price_ids,
    shop,  # noqa: F401 - a fixture
    subscription,
)
from tests.billing.test_stripe_provider import invoices_of, subscribe, upgrade
from tests.fakestripe import FakeStripe

ONBOARDING = Price(ItemKind.ADDON, "onboarding", "Onboarding package", None, "usd", 29900)
UNCHANGED = "Nothing was charged and your plan is unchanged."
# Anything of Stripe's own on a customer's page: a code (snake_case), an object id, a key.
STRIPE_WORDS = re.compile(r"\b[a-z]+_[a-z_]+\b|\b(?:sub|in|ch|pi|cus|req)_[A-Za-z0-9]+|sk_test_")

# (error code, decline code) as Stripe sends them -> the start of what the customer reads.
TOLD = [
    ("card_declined", "insufficient_funds", "Your card has insufficient funds: use another card"),
    ("card_declined", "card_velocity_exceeded", "Your card has reached its spending limit"),
    ("expired_card", None, "Your card has expired: use a card that is still valid."),
    ("expired_card", "expired_card", "Your card has expired: use a card that is still valid."),
    ("incorrect_cvc", None, "Your card's security code (CVC) was not accepted"),
    ("invalid_cvc", None, "Your card's security code (CVC) was not accepted"),
    ("incorrect_number", None, "Your card number was not accepted"),
    ("processing_error", None, "Your card could not be processed just now: please try again"),
    ("card_declined", "authentication_required", "Your bank asks you to confirm this payment"),
    ("authentication_required", None, "Your bank asks you to confirm this payment"),
    ("card_declined", "currency_not_supported", "Your card cannot pay in this currency"),
    ("card_declined", "card_not_supported", "Your card does not support this kind of purchase"),
]
# Declines told only as a declined card: no reason given, or the bank suspects fraud.
GENERIC = [
    "generic_decline",
    "do_not_honor",
    "fraudulent",
    "stolen_card",
    "lost_card",
    "pickup_card",
    "restricted_card",
    "security_violation",
    "merchant_blacklist",
]


@pytest.mark.parametrize(("code", "decline_code", "start"), TOLD)
def test_each_decline_reason_is_told_in_plain_words_with_the_next_step(
    code: str, decline_code: str | None, start: str
) -> None:
    """Each decline reason Stripe gives becomes its own message: what happened, what to do
    next, and that nothing was charged; no code of Stripe's is in it."""
    message = decline_message(code, decline_code)
    assert message.startswith(start), message
    assert message.endswith(UNCHANGED)
    assert not STRIPE_WORDS.findall(message), message
    assert code not in message and (decline_code is None or decline_code not in message)


@pytest.mark.parametrize("decline_code", GENERIC)
def test_a_decline_for_suspected_fraud_or_without_a_reason_says_only_that_the_card_was_declined(
    decline_code: str,
) -> None:
    """A lost, stolen or fraud-flagged card, or a bank that gives no reason: the customer is
    told that the card was declined, as for any other decline, and nothing more."""
    assert decline_message("card_declined", decline_code) == DECLINED
    # a more telling error code next to it does not reveal it either
    assert decline_message("expired_card", decline_code) == DECLINED


@pytest.mark.parametrize(
    ("code", "decline_code"),
    [
        ("card_declined", None),
        ("card_declined", "a_reason_stripe_adds_later"),
        ("a_code_stripe_adds_later", None),
        (None, None),
    ],
)
def test_a_decline_reason_not_known_says_that_the_card_was_declined(
    code: str | None, decline_code: str | None
) -> None:
    assert decline_message(code, decline_code) == DECLINED


@pytest.mark.parametrize(
    ("decline_code", "code", "start"),
    [
        ("insufficient_funds", "card_declined", "Your card has insufficient funds"),
        ("expired_card", "expired_card", "Your card has expired"),
        ("incorrect_cvc", "incorrect_cvc", "Your card's security code (CVC) was not accepted"),
        ("processing_error", "processing_error", "Your card could not be processed just now"),
        ("authentication_required", "card_declined", "Your bank asks you to confirm"),
        ("stolen_card", "card_declined", DECLINED),
    ],
)
def test_a_declined_charge_through_stripe_tells_the_customer_why_and_keeps_the_codes_aside(
    fake_stripe: FakeStripe,
    stripe_billing: StripeBilling,
    decline_code: str,
    code: str,
    start: str,
) -> None:
    """A one-time charge that Stripe declines (as card_declined with a decline code, or under
    an error code of its own, like an expired card): the customer's message says why; the
    codes stay with the error's details, for the operator."""
    customer = stripe_customer(fake_stripe, "acme")
    fake_stripe.decline_next_payment(customer.external_id or "", decline_code=decline_code)
    with pytest.raises(PaymentDeclined) as declined:
        stripe_billing.charge_one_time(OneTimeRequest("chg_1x", customer, ONBOARDING, 29900))
    assert declined.value.message.startswith(start), declined.value.message
    assert not STRIPE_WORDS.findall(declined.value.message)
    shown = None if decline_code == code else decline_code
    assert declined.value.details == {"code": code, "decline_code": shown}


def test_an_upgrade_declined_for_insufficient_funds_says_so_and_keeps_the_account_on_its_tier(
    shop: Shop, client: Any, db: Any
) -> None:
    """On the offer page, the yearly upgrade (with its promotion) is declined for insufficient
    funds: the page says so and what to do, the account stays on Starter, nothing is charged,
    and the offer's change is recorded as failed."""
    sub_id = shop.subscribed(STARTER)
    offer_id, link = gate_offer_link(shop)
    page = client.get(link).get_data(as_text=True)
    shop.fake.decline_next_payment(customer_id(shop.app), decline_code="insufficient_funds")

    response = post_form(client, page, f"/offers/{offer_id}/accept", {"interval": "year"})
    assert response.status_code == 402
    body = html.unescape(response.get_data(as_text=True))
    assert "Your card has insufficient funds: use another card or contact your bank." in body
    assert "Nothing was charged or changed: you are still on Starter." in body
    assert body.count("Nothing was charged") == 1  # said once
    shown = body[body.find("<main") :]
    assert not re.findall(r"insufficient_funds|card_declined|decline_code", shown)

    stripe_sub = shop.stripe_subscription(sub_id)
    assert price_ids(stripe_sub) == [STARTER.lookup_key]
    assert not stripe_sub.discounts
    assert [i.amount_paid for i in shop.stripe_invoices() if i.status == "paid"] == [900]
    assert subscription(shop.app).tier_id == "starter"
    assert [i.amount_paid for i in local_invoices(shop.app)] == [900]
    assert event_types(db, offer_id)[-1] == "failed"
    [change] = [c for c in changes(shop.app) if c.offer_id == offer_id]
    assert change.status is ChangeStatus.FAILED


def test_a_monthly_upgrade_declined_for_insufficient_funds_says_so_and_keeps_the_tier(
    shop: Shop, client: Any, db: Any
) -> None:
    """On the offer page, the monthly upgrade (an update Stripe holds as pending until it is
    paid) is declined for insufficient funds: Stripe answers the update itself, and the reason
    is read from the failed payment; the page says so and what to do, the account stays on
    Starter, nothing is charged, and the change is recorded as failed."""
    sub_id = shop.subscribed(STARTER)
    offer_id, link = gate_offer_link(shop)
    page = client.get(link).get_data(as_text=True)
    shop.fake.decline_next_payment(customer_id(shop.app), decline_code="insufficient_funds")
    asked = len(shop.fake.requests)

    response = post_form(client, page, f"/offers/{offer_id}/accept")
    assert response.status_code == 402
    body = html.unescape(response.get_data(as_text=True))
    assert "Your card has insufficient funds: use another card or contact your bank." in body
    assert "Nothing was charged or changed: you are still on Starter." in body
    assert body.count("Nothing was charged") == 1
    shown = body[body.find("<main") :]
    assert not re.findall(r"insufficient_funds|card_declined|decline_code", shown)
    assert not re.findall(r"\b(?:pi|in|inpay)_[A-Za-z0-9]+", shown)  # nor Stripe's ids

    stripe_sub = shop.stripe_subscription(sub_id)
    assert price_ids(stripe_sub) == [STARTER.lookup_key] and stripe_sub.status == "active"
    invoices = shop.stripe_invoices()
    assert [(i.status, i.amount_paid) for i in invoices] == [("paid", 900), ("void", 0)]
    assert subscription(shop.app).tier_id == "starter"
    assert [i.amount_paid for i in local_invoices(shop.app)] == [900]
    assert event_types(db, offer_id)[-1] == "failed"
    [change] = [c for c in changes(shop.app) if c.offer_id == offer_id]
    assert change.status is ChangeStatus.FAILED
    # The reason came with the update's answer (its invoice's payments expanded) and one read
    # of the payment's PaymentIntent.
    sent = shop.fake.requests[asked:]
    [modify] = [r for r in sent if r.idempotency_key and r.idempotency_key.endswith(":modify")]
    assert modify.params["payment_behavior"] == "pending_if_incomplete"
    assert "latest_invoice.payments" in str(modify.params["expand"])
    assert [r.method for r in sent if r.path.startswith("/v1/payment_intents/")] == ["GET"]


@pytest.mark.parametrize("decline_code", ["fraudulent", "stolen_card", "generic_decline"])
def test_a_monthly_upgrade_declined_for_suspected_fraud_says_only_that_the_card_was_declined(
    shop: Shop, client: Any, decline_code: str
) -> None:
    """The same monthly upgrade, declined as fraud, for a stolen card, or with no reason: the
    page says only that the card was declined; the account stays on Starter."""
    shop.subscribed(STARTER)
    offer_id, link = gate_offer_link(shop)
    page = client.get(link).get_data(as_text=True)
    shop.fake.decline_next_payment(customer_id(shop.app), decline_code=decline_code)

    response = post_form(client, page, f"/offers/{offer_id}/accept")
    assert response.status_code == 402
    body = html.unescape(response.get_data(as_text=True))
    said = DECLINED.removesuffix(UNCHANGED).strip()
    assert f"{said} Nothing was charged or changed: you are still on Starter." in body
    for hidden in ("fraud", "stolen", "insufficient", "expired", decline_code):
        assert hidden not in body[body.find("<main") :].lower()
    assert subscription(shop.app).tier_id == "starter"
    assert [i.status for i in shop.stripe_invoices()] == ["paid", "void"]


def test_a_change_retried_after_its_decline_gives_the_same_reason(
    fake_stripe: FakeStripe, stripe_billing: StripeBilling
) -> None:
    """A change sent again with its key after the decline (its answer lost): Stripe's voided
    invoice still says why the payment failed, and the customer reads the same reason."""
    customer, current = subscribe(fake_stripe, stripe_billing)
    fake_stripe.decline_next_payment(customer.external_id or "", decline_code="expired_card")
    with pytest.raises(PaymentDeclined) as first:
        stripe_billing.change_subscription(upgrade(customer, current))
    with pytest.raises(PaymentDeclined) as again:
        stripe_billing.change_subscription(upgrade(customer, current))
    for declined in (first, again):
        assert declined.value.message.startswith("Your card has expired: use a card that")
        assert declined.value.details == {
            "subscription": current.external_id,
            "code": "expired_card",
            "decline_code": None,
        }
    assert [i.status for i in invoices_of(fake_stripe, customer)] == ["void", "paid"]
