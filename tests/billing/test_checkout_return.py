"""Coming back from Stripe Checkout: the success URL Stripe redirects the paying customer to
carries a signed link, which still opens when the customer gets there hours later (Stripe keeps
an unpaid page payable for a day), but only with the session id of one of the account's
checkouts."""

# ruff: noqa: F811

from __future__ import annotations

import time
from typing import Any

import pytest
from itsdangerous import TimestampSigner

from tests.billing.conftest import add_account
from tests.billing.stripe_fixtures import fake_stripe  # noqa: F401
from tests.billing.test_pages import SELF, path, post_form
from tests.billing.test_stripe_pages import Shop, account_path, hosted_page, shop
from tiergate.clock import FixedClock
from tiergate.db import get_db

__all__ = ["fake_stripe", "shop"]  # fixtures used here


def _checkout_page(shop: Shop, client: Any) -> str:
    link = account_path(shop.app, "newco").replace(
        "/billing?", "/billing/checkout?tier=business&interval=month&"
    )
    return client.get(link).get_data(as_text=True)


def test_a_checkout_page_reopened_hours_later_returns_the_payer_to_a_page_that_opens(
    shop: Shop, client: Any, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A customer chooses Business at 10:00 and leaves Stripe's page unpaid. Two hours later
    they open Billing again from the app, choose Business again, and are sent to the Checkout
    page already open (its links signed at 10:00, older than TIERGATE_BILLING_LINK_MAX_AGE).
    They pay, and Stripe's return to tiergate opens and says the payment was received; the
    same old link without that session id (or with another) is refused."""
    with get_db(shop.app).session() as s:
        add_account(s, "newco", clock)
    first = post_form(client, _checkout_page(shop, client), SELF, url="/billing/checkout")
    assert first.status_code == 302, first.get_data(as_text=True)[:300]
    pay_url = first.headers["Location"]

    # Two hours later (wall clock, which signs the links; the app's clock and Stripe's too).
    later = time.time() + 2 * 3600
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(later))
    clock.advance(hours=2)
    shop.fake.advance(2 * 3600)
    again = post_form(client, _checkout_page(shop, client), SELF, url="/billing/checkout")
    assert again.status_code == 302, again.get_data(as_text=True)[:300]
    assert again.headers["Location"] == pay_url  # the page already open, as documented

    status, _, back = hosted_page(pay_url, {"payment_method": "pm_card_visa"})
    assert status == 303 and back
    returned = client.get(path(back))
    text = returned.get_data(as_text=True)
    assert returned.status_code == 200, (returned.status_code, text[text.find("<h1") :][:300])
    assert "Payment received" in text
    base = path(back).split("session_id=")[0]
    for bogus in ("", "session_id=cs_test_not_ours"):
        assert client.get(base + bogus).status_code == 403
