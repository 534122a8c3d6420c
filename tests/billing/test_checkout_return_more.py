"""The Checkout return link that opens for 25 hours: after the webhook settled the checkout,
on a reload, and never for an abandoned checkout days later."""

# ruff: noqa: F811

from __future__ import annotations

import re
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

__all__ = ["fake_stripe", "shop"]


def _checkout_page(shop: Shop, client: Any) -> str:
    link = account_path(shop.app, "newco").replace(
        "/billing?", "/billing/checkout?tier=business&interval=month&"
    )
    return client.get(link).get_data(as_text=True)


class _Time:
    """The wall clock that signs links, the app's clock and Stripe's, moved together."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, clock: FixedClock, shop: Shop) -> None:
        self.now = time.time()
        self.monkeypatch, self.clock, self.shop = monkeypatch, clock, shop

    def advance(self, hours: float) -> None:
        self.now += hours * 3600
        now = int(self.now)
        self.monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: now)
        self.clock.advance(hours=hours)
        self.shop.fake.advance(int(hours * 3600))


def _pay_two_hours_later(shop: Shop, client: Any, clock: FixedClock, t: _Time) -> str:
    """Open Checkout for Business, come back two hours later and pay: the return URL."""
    with get_db(shop.app).session() as s:
        add_account(s, "newco", clock)
    first = post_form(client, _checkout_page(shop, client), SELF, url="/billing/checkout")
    assert first.status_code == 302, first.get_data(as_text=True)[:300]
    t.advance(2)
    status, _, back = hosted_page(first.headers["Location"], {"payment_method": "pm_card_visa"})
    assert status == 303 and back
    return path(back)


def test_the_return_link_is_refused_when_stripes_webhook_came_first(
    shop: Shop, client: Any, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A customer opens Checkout, pays two hours later, and Stripe's checkout.session.completed
    webhook reaches tiergate before the customer's browser does (the usual order): the return
    page says "Payment received"."""
    t = _Time(monkeypatch, clock, shop)
    back = _pay_two_hours_later(shop, client, clock, t)
    shop.deliver()  # Stripe's webhook, first
    returned = client.get(back)
    text = returned.get_data(as_text=True)
    assert returned.status_code == 200, (returned.status_code, text[text.find("<h1") :][:200])
    assert "Payment received" in text or "Business" in text


def test_reloading_the_return_page_after_it_said_payment_received_is_refused(
    shop: Shop, client: Any, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same customer (paid two hours after opening Checkout, no webhook yet) sees
    "Payment received", then reloads the page a minute later: the same page again."""
    t = _Time(monkeypatch, clock, shop)
    back = _pay_two_hours_later(shop, client, clock, t)
    first = client.get(back)
    assert first.status_code == 200 and "Payment received" in first.get_data(as_text=True)
    t.advance(1 / 60)
    again = client.get(back)
    assert again.status_code == 200, again.get_data(as_text=True)[-600:]


def test_an_abandoned_checkouts_session_id_keeps_reviving_expired_links_for_days(
    shop: Shop, client: Any, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback is for the way back from a Checkout page Stripe keeps payable for 24
    hours: a week after a Checkout page was abandoned, no expired billing link opens whatever
    `session_id` is appended."""
    t = _Time(monkeypatch, clock, shop)
    with get_db(shop.app).session() as s:
        add_account(s, "newco", clock)
    first = post_form(client, _checkout_page(shop, client), SELF, url="/billing/checkout")
    assert first.status_code == 302
    session_id = re.search(r"(cs_[A-Za-z0-9_]+)", first.headers["Location"])
    assert session_id is not None, first.headers["Location"]
    page = client.get(account_path(shop.app, "newco")).get_data(as_text=True)
    for _day in range(7):
        fresh = re.search(r'name="t" value="([^"]+)"|[?&]t=([^&"]+)', page)
        assert fresh is not None, page[:600]
        t.advance(20)
        shop.deliver()  # whatever Stripe says meanwhile (the session expiring)
        again = client.get(
            f"/billing?t={fresh.group(1) or fresh.group(2)}&session_id={session_id.group(1)}"
        )
        page = again.get_data(as_text=True)
        if again.status_code != 200:
            break
    assert again.status_code == 403, "a week after an abandoned checkout, its id still opens links"
