"""What a customer's page says when Stripe cannot be used: a message for the customer, never
the operator's diagnostics (configuration names, API key fragments, Stripe object ids)."""

# ruff: noqa: F811

from __future__ import annotations

import re
from typing import Any

from tests.billing.stripe_fixtures import fake_stripe  # noqa: F401
from tests.billing.test_pages import post_form
from tests.billing.test_stripe_pages import STARTER, Shop, shop, token

__all__ = ["fake_stripe", "shop"]  # fixtures used here

OPERATOR_WORDS = re.compile(r"TIERGATE_|sk_test_|sub_[A-Za-z0-9]|API key|idempotency")


def _message(page: str) -> str:
    match = re.search(r"<p[^>]*>(.*?)</p>", page, re.S)
    return match.group(1).strip() if match else page[:600]


def test_cancelling_while_stripe_refuses_the_key_shows_the_customer_no_operator_details(
    shop: Shop, client: Any
) -> None:
    """A customer cancels on the billing page while Stripe refuses tiergate's API key: the
    page says the payment processor could not be reached, never the operator's diagnostics
    (the key, the setting's name, Stripe's object ids), which stay on the change."""
    shop.subscribed(STARTER)
    page = client.get(f"/billing/cancel?t={token(shop.app)}").get_data(as_text=True)
    shop.fake.required_api_key = "sk_test_the_new_key_tiergate_does_not_have"
    try:
        response = post_form(client, page, '<form method="post">', url="/billing/cancel")
    finally:
        shop.fake.required_api_key = None
    text = response.get_data(as_text=True)
    shown = text[text.find("<main") :]
    found = OPERATOR_WORDS.findall(shown)
    assert not found, (found, _message(shown))
    assert "We could not reach the payment processor" in shown


def test_cancelling_while_stripe_is_down_shows_the_customer_no_operator_details(
    shop: Shop, client: Any
) -> None:
    """The same with Stripe answering 500 (an outage)."""
    shop.subscribed(STARTER)
    page = client.get(f"/billing/cancel?t={token(shop.app)}").get_data(as_text=True)
    shop.fake.fail_next(20, 500)
    response = post_form(client, page, '<form method="post">', url="/billing/cancel")
    text = response.get_data(as_text=True)
    shown = text[text.find("<main") :]
    found = OPERATOR_WORDS.findall(shown)
    assert not found, (found, _message(shown))
    assert "We could not reach the payment processor" in shown
