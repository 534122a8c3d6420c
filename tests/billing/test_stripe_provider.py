"""StripeBilling against the fake Stripe API: the real SDK makes real HTTP requests.

The contract every provider keeps runs in test_provider_contract.py; these are Stripe's own
rules: Checkout, metadata tags, idempotency keys, declines, outages, reconcile, schedules.
"""

# ruff: noqa: F811 - the pytest fixtures imported from stripe_fixtures are parameters here
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import stripe

from billing.provider import (
    ChangeRequest,
    Customer,
    Discount,
    ItemKind,
    OneTimeRequest,
    Outcome,
    PaymentDeclined,
    Price,
    QuoteMismatch,
    RenewRequest,
    Result,
    ScheduleRequest,
    StartRequest,
    SubscriptionState,
)
from billing.stripe_errors import DECLINED
from billing.stripe_provider import API_VERSION, StripeBilling
from tests.billing.conftest import PERIOD_END, PERIOD_START
from tests.billing.stripe_fixtures import (
    HALFWAY,
    fake_stripe,  # noqa: F401 - a fixture
    make_billing,
    stripe_billing,  # noqa: F401 - a fixture
    stripe_customer,
)
from tests.fakestripe import FakeStripe
from tiergate.exceptions import Conflict, PaymentFailed, ProviderUnavailable
from tiergate.extensions import make_billing as make_billing_from_config

STARTER = Price(ItemKind.TIER, "starter", "Starter", "month", "usd", 900)
PRO = Price(ItemKind.TIER, "pro", "Pro", "month", "usd", 2900)
STARTER_YEAR = Price(ItemKind.TIER, "starter", "Starter", "year", "usd", 9000)
SEATS = Price(ItemKind.ADDON, "seat_pack", "Seat pack", "month", "usd", 2500)
ONBOARDING = Price(ItemKind.ADDON, "onboarding", "Onboarding package", None, "usd", 29900)
URL = "http://localhost/billing/done"


def subscribe(
    fake: FakeStripe,
    billing: StripeBilling,
    plan: Price = STARTER,
    *,
    declining: bool = False,
    account: str = "acme",
    discount: Discount | None = None,
) -> tuple[Customer, SubscriptionState]:
    """An account that paid `plan` (with `discount`) at Checkout at the period start; the
    clock now halfway."""
    fake.reset(now=PERIOD_START)
    customer = stripe_customer(fake, account)
    due = plan.amount - (discount.off(plan.amount) if discount is not None else 0)
    request = StartRequest(
        "chg_start", customer, plan, (), (), PERIOD_START, 0, discount, due, URL, URL
    )
    started = billing.start_subscription(request)
    assert started.external_id is not None
    fake.complete_checkout(started.external_id)
    result = billing.checkout_result(started.external_id)
    assert result.subscription is not None and result.subscription.external_id is not None
    if declining:  # the first payment went through; the card now declines every charge
        card = fake.attach_card(customer.external_id or "", declining=True)
        fake.client().v1.subscriptions.update(
            result.subscription.external_id, {"default_payment_method": card}
        )
    fake.set_time(HALFWAY)
    assert result.subscription is not None
    return customer, result.subscription


def upgrade(
    customer: Customer, current: SubscriptionState, expected: int = 1000, key: str = "chg_up"
) -> ChangeRequest:
    return ChangeRequest(key, customer, current, PRO, (), (), HALFWAY, None, expected, URL)


def invoices_of(fake: FakeStripe, customer: Customer) -> list[dict]:
    return [
        o
        for o in fake.client().v1.invoices.list({"customer": customer.external_id}).data
        if o.status != "draft"
    ]


def item_prices(fake: FakeStripe, sub_id: str) -> list[int]:
    sub = fake.get(sub_id)
    return [item["price"]["unit_amount"] for item in sub["items"]["data"]]


# ---- first subscription: Checkout -------------------------------------------------------------


def test_a_first_subscription_redirects_to_checkout_and_upgrades_only_once_paid(
    fake_stripe: FakeStripe, stripe_billing: StripeBilling
) -> None:
    customer = Customer("acme", "acme@example.com", "Acme")
    request = StartRequest("chg_1", customer, PRO, (), (), HALFWAY, 14, None, 0, URL, URL)
    result = stripe_billing.start_subscription(request)
    assert result.outcome is Outcome.REDIRECT and result.external_id is not None
    assert result.redirect_url == fake_stripe.get(result.external_id)["url"]
    session = fake_stripe.get(result.external_id)
    assert session["client_reference_id"] == "acme"
    assert session["customer"] == result.customer_external_id
    assert session["allow_promotion_codes"] is True
    assert session["success_url"] == URL + "?session_id={CHECKOUT_SESSION_ID}"
    assert session["metadata"] == {
        "tiergate": "1",
        "tiergate_account": "acme",
        "tiergate_change": "chg_1",
        "tiergate_tier": "pro",
        "tiergate_interval": "month",
        "tiergate_catalog_version": "1",
    }
    customer_json = fake_stripe.get(result.customer_external_id or "")
    assert customer_json["metadata"] == {"tiergate": "1", "tiergate_account": "acme"}

    waiting = stripe_billing.checkout_result(result.external_id)
    assert waiting.outcome is Outcome.REDIRECT and waiting.subscription is None

    fake_stripe.complete_checkout(result.external_id)
    paid = stripe_billing.checkout_result(result.external_id)
    assert paid.outcome is Outcome.DONE and paid.subscription is not None
    assert paid.subscription.plan == PRO and paid.subscription.status == "trialing"
    assert paid.subscription.trial_end == datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    sub = fake_stripe.get(paid.subscription.external_id or "")
    assert sub["metadata"]["tiergate_change"] == "chg_1"
    assert sub["metadata"]["tiergate_account"] == "acme"


def test_an_expired_checkout_is_a_failed_payment_that_charged_nothing(
    fake_stripe: FakeStripe, stripe_billing: StripeBilling
) -> None:
    customer = Customer("acme", "acme@example.com", "Acme")
    request = StartRequest("chg_1", customer, PRO, (), (), HALFWAY, 0, None, 2900, URL, URL)
    result = stripe_billing.start_subscription(request)
    fake_stripe.expire_checkout(result.external_id or "")
    with pytest.raises(PaymentFailed, match="expired before it was paid"):
        stripe_billing.checkout_result(result.external_id or "")


def test_a_promotion_becomes_one_coupon_made_once_and_applied_at_checkout(
    fake_stripe: FakeStripe, stripe_billing: StripeBilling
) -> None:
    discount = Discount("launch", percent_off=20)
    results = []
    for n, account in enumerate(("acme", "globex")):
        customer = Customer(account, f"{account}@example.com", account)
        request = StartRequest(
            f"chg_{n}", customer, PRO, (), (), HALFWAY, 0, discount, 2320, URL, URL
        )
        results.append(stripe_billing.start_subscription(request))
    coupons = fake_stripe.client().v1.coupons.list().data
    assert len(coupons) == 1 and coupons[0].percent_off == 20
    assert coupons[0].id.startswith("tg_launch_usd_pro_")
    fake_stripe.complete_checkout(results[0].external_id or "")
    paid = stripe_billing.checkout_result(results[0].external_id or "")
    assert paid.charge is not None and paid.charge.amount_paid == 2320


def test_a_start_with_a_wrong_quote_creates_nothing_in_stripe(
    fake_stripe: FakeStripe, stripe_billing: StripeBilling
) -> None:
    customer = Customer("acme", "acme@example.com", "Acme")
    request = StartRequest("chg_1", customer, PRO, (), (), HALFWAY, 0, None, 2800, URL, URL)
    with pytest.raises(QuoteMismatch, match=r"not the \$28\.00 you were shown"):
        stripe_billing.start_subscription(request)
    assert [r for r in fake_stripe.requests if r.method == "POST"] == []


# ---- upgrades in place ----------------------------------------------------------------------


def test_an_upgrade_charges_the_previewed_proration_with_keys_and_tags_on_every_write(
    fake_stripe: FakeStripe, stripe_billing: StripeBilling
) -> None:
    customer, current = subscribe(fake_stripe, stripe_billing)
    before = len(fake_stripe.requests)
    result = stripe_billing.change_subscription(upgrade(customer, current))
    assert result.outcome is Outcome.DONE
    assert result.charge is not None and result.charge.amount_paid == 1000
    assert sorted(line.amount for line in result.charge.lines) == [-450, 1450]
    assert all(
        line.proration and line.item_id in ("starter", "pro") for line in result.charge.lines
    )
    assert result.subscription is not None and result.subscription.plan == PRO
    assert item_prices(fake_stripe, current.external_id or "") == [2900]
    writes = [r for r in fake_stripe.requests[before:] if r.method == "POST"]
    preview = [r for r in writes if r.path == "/v1/invoices/create_preview"]
    assert preview and preview[0].params["subscription_details"]["proration_date"] == str(
        int(HALFWAY.timestamp())
    )
    assert all(r.idempotency_key for r in writes if r not in preview)
    changes = [r for r in writes if r.path.startswith("/v1/subscriptions")]
    assert [r.idempotency_key for r in changes] == ["chg_up:tag", "chg_up:modify", "chg_up:meta"]
    modify = next(r for r in writes if r.idempotency_key == "chg_up:modify")
    assert modify.params["payment_behavior"] == "pending_if_incomplete"
    assert modify.params["proration_behavior"] == "always_invoice"
    invoice = fake_stripe.get(result.charge.external_id or "")
    assert invoice["parent"]["subscription_details"]["metadata"]["tiergate_change"] == "chg_up"
    sub = fake_stripe.get(current.external_id or "")
    assert sub["metadata"]["tiergate_tier"] == "pro"


def test_an_upgrade_with_a_stale_quote_changes_nothing_in_stripe(
    fake_stripe: FakeStripe, stripe_billing: StripeBilling
) -> None:
    customer, current = subscribe(fake_stripe, stripe_billing)
    before = len(fake_stripe.requests)
    with pytest.raises(QuoteMismatch, match=r"amount due is now \$10\.00"):
        stripe_billing.change_subscription(upgrade(customer, current, expected=900))
    changes = [r for r in fake_stripe.requests[before:] if r.path.startswith("/v1/subscriptions/")]
    assert all(r.method == "GET" for r in changes)
    assert item_prices(fake_stripe, current.external_id or "") == [900]


def test_an_upgrade_with_a_declined_card_keeps_the_old_items_and_charges_nothing(
    fake_stripe: FakeStripe, stripe_billing: StripeBilling
) -> None:
    customer, current = subscribe(fake_stripe, stripe_billing, declining=True)
    with pytest.raises(PaymentDeclined) as declined:
        stripe_billing.change_subscription(upgrade(customer, current))
    assert declined.value.message == DECLINED
    assert item_prices(fake_stripe, current.external_id or "") == [900]
    assert [i.amount_paid for i in invoices_of(fake_stripe, customer) if i.status == "paid"] == [
        900
    ]
    assert [i.status for i in invoices_of(fake_stripe, customer) if i.amount_paid == 0] == ["void"]
    assert stripe_billing.find_change("chg_up") is None
    with pytest.raises(Conflict, match="declined and Stripe holds that change until"):
        stripe_billing.change_subscription(upgrade(customer, current, key="chg_again"))
    fake_stripe.advance(24 * 3600)  # the pending update expires: still nothing applied
    assert item_prices(fake_stripe, current.external_id or "") == [900]


def test_retrying_a_change_with_its_key_charges_once_and_returns_the_first_result(
    fake_stripe: FakeStripe, stripe_billing: StripeBilling
) -> None:
    customer, current = subscribe(fake_stripe, stripe_billing)
    first = stripe_billing.change_subscription(upgrade(customer, current))
    again = stripe_billing.change_subscription(upgrade(customer, current))
    assert again.charge == first.charge and again.subscription == first.subscription
    updates = [
        i for i in invoices_of(fake_stripe, customer) if i.billing_reason != "subscription_create"
    ]
    assert len(updates) == 1


def test_switching_to_yearly_resets_the_cycle_and_credits_the_unused_month(
    fake_stripe: FakeStripe, stripe_billing: StripeBilling
) -> None:
    customer, current = subscribe(fake_stripe, stripe_billing)
    request = ChangeRequest(
        "chg_y", customer, current, STARTER_YEAR, (), (), HALFWAY, None, 8550, URL
    )
    result = stripe_billing.change_subscription(request)
    assert result.charge is not None and result.charge.amount_paid == 8550
    assert result.subscription is not None
    assert result.subscription.period_start == HALFWAY
    assert result.subscription.period_end == datetime(2027, 11, 15, 12, 0, tzinfo=UTC)


def test_a_one_time_addon_with_an_upgrade_is_on_the_same_invoice(
    fake_stripe: FakeStripe, stripe_billing: StripeBilling
) -> None:
    customer, current = subscribe(fake_stripe, stripe_billing)
    request = ChangeRequest(
        "chg_o", customer, current, PRO, (), (ONBOARDING,), HALFWAY, None, 1000 + 29900, URL
    )
    result = stripe_billing.change_subscription(request)
    assert result.charge is not None and result.charge.amount_paid == 30900
    assert "onboarding" in {line.item_id for line in result.charge.lines}


def test_a_change_whose_proration_rounds_to_nothing_charges_nothing_now(
    fake_stripe: FakeStripe, stripe_billing: StripeBilling
) -> None:
    cent = Price(ItemKind.TIER, "mini", "Mini", "month", "usd", 1)
    cent_plus = Price(ItemKind.TIER, "mini_plus", "Mini+", "month", "usd", 1)
    customer, current = subscribe(fake_stripe, stripe_billing, cent)
    late = PERIOD_END - timedelta(days=1)  # 1/30 of a cent left: both lines round to 0
    fake_stripe.set_time(late)
    request = ChangeRequest("chg_0", customer, current, cent_plus, (), (), late, None, 0, URL)
    for _ in range(2):  # the retry finds the change applied
        result = stripe_billing.change_subscription(request)
        assert result.charge is None
        assert result.subscription is not None and result.subscription.plan == cent_plus
    assert len(invoices_of(fake_stripe, customer)) == 1


# ---- outages --------------------------------------------------------------------------------


def test_stripe_down_is_provider_unavailable_and_a_retry_later_charges_once(
    fake_stripe: FakeStripe, stripe_billing: StripeBilling
) -> None:
    customer, current = subscribe(fake_stripe, stripe_billing)
    before = len(fake_stripe.requests)
    fake_stripe.fail_next(3, status=503)  # the first try and both SDK retries
    with pytest.raises(ProviderUnavailable, match="could not be reached"):
        stripe_billing.change_subscription(upgrade(customer, current))
    tries = fake_stripe.requests[before:]
    assert [(r.path, r.status) for r in tries] == [(tries[0].path, 503)] * 3
    assert item_prices(fake_stripe, current.external_id or "") == [900]
    result = stripe_billing.change_subscription(upgrade(customer, current))
    assert result.charge is not None and result.charge.amount_paid == 1000


def test_a_5xx_answer_is_retried_by_the_sdk_with_the_same_key(
    fake_stripe: FakeStripe, stripe_billing: StripeBilling
) -> None:
    customer, current = subscribe(fake_stripe, stripe_billing)
    fake_stripe.fail_next(1, status=500)  # the first request (reading the subscription)
    result = stripe_billing.change_subscription(upgrade(customer, current))
    assert result.charge is not None and result.charge.amount_paid == 1000


def test_a_timed_out_change_is_found_by_reconcile_and_a_retry_does_not_charge_twice(
    fake_stripe: FakeStripe,
) -> None:
    billing = make_billing(fake_stripe, retries=0, timeout=0.5)
    customer, current = subscribe(fake_stripe, billing)
    billing._price_id(PRO)  # warm the price cache, so the change makes a known list of requests
    # requests: read the subscription, preview, tag, modify <- this one answers too late
    fake_stripe.delay_next(0, n=3)
    fake_stripe.delay_next(1.5, n=1)
    with pytest.raises(ProviderUnavailable, match="timeout"):
        billing.change_subscription(upgrade(customer, current))
    time.sleep(1.5)  # Stripe finished the change although we stopped waiting
    found = billing.find_change("chg_up")
    assert found is not None and found.charge is not None and found.charge.amount_paid == 1000
    again = billing.change_subscription(upgrade(customer, current))
    assert again.charge == found.charge
    updates = [
        i for i in invoices_of(fake_stripe, customer) if i.billing_reason != "subscription_create"
    ]
    assert len(updates) == 1


# ---- schedules and renewals -----------------------------------------------------------------


def test_a_downgrade_swaps_the_items_for_the_renewal_without_charging_now(
    fake_stripe: FakeStripe, stripe_billing: StripeBilling
) -> None:
    customer, current = subscribe(fake_stripe, stripe_billing, PRO)
    scheduled = stripe_billing.schedule(
        ScheduleRequest("chg_down", customer, current, STARTER, None, False)
    )
    assert scheduled.plan == PRO and scheduled.next_plan == STARTER
    assert item_prices(fake_stripe, current.external_id or "") == [900]
    assert len(invoices_of(fake_stripe, customer)) == 1
    assert stripe_billing.fetch_subscription(current.external_id or "") == scheduled
    found = stripe_billing.find_change("chg_down")
    assert found is not None and found.subscription == scheduled


def test_an_upgrade_while_a_downgrade_is_scheduled_prorates_from_the_paid_plan(
    fake_stripe: FakeStripe, stripe_billing: StripeBilling
) -> None:
    customer, current = subscribe(fake_stripe, stripe_billing)
    scheduled = stripe_billing.schedule(
        ScheduleRequest("chg_s", customer, current, None, None, True)
    )
    seats = ChangeRequest(
        "chg_a", customer, scheduled, STARTER, (SEATS,), (), HALFWAY, None, 1250, URL
    )
    added = stripe_billing.change_subscription(seats)
    assert added.subscription is not None and not added.subscription.cancel_at_period_end
    removal = stripe_billing.schedule(
        ScheduleRequest("chg_r", customer, added.subscription, None, (), False)
    )
    assert removal.addons == (SEATS,) and removal.next_addons == ()
    result = stripe_billing.change_subscription(
        ChangeRequest("chg_p", customer, removal, PRO, (SEATS,), (), HALFWAY, None, 1000, URL)
    )
    assert result.charge is not None and result.charge.amount_paid == 1000
    assert result.subscription is not None
    assert result.subscription.addons == (SEATS,) and result.subscription.next_addons is None


def _pro_with_a_downgrade(
    fake: FakeStripe, billing: StripeBilling, **kw: bool
) -> tuple[Customer, SubscriptionState]:
    customer, current = subscribe(fake, billing, PRO, **kw)
    scheduled = billing.schedule(
        ScheduleRequest("chg_down", customer, current, STARTER, None, False)
    )
    assert item_prices(fake, current.external_id or "") == [900]
    return customer, scheduled


BUSINESS = Price(ItemKind.TIER, "business", "Business", "month", "usd", 9900)


def test_a_declined_upgrade_keeps_the_downgrade_scheduled_before_it(
    fake_stripe: FakeStripe, stripe_billing: StripeBilling
) -> None:
    customer, scheduled = _pro_with_a_downgrade(fake_stripe, stripe_billing, declining=True)
    request = ChangeRequest(
        "chg_biz", customer, scheduled, BUSINESS, (), (), HALFWAY, None, 3500, URL
    )
    with pytest.raises(PaymentDeclined):
        stripe_billing.change_subscription(request)
    after = stripe_billing.fetch_subscription(scheduled.external_id or "")
    assert after is not None
    assert (after.plan, after.next_plan) == (PRO, STARTER)
    fake_stripe.advance_to_period_end(scheduled.external_id or "")
    renewal = invoices_of(fake_stripe, customer)[0]  # newest first
    assert (renewal.billing_reason, renewal.amount_due) == ("subscription_cycle", 900)


def test_an_upgrade_refused_or_unreachable_before_any_write_keeps_the_downgrade(
    fake_stripe: FakeStripe, stripe_billing: StripeBilling, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer, scheduled = _pro_with_a_downgrade(fake_stripe, stripe_billing)
    sub_id = scheduled.external_id or ""
    stale = ChangeRequest("chg_a", customer, scheduled, BUSINESS, (), (), HALFWAY, None, 1, URL)
    with pytest.raises(QuoteMismatch):
        stripe_billing.change_subscription(stale)
    after = stripe_billing.fetch_subscription(sub_id)
    assert after is not None and (after.plan, after.next_plan) == (PRO, STARTER)

    previews = stripe_billing.client.v1.invoices.create_preview

    def unreachable(*args: object, **kwargs: object) -> None:
        raise stripe.APIConnectionError("connection refused (test)")

    monkeypatch.setattr(stripe_billing.client.v1.invoices, "create_preview", unreachable)
    request = ChangeRequest(
        "chg_b", customer, scheduled, BUSINESS, (), (), HALFWAY, None, 3500, URL
    )
    with pytest.raises(ProviderUnavailable):
        stripe_billing.change_subscription(request)
    after = stripe_billing.fetch_subscription(sub_id)
    assert after is not None and (after.plan, after.next_plan) == (PRO, STARTER)
    # Stripe is back: the retry with the same key unschedules again and charges as quoted.
    monkeypatch.setattr(stripe_billing.client.v1.invoices, "create_preview", previews)
    done = stripe_billing.change_subscription(request)
    assert done.charge is not None and done.charge.amount_paid == 3500
    assert done.subscription is not None and done.subscription.plan == BUSINESS
    assert done.subscription.next_plan is None


def test_yearly_to_monthly_at_renewal_starts_a_monthly_subscription_on_the_same_card(
    fake_stripe: FakeStripe, stripe_billing: StripeBilling
) -> None:
    customer, current = subscribe(fake_stripe, stripe_billing, STARTER_YEAR)
    scheduled = stripe_billing.schedule(
        ScheduleRequest("chg_m", customer, current, STARTER, None, False)
    )
    assert scheduled.next_plan == STARTER and not scheduled.cancel_at_period_end
    fake_stripe.set_time(scheduled.period_end)
    renewed = stripe_billing.renew(RenewRequest("chg_renew", customer, scheduled, None))
    assert renewed.subscription is not None and renewed.subscription.plan == STARTER
    assert renewed.subscription.external_id != current.external_id
    assert renewed.subscription.period_start == scheduled.period_end
    assert renewed.charge is not None and renewed.charge.amount_paid == 900


def test_renewing_before_stripe_has_renewed_is_unavailable_not_a_guess(
    fake_stripe: FakeStripe, stripe_billing: StripeBilling
) -> None:
    customer, current = subscribe(fake_stripe, stripe_billing)
    with pytest.raises(ProviderUnavailable, match="has not renewed"):
        stripe_billing.renew(RenewRequest("chg_r", customer, current, None))
    assert current.period_end == PERIOD_END


# ---- one-time add-ons -----------------------------------------------------------------------


def test_a_one_time_addon_is_a_paid_invoice_of_its_own_tagged_with_the_change(
    fake_stripe: FakeStripe, stripe_billing: StripeBilling
) -> None:
    customer, _ = subscribe(fake_stripe, stripe_billing)
    request = OneTimeRequest("chg_1x", customer, ONBOARDING, 29900)
    result = stripe_billing.charge_one_time(request)
    assert result.charge is not None and result.charge.amount_paid == 29900
    invoice = fake_stripe.get(result.charge.external_id or "")
    assert invoice["metadata"]["tiergate_change"] == "chg_1x"
    assert stripe_billing.charge_one_time(request).charge == result.charge
    found = stripe_billing.find_change("chg_1x")
    assert found == Result(
        Outcome.DONE, charge=result.charge, customer_external_id=customer.external_id
    )


def test_a_declined_one_time_charge_voids_its_invoice(
    fake_stripe: FakeStripe, stripe_billing: StripeBilling
) -> None:
    customer = stripe_customer(fake_stripe, "acme", declining=True)
    with pytest.raises(PaymentDeclined, match="Nothing was charged"):
        stripe_billing.charge_one_time(OneTimeRequest("chg_1x", customer, ONBOARDING, 29900))
    assert [i.status for i in invoices_of(fake_stripe, customer)] == ["void"]


def test_objects_tiergate_did_not_create_are_not_read_as_ours(
    fake_stripe: FakeStripe, stripe_billing: StripeBilling
) -> None:
    client = fake_stripe.client()
    customer = client.v1.customers.create({"email": "x@example.com"})
    fake_stripe.attach_card(customer.id)
    price = client.v1.prices.create(
        {
            "currency": "usd",
            "unit_amount": 100,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Other"},
        }
    )
    sub = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id}]})
    assert stripe_billing.fetch_subscription(sub.id) is None
    assert stripe_billing.fetch_subscription("sub_missing") is None


def test_stripe_is_chosen_by_config_and_every_request_pins_the_api_version(
    fake_stripe: FakeStripe,
) -> None:
    config = {
        "STRIPE_SECRET_KEY": "sk_test_config",
        "STRIPE_WEBHOOK_SECRET": "whsec_x",
        "STRIPE_API_BASE": fake_stripe.api_base,
        "BASE_URL": "http://localhost",
    }
    billing = make_billing_from_config(config)
    assert isinstance(billing, StripeBilling) and billing.webhook_secret == "whsec_x"
    billing.charge_one_time(
        OneTimeRequest("chg_c", stripe_customer(fake_stripe, "acme"), ONBOARDING, 29900)
    )
    mine = [r for r in fake_stripe.requests if r.api_key == "sk_test_config"]
    assert mine and {r.stripe_version for r in mine} == {API_VERSION}
