"""Proration arithmetic, and the property that a preview charges what the update charges."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.fakestripe import FakeStripe, prorate, round_half_away
from tests.fakestripe.periods import boundary
from tests.fakestripe.proration import allocate, percent_of


@pytest.mark.parametrize(("num", "den", "expected"), [
    (5, 2, 3), (-5, 2, -3), (7, 3, 2), (-7, 3, -2), (1, 2, 1), (-1, 2, -1), (0, 7, 0),
    (3, 2, 2), (-3, 2, -2), (1, 3, 0), (2, 3, 1), (5, -2, -3),
])
def test_round_half_away_from_zero(num: int, den: int, expected: int) -> None:
    assert round_half_away(num, den) == expected


def test_prorate_edges() -> None:
    assert prorate(1000, 0, 100, 50) == 500
    assert prorate(2000, 0, 100, 50) == 1000
    assert prorate(1000, 0, 100, 0) == 1000  # whole period unused
    assert prorate(1000, 0, 100, 100) == 0
    assert prorate(1000, 0, 3, 1) == 667  # 666.67
    assert prorate(1, 0, 2, 1) == 1  # 0.5 rounds away from zero


@settings(derandomize=True, database=None)
@given(amount=st.integers(-10**9, 10**9), start=st.integers(0, 10**9),
       length=st.integers(1, 10**8), data=st.data())
def test_prorate_matches_decimal_half_up(amount: int, start: int, length: int,
                                         data: Any) -> None:
    at = data.draw(st.integers(start, start + length))
    exact = Decimal(amount) * Decimal(start + length - at) / Decimal(length)
    expected = int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))  # half away from zero
    assert prorate(amount, start, start + length, at) == expected
    assert prorate(-amount, start, start + length, at) == -expected  # credits are symmetric


@settings(derandomize=True, database=None)
@given(total=st.integers(0, 10**6), weights=st.lists(st.integers(0, 10**5), min_size=1,
                                                      max_size=6))
def test_allocate_sums_exactly(total: int, weights: list[int]) -> None:
    parts = allocate(total, weights)
    assert sum(parts) == (total if sum(weights) else 0)
    assert all(p >= 0 for p in parts)


def test_percent_of_is_exact() -> None:
    assert percent_of(999, Decimal("25.5")) == 255  # 254.745
    assert percent_of(-999, Decimal("25.5")) == -255
    assert percent_of(200, 50) == 100


TERMS = [("day", 1), ("day", 7), ("week", 1), ("week", 2), ("month", 1), ("month", 3),
         ("month", 6), ("year", 1)]
EPOCH_2026 = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
EPOCH_2028 = int(datetime(2028, 12, 31, tzinfo=UTC).timestamp())


def expected_total(old: int, new: int, start: int, end: int, at: int) -> int:
    """Independent of the fake: Decimal arithmetic, half-up (= away from zero for +/-)."""
    def line(amount: int) -> int:
        exact = Decimal(amount) * Decimal(end - at) / Decimal(end - start)
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))

    return line(new) - line(old)


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(old_amount=st.integers(1, 250_000), new_amount=st.integers(1, 250_000),
       old_qty=st.integers(1, 5), new_qty=st.integers(1, 5), terms=st.sampled_from(TERMS),
       start=st.integers(EPOCH_2026, EPOCH_2028), data=st.data())
def test_preview_amount_due_equals_amount_invoiced_by_always_invoice(
        fake_server: FakeStripe, old_amount: int, new_amount: int, old_qty: int, new_qty: int,
        terms: tuple[str, int], start: int, data: Any) -> None:
    assume((old_amount, old_qty) != (new_amount, new_qty))
    interval, count = terms
    end = boundary(start, interval, count, 1)
    at = data.draw(st.integers(start, end - 1), label="proration_date")
    total = expected_total(old_amount * old_qty, new_amount * new_qty, start, end, at)

    fake = fake_server
    fake.reset(now=start)
    c = fake.client()
    product = c.v1.products.create({"name": "Plan"})
    recurring = {"interval": interval, "interval_count": count}
    old = c.v1.prices.create({"product": product.id, "currency": "usd",
                              "unit_amount": old_amount, "recurring": recurring})
    new = c.v1.prices.create({"product": product.id, "currency": "usd",
                              "unit_amount": new_amount, "recurring": recurring})
    customer = c.v1.customers.create({"payment_method": "pm_card_visa",
                                      "invoice_settings": {
                                          "default_payment_method": "pm_card_visa"}})
    sub = c.v1.subscriptions.create({"customer": customer.id, "billing_mode": {"type": "classic"},
                                     "items": [{"price": old.id, "quantity": old_qty}]})
    item = sub["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (start, end)
    change = {"items": [{"id": item.id, "price": new.id, "quantity": new_qty}],
              "proration_behavior": "always_invoice", "proration_date": at}
    preview = c.v1.invoices.create_preview({"subscription": sub.id,
                                            "subscription_details": change})
    fake.set_time(at)
    updated = c.v1.subscriptions.update(sub.id, {**change, "expand": ["latest_invoice"]})
    invoice = updated.latest_invoice
    if total == 0 and invoice.id == sub.latest_invoice:
        return  # both proration lines rounded to nothing: no invoice, as on Stripe
    assert invoice.billing_reason == "subscription_update"
    assert preview.amount_due == invoice.amount_due == max(0, total)
    assert preview.total == invoice.total == total
    assert c.v1.customers.retrieve(customer.id).balance == min(0, total)
    assert fake.internal_errors == []
