"""Fixtures for the fake's own tests: a running FakeStripe and an SDK client pointed at it.

Independent of the application fixtures in tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakestripe import FakeStripe


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeStripe]:
    with FakeStripe() as fake:
        yield fake


@pytest.fixture
def fake(fake_server: FakeStripe) -> Iterator[FakeStripe]:
    """The session's fake server, emptied for this test (which must not crash the fake)."""
    fake_server.reset()
    yield fake_server
    assert fake_server.internal_errors == [], fake_server.internal_errors[0]


@pytest.fixture
def client(fake: FakeStripe) -> Any:
    return fake.client("sk_test_fakestripe_tests")


class Catalog:
    """A product with monthly 10 USD / 20 USD prices and a yearly 100 USD price."""

    def __init__(self, client: Any) -> None:
        self.product = client.v1.products.create({"name": "Pro"})
        self.basic = client.v1.prices.create({
            "product": self.product.id, "currency": "usd", "unit_amount": 1000,
            "recurring": {"interval": "month"}, "lookup_key": "basic_monthly"})
        self.pro = client.v1.prices.create({
            "product": self.product.id, "currency": "usd", "unit_amount": 2000,
            "recurring": {"interval": "month"}, "lookup_key": "pro_monthly"})
        self.pro_yearly = client.v1.prices.create({
            "product": self.product.id, "currency": "usd", "unit_amount": 10000,
            "recurring": {"interval": "year"}, "lookup_key": "pro_yearly"})
        self.addon_product = client.v1.products.create({"name": "Seats add-on"})
        self.addon = client.v1.prices.create({
            "product": self.addon_product.id, "currency": "usd", "unit_amount": 300,
            "recurring": {"interval": "month"}})
        self.setup_fee = client.v1.prices.create({
            "product": self.addon_product.id, "currency": "usd", "unit_amount": 5000})


@pytest.fixture
def catalog(client: Any) -> Catalog:
    return Catalog(client)


@pytest.fixture
def customer(client: Any, fake: FakeStripe) -> Any:
    """A customer with a working default card."""
    return client.v1.customers.create({
        "email": "ada@example.com", "name": "Ada", "payment_method": "pm_card_visa",
        "invoice_settings": {"default_payment_method": "pm_card_visa"}})
