"""`tiergate stripe sync`: the published catalog's products and prices in (fake) Stripe."""

# ruff: noqa: F811 - the pytest fixtures imported from stripe_fixtures are parameters here
from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from flask import Flask

from billing import stripe_sync
from billing.provider import ItemKind
from billing.stripe_cli import stripe_group
from billing.stripe_provider import StripeBilling
from tests.billing.stripe_fixtures import (
    fake_stripe,  # noqa: F401 - a fixture
    stripe_billing,  # noqa: F401 - a fixture
)
from tests.fakestripe import FakeStripe
from tiergate.clock import FixedClock
from tiergate.db import get_db
from tiers import store
from tiers.model import Interval, Promotion


def run_sync(app: Flask, billing: StripeBilling, *args: str) -> str:
    app.extensions["tiergate.billing"] = billing
    result = app.test_cli_runner().invoke(stripe_group, ["sync", *args])
    assert result.exit_code == 0, result.output
    return result.output


def stripe_prices(fake: FakeStripe) -> dict[str, dict]:
    prices = fake.client().v1.prices.list({"limit": 100}).data
    return {p.lookup_key: fake.get(p.id) for p in prices if p.lookup_key}


def posts(fake: FakeStripe) -> list[str]:
    return [r.path for r in fake.requests if r.method == "POST"]


def test_sync_creates_a_product_per_item_and_a_price_per_lookup_key_once(
    app: Flask,
    demo_catalog: store.Published,
    fake_stripe: FakeStripe,
    stripe_billing: StripeBilling,
) -> None:
    wanted = stripe_sync.catalog_prices(demo_catalog.catalog)
    output = run_sync(app, stripe_billing)
    assert f"{len(wanted) + len({p.item_id for p in wanted})} change(s) made" in output

    prices = stripe_prices(fake_stripe)
    assert set(prices) == {p.lookup_key for p in wanted}
    for price in wanted:
        made = prices[price.lookup_key]
        assert made["unit_amount"] == price.unit_amount and made["currency"] == price.currency
        assert (made["recurring"] or {}).get("interval") == price.interval
        assert made["product"] == stripe_sync.product_id(price.kind, price.item_id)
        assert made["metadata"]["tiergate"] == "1"
        assert made["metadata"]["tiergate_catalog_version"] == str(demo_catalog.version)
    products = fake_stripe.client().v1.products.list({"limit": 100}).data
    assert {p.id for p in products} == {stripe_sync.product_id(p.kind, p.item_id) for p in wanted}

    before = len(posts(fake_stripe))
    assert "nothing to do" in run_sync(app, stripe_billing)
    assert len(posts(fake_stripe)) == before


def test_a_dry_run_prints_the_plan_and_changes_nothing(
    app: Flask,
    demo_catalog: store.Published,
    fake_stripe: FakeStripe,
    stripe_billing: StripeBilling,
) -> None:
    output = run_sync(app, stripe_billing, "--dry-run")
    pro = next(t for t in demo_catalog.catalog.tiers if not t.free)
    assert f"would: Create product tg_tier_{pro.id} ({pro.name})" in output
    assert "nothing changed in Stripe" in output
    assert posts(fake_stripe) == []


def test_a_new_amount_is_a_new_price_and_the_old_one_keeps_charging_its_subscribers(
    app: Flask,
    clock: FixedClock,
    demo_catalog: store.Published,
    fake_stripe: FakeStripe,
    stripe_billing: StripeBilling,
) -> None:
    run_sync(app, stripe_billing)
    old_prices = stripe_prices(fake_stripe)
    catalog = demo_catalog.catalog
    tier = next(t for t in catalog.tiers if not t.free and t.prices.get(Interval.MONTH))
    amounts = dict(tier.prices[Interval.MONTH])
    currency = next(iter(amounts))
    amounts[currency] += 100
    raised = replace(tier, prices={**tier.prices, Interval.MONTH: amounts})
    newer = replace(catalog, tiers=tuple(raised if t.id == tier.id else t for t in catalog.tiers))
    with get_db(app).session() as session:
        store.publish(session, newer, source="", author="test", note="raise", now=clock.now())

    output = run_sync(app, stripe_billing)
    assert "1 change(s) made" in output
    prices = stripe_prices(fake_stripe)
    new_key = f"tiergate:tier:{tier.id}:month:{currency}:{amounts[currency]}"
    assert prices[new_key]["unit_amount"] == amounts[currency]
    old_key = f"tiergate:tier:{tier.id}:month:{currency}:{amounts[currency] - 100}"
    assert prices[old_key] == old_prices[old_key]  # untouched and still active


def test_a_key_on_a_price_with_other_terms_moves_to_a_new_price(
    app: Flask,
    demo_catalog: store.Published,
    fake_stripe: FakeStripe,
    stripe_billing: StripeBilling,
) -> None:
    price = next(p for p in stripe_sync.catalog_prices(demo_catalog.catalog) if p.interval)
    client = fake_stripe.client()
    product = stripe_sync.product_id(price.kind, price.item_id)
    client.v1.products.create({"id": product, "name": price.name})
    edited = client.v1.prices.create(
        {
            "product": product,
            "currency": price.currency,
            "unit_amount": price.unit_amount + 1,  # edited by hand in the dashboard
            "recurring": {"interval": "month" if price.interval == "month" else "year"},
            "lookup_key": price.lookup_key,
        }
    )
    output = run_sync(app, stripe_billing, "--dry-run")
    assert f"would: Move price {price.lookup_key}" in output
    run_sync(app, stripe_billing)
    moved = stripe_prices(fake_stripe)[price.lookup_key]
    assert moved["id"] != edited.id and moved["unit_amount"] == price.unit_amount
    assert fake_stripe.get(edited.id)["unit_amount"] == price.unit_amount + 1  # never changed
    assert fake_stripe.get(edited.id)["lookup_key"] is None


def test_the_provider_creates_a_missing_price_the_sync_would_create(
    demo_catalog: store.Published, fake_stripe: FakeStripe, stripe_billing: StripeBilling
) -> None:
    price = next(
        p for p in stripe_sync.catalog_prices(demo_catalog.catalog) if p.kind is ItemKind.ADDON
    )
    made = stripe_sync.ensure_price(stripe_billing.client, price, demo_catalog.version)
    assert made.lookup_key == price.lookup_key and stripe_sync.matches(made, price)
    again = stripe_sync.ensure_price(stripe_billing.client, price, demo_catalog.version)
    assert again.id == made.id


def test_sync_without_stripe_billing_says_how_to_configure_it(
    app: Flask, demo_catalog: store.Published
) -> None:
    result = app.test_cli_runner().invoke(stripe_group, ["sync"])
    assert result.exit_code == 1
    assert "set TIERGATE_STRIPE_SECRET_KEY" in result.output


# ---- promotion codes ---------------------------------------------------------------------------


def publish_codes(app: Flask, clock: FixedClock, catalog: Any, *promotions: Promotion) -> None:
    newer = replace(catalog, promotions=(*catalog.promotions, *promotions))
    with get_db(app).session() as session:
        store.publish(session, newer, source="", author="test", note="codes", now=clock.now())


SPRING = Promotion(
    "spring",
    "10 % off Business for 3 months",
    percent_off=10,
    tiers=("business",),
    duration="repeating",
    duration_in_months=3,
    code="SPRING10",
    ends_at=datetime(2027, 6, 1, tzinfo=UTC),
)
MONTHLY_ONLY = Promotion(
    "monthly",
    "25 % off the first month",
    percent_off=25,
    tiers=("business",),
    intervals=(Interval.MONTH,),
    code="WELCOME25",
)


def active_codes(fake: FakeStripe) -> list[Any]:
    return list(fake.client().v1.promotion_codes.list({"active": True, "limit": 100}).data)


def test_sync_puts_running_catalog_codes_into_stripe_once(
    app: Flask,
    clock: FixedClock,
    demo_catalog: store.Published,
    fake_stripe: FakeStripe,
    stripe_billing: StripeBilling,
) -> None:
    publish_codes(app, clock, demo_catalog.catalog, SPRING, MONTHLY_ONLY)
    output = run_sync(app, stripe_billing)
    assert "Create promotion code SPRING10" in output
    # Stripe cannot limit a code to monthly prices: said, and left to tiergate's checkout page.
    assert "Code WELCOME25 (monthly) is not put into Stripe: a Stripe code cannot be limited" in (
        output
    )
    [code] = active_codes(fake_stripe)
    assert code.code == "SPRING10" and code.expires_at == int(SPRING.ends_at.timestamp())
    coupon = fake_stripe.get(code.promotion.coupon)
    assert (coupon["percent_off"], coupon["duration"], coupon["duration_in_months"]) == (
        10.0,
        "repeating",
        3,
    )
    assert coupon["applies_to"] == {"products": ["tg_tier_business"]}
    before = len(posts(fake_stripe))
    assert "nothing to do" in run_sync(app, stripe_billing)
    assert len(posts(fake_stripe)) == before


def test_a_code_whose_terms_change_or_that_leaves_the_catalog_is_deactivated(
    app: Flask,
    clock: FixedClock,
    demo_catalog: store.Published,
    fake_stripe: FakeStripe,
    stripe_billing: StripeBilling,
) -> None:
    publish_codes(app, clock, demo_catalog.catalog, SPRING)
    run_sync(app, stripe_billing)
    [first] = active_codes(fake_stripe)
    publish_codes(app, clock, demo_catalog.catalog, replace(SPRING, percent_off=15))
    output = run_sync(app, stripe_billing)
    assert f"Deactivate promotion code SPRING10 ({first.id}): its terms changed" in output
    [second] = active_codes(fake_stripe)
    assert second.id != first.id and fake_stripe.get(second.promotion.coupon)["percent_off"] == 15
    ended = replace(SPRING, percent_off=15, ends_at=clock.now())  # the promotion has ended
    publish_codes(app, clock, demo_catalog.catalog, ended)
    output = run_sync(app, stripe_billing)
    assert "Code SPRING10 (spring) is not put into Stripe: it has ended." in output
    assert "no running catalog promotion has it" in output
    assert active_codes(fake_stripe) == []


def test_a_synced_code_typed_on_stripe_checkout_is_charged(
    app: Flask,
    clock: FixedClock,
    demo_catalog: store.Published,
    fake_stripe: FakeStripe,
    stripe_billing: StripeBilling,
) -> None:
    from billing.provider import Customer, Price, StartRequest

    publish_codes(app, clock, demo_catalog.catalog, SPRING)
    run_sync(app, stripe_billing)
    business = Price(ItemKind.TIER, "business", "Business", "month", "usd", 7900)
    started = stripe_billing.start_subscription(
        StartRequest(
            "chg_code",
            Customer("acme", "a@example.com", "Acme"),
            business,
            (),
            (),
            fake_stripe.clock.now(),
            0,
            None,
            7900,
            "http://x/ok",
            "http://x/no",
        )
    )
    assert started.external_id is not None
    fake_stripe.complete_checkout(started.external_id, promotion_code="SPRING10")
    [invoice] = fake_stripe.client().v1.invoices.list({"limit": 10}).data
    assert (invoice.status, invoice.amount_paid) == ("paid", 7110)  # 79.00 less 10 %
