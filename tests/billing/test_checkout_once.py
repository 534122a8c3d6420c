"""One payment page at a time for a first subscription: a checkout submitted twice (two tabs,
Back from Stripe's page and Subscribe again), another plan chosen, or an offer accepted while a
Checkout page is still open can never start two subscriptions."""

from __future__ import annotations

from typing import Any

import pytest

from billing import service
from billing.models import ChangeStatus
from billing.provider import StartRequest
from tests.billing.conftest import add_account
from tests.billing.stripe_fixtures import fake_stripe
from tests.billing.test_pages import SELF, path, post_form
from tests.billing.test_stripe_pages import (
    URLS,
    Shop,
    account_path,
    changes,
    has_subscription,
    hosted_page,
    shop,
    subscription,
)
from tiergate.clock import FixedClock
from tiergate.db import get_db

__all__ = ["fake_stripe", "shop"]  # fixtures used here


def _checkout_page(shop: Shop, client: Any, tier: str) -> str:
    link = account_path(shop.app, "newco").replace(
        "/billing?", f"/billing/checkout?tier={tier}&interval=month&"
    )
    return client.get(link).get_data(as_text=True)


@pytest.fixture
def newco(shop: Shop, clock: FixedClock) -> None:
    with get_db(shop.app).session() as s:
        add_account(s, "newco", clock)


def _session_of(response: Any) -> str:
    assert response.status_code == 302, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert "/c/pay/cs_" in location
    return str(location.rsplit("/", 1)[1])


def test_the_same_checkout_submitted_twice_returns_the_same_stripe_page(
    shop: Shop, client: Any, newco: None
) -> None:
    page = _checkout_page(shop, client, "business")
    first = _session_of(post_form(client, page, SELF, url="/billing/checkout"))
    second = _session_of(post_form(client, page, SELF, url="/billing/checkout"))
    assert first == second
    assert [c.status for c in changes(shop.app, "newco")] == [ChangeStatus.PENDING]


def test_choosing_another_plan_closes_the_first_page_so_only_one_can_be_paid(
    shop: Shop, client: Any, newco: None
) -> None:
    business = _session_of(
        post_form(client, _checkout_page(shop, client, "business"), SELF, url="/billing/checkout")
    )
    pro = _session_of(
        post_form(client, _checkout_page(shop, client, "pro"), SELF, url="/billing/checkout")
    )
    assert business != pro
    assert shop.fake.get(business)["status"] == "expired"
    by_tier = {c.request["tier"]: c.status for c in changes(shop.app, "newco")}
    assert by_tier == {"business": ChangeStatus.FAILED, "pro": ChangeStatus.PENDING}
    # The expired page cannot be paid; the open one can, and it is the plan the customer chose.
    status, _, _ = hosted_page(
        f"{shop.fake.api_base}/c/pay/{business}", {"payment_method": "pm_card_visa"}
    )
    assert status != 303
    shop.fake.complete_checkout(pro)
    shop.deliver()
    assert subscription(shop.app, "newco").tier_id == "pro"
    live = [
        s
        for s in shop.fake.client().v1.subscriptions.list({"limit": 10}).data
        if s.status in ("active", "trialing")
    ]
    assert len(live) == 1


def test_a_page_paid_meanwhile_is_settled_and_the_second_checkout_not_started(
    shop: Shop, client: Any, newco: None
) -> None:
    business = _session_of(
        post_form(client, _checkout_page(shop, client, "business"), SELF, url="/billing/checkout")
    )
    page = _checkout_page(shop, client, "pro")  # opened in another tab before paying
    shop.fake.complete_checkout(business)  # paid; its webhooks have not arrived yet
    response = post_form(client, page, SELF, url="/billing/checkout")
    assert response.status_code in (200, 302, 303)
    done = response.get_data(as_text=True)
    if response.status_code != 200:
        done = client.get(path(response.headers["Location"])).get_data(as_text=True)
    assert "Business" in done and "$79.00" in done  # the page of the change that was paid
    assert subscription(shop.app, "newco").tier_id == "business"
    assert [c.status for c in changes(shop.app, "newco")] == [ChangeStatus.APPLIED]
    shop.deliver()
    assert subscription(shop.app, "newco").tier_id == "business"
    assert len(shop.fake.client().v1.subscriptions.list({"limit": 10}).data) == 1
    assert has_subscription(shop.app, "newco")


def test_accepting_an_offer_closes_a_checkout_page_left_open(
    shop: Shop, client: Any, newco: None, clock: FixedClock
) -> None:
    from billing import portal
    from tests.billing.conftest import gate_offer, set_gauge

    business = _session_of(
        post_form(client, _checkout_page(shop, client, "business"), SELF, url="/billing/checkout")
    )
    with get_db(shop.app).session() as s:
        set_gauge(s, "newco", "projects", 3, clock)
        offer_id = gate_offer(s, clock, "newco", "projects", used=3, requested=1).id
    page = client.get(path(portal.offer_link(shop.app.config, "newco", offer_id))).get_data(
        as_text=True
    )
    upgrade = _session_of(post_form(client, page, f"/offers/{offer_id}/accept"))
    assert upgrade != business
    assert shop.fake.get(business)["status"] == "expired"
    assert shop.fake.get(upgrade)["status"] == "open"


def test_a_second_checkout_while_the_first_page_is_being_opened_waits(shop: Shop) -> None:
    """Two tabs start a first subscription at the same moment: the second is told a payment
    page is being opened in the other tab (the account's lock serializes them), so only one
    page exists and only one subscription can be paid."""
    with get_db(shop.app).session() as s:
        add_account(s, "newco", shop.clock)
    billing = shop.billing
    original = billing.start_subscription
    sessions: list[str] = []

    def second_tab() -> None:
        with get_db(shop.app).session() as s:
            plan, quote, _ = service.checkout_quote(s, shop.clock, "newco", "pro", "month", "usd")
            result = service.checkout(
                s,
                shop.clock,
                billing,
                "newco",
                "pro",
                "month",
                "usd",
                expected_amount_due=quote.amount_due,
                urls=URLS,
            )
            assert result.status is service.FlowStatus.PENDING, result.message
            assert "being opened in another tab" in result.message

    calls = {"n": 0}

    def racing_start(request: StartRequest) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            second_tab()  # the other tab's request runs while Stripe answers this one
        return original(request)

    billing.start_subscription = racing_start  # type: ignore[method-assign]
    with get_db(shop.app).session() as s:
        plan, quote, _ = service.checkout_quote(s, shop.clock, "newco", "business", "month", "usd")
        first = service.checkout(
            s,
            shop.clock,
            billing,
            "newco",
            "business",
            "month",
            "usd",
            expected_amount_due=quote.amount_due,
            urls=URLS,
        )
        assert first.status is service.FlowStatus.REDIRECT
        sessions.insert(0, str(first.change.result["external_id"]))
    billing.start_subscription = original  # type: ignore[method-assign]
    open_pages = [sid for sid in sessions if shop.fake.get(sid)["status"] == "open"]
    for sid in open_pages:  # the customer pays each page left open (two tabs)
        shop.fake.complete_checkout(sid)
    shop.deliver()
    live = [
        sub
        for sub in shop.fake.client().v1.subscriptions.list({"limit": 100}).data
        if sub.status in ("active", "trialing")
    ]
    assert len(live) == 1, f"{len(live)} live Stripe subscriptions for one account"
