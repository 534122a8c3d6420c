"""The local proration (billing/proration.py, billing/quotes.py) against Stripe's numbers.

Stripe's documented example first, then Stripe's invoice preview (the fake Stripe API through
the real SDK) over generated periods, prices and change times: they must agree to the cent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import proration
from billing.proration import add_interval
from billing.provider import ItemKind, Price, SubscriptionState
from billing.quotes import change_quote
from tests.billing.stripe_fixtures import fake_server
from tests.fakestripe import FakeStripe

NOV_1 = datetime(2026, 11, 1, tzinfo=UTC)
DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)
HALFWAY = datetime(2026, 11, 16, tzinfo=UTC)  # 30-day November: exactly halfway


def test_stripes_documented_example_10_to_20_usd_halfway_is_500_due() -> None:
    before = [proration.Item("basic", 1000)]
    after = [proration.Item("pro", 2000)]
    change = proration.prorate_change(before, after, NOV_1, DEC_1, HALFWAY)
    assert [line.amount for line in change.lines] == [-500, 1000]
    assert change.amount_due == 500


def test_stripes_preview_of_the_documented_example_is_500_due() -> None:
    fake = fake_server()
    preview = _preview(fake, NOV_1, "month", 1000, 2000, HALFWAY)
    assert sorted(line.amount for line in preview.lines.data) == [-500, 1000]
    assert preview.amount_due == 500


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    start=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
    ).map(lambda d: d.replace(microsecond=0)),
    interval=st.sampled_from(["month", "year"]),
    old=st.integers(min_value=1, max_value=500_000),
    new=st.integers(min_value=1, max_value=500_000),
    quantity=st.integers(min_value=1, max_value=5),
    fraction=st.fractions(min_value=0, max_value=1).filter(lambda f: f < 1),  # before the end
)
def test_the_local_quote_matches_stripes_preview_to_the_cent(
    start: datetime, interval: str, old: int, new: int, quantity: int, fraction: object
) -> None:
    end = add_interval(start, interval)
    seconds = int((end - start).total_seconds() * fraction)  # type: ignore[operator]
    at = start + timedelta(seconds=seconds)
    preview = _preview(fake_server(), start, interval, old, new, at, quantity)

    local = proration.prorate_change(
        [proration.Item("basic", old, quantity)],
        [proration.Item("pro", new, quantity)],
        start,
        end,
        at,
    )
    prorations = [line.amount for line in preview.lines.data if _is_proration(line)]
    # Stripe makes no line of 0.00; with nothing to prorate it previews the next renewal.
    assert sorted(prorations) == sorted(line.amount for line in local.lines if line.amount)
    due_now = preview.amount_due if prorations else 0
    assert due_now == local.amount_due

    basic = Price(ItemKind.TIER, "basic", "Basic", interval, "usd", old, quantity)
    pro = Price(ItemKind.TIER, "pro", "Pro", interval, "usd", new, quantity)
    state = SubscriptionState(basic, (), "active", start, end)
    assert change_quote(state, pro, (), (), at, None).amount_due == due_now


def _is_proration(line: stripe.InvoiceLineItem) -> bool:
    details = line.parent.subscription_item_details if line.parent else None
    return bool(details and details.proration)


def _preview(
    fake: FakeStripe,
    start: datetime,
    interval: str,
    old: int,
    new: int,
    at: datetime,
    quantity: int = 1,
) -> stripe.Invoice:
    """Stripe's invoice for changing `old` -> `new` at `at`, in a subscription from `start`."""
    fake.reset(now=start)
    client = fake.client()
    prices = [
        client.v1.prices.create(
            {
                "currency": "usd",
                "unit_amount": amount,
                "recurring": {"interval": "month" if interval == "month" else "year"},
                "product_data": {"name": name},
            }
        )
        for name, amount in (("Basic", old), ("Pro", new))
    ]
    customer = client.v1.customers.create({"email": "p@example.com"})
    fake.attach_card(customer.id)
    sub = client.v1.subscriptions.create(
        {
            "customer": customer.id,
            "items": [{"price": prices[0].id, "quantity": quantity}],
            "billing_mode": {"type": "classic"},  # as tiergate creates them
        }
    )
    item = sub["items"].data[0].id
    preview = client.v1.invoices.create_preview(
        {
            "subscription": sub.id,
            "subscription_details": {
                "items": [{"id": item, "price": prices[1].id, "quantity": quantity}],
                "proration_date": int(at.timestamp()),
                "proration_behavior": "always_invoice",
            },
        }
    )
    assert fake.internal_errors == []
    return preview
