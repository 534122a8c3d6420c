"""PostgreSQL + the fake Stripe: the customer comes back from Checkout (GET /billing with
?session_id=) at the moment Stripe delivers checkout.session.completed, as happens after every
payment. Both take the account's lock before the change's (service.confirm_checkout locked the
change first while the webhook locked the account first: PostgreSQL found a deadlock)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from billing.stripe_provider import StripeBilling
from tests.billing.conftest import add_account
from tests.billing.stripe_fixtures import WEBHOOK_SECRET, fake_stripe
from tests.billing.test_pages import path, post_form
from tests.billing.test_stripe_pages import (
    SELF,
    Shop,
    account_path,
    changes,
    hosted_page,
    shop,
    subscription,
)
from tiergate.db import get_db

__all__ = ["fake_stripe", "shop"]


class WebhookMeanwhile(StripeBilling):
    """The customer's confirm_checkout asks Stripe (a few hundred ms); the webhook arrives then."""

    def __init__(self, base: StripeBilling, webhook: Any) -> None:
        super().__init__(base.client, webhook_secret=WEBHOOK_SECRET, base_url="http://localhost")
        self.webhook = webhook
        self.thread: threading.Thread | None = None
        self.answers: list[Any] = []

    def find_change(self, idempotency_key: str) -> Any:
        if self.thread is None:  # the customer's request, first
            self.thread = threading.Thread(target=lambda: self.answers.append(self.webhook()))
            self.thread.start()
            time.sleep(0.5)  # Stripe's answer takes a moment; the webhook locks the account
        return super().find_change(idempotency_key)


@pytest.mark.parametrize("known_customer", [False, True])
def test_returning_from_checkout_while_its_webhook_arrives_does_not_deadlock(
    shop: Shop, client: Any, postgres_url: str, known_customer: bool
) -> None:
    with get_db(shop.app).session() as s:
        account = add_account(s, "newco", shop.clock)
        if known_customer:  # a customer who had a subscription before (and its customer)
            customer = shop.fake.client().v1.customers.create(
                {
                    "email": "newco@example.com",
                    "metadata": {"tiergate": "1", "tiergate_account": "newco"},
                }
            )
            account.stripe_customer_id = customer.id
    page = client.get(
        "/billing/checkout?"
        + account_path(shop.app, "newco").split("?", 1)[1]
        + "&tier=business&interval=month"
    ).get_data(as_text=True)
    response = post_form(client, page, SELF, url="/billing/checkout")
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    pay_url = response.headers["Location"]
    status, _, back = hosted_page(pay_url, {"payment_method": "pm_card_visa"})
    assert status == 303
    [completed] = [e for e in shop.fake.events if e["type"] == "checkout.session.completed"]
    hook_client = shop.app.test_client()

    def webhook() -> Any:
        done = shop.fake.deliver(
            completed,
            lambda body, headers: hook_client.post("/webhooks/stripe", data=body, headers=headers),
            WEBHOOK_SECRET,
        )
        return done.status, done.body

    provider = WebhookMeanwhile(shop.billing, webhook)
    shop.app.extensions["tiergate.billing"] = provider
    returned = client.get(path(back))
    assert provider.thread is not None
    provider.thread.join(20)
    body = returned.get_data(as_text=True)
    [(hook_status, hook_body)] = provider.answers
    state = [(c.kind, c.status.value) for c in changes(shop.app, "newco")]
    assert returned.status_code == 200 and "Payment received" in body, (
        f"the return page answered {returned.status_code}: {body[:600]}; webhook {hook_status} "
        f"{hook_body!r}; changes {state}"
    )
    assert hook_status == 200, f"webhook answered {hook_status}: {hook_body!r}; changes {state}"
    assert subscription(shop.app, "newco").tier_id == "business"
