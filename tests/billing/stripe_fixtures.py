"""Stripe fixtures: a running fake Stripe API and a StripeBilling bound to it (the real SDK).

One fake server per test process, reset before each test (same port, empty state). Test
modules import the fixtures they use (`from tests.billing.stripe_fixtures import ...`).
"""

from __future__ import annotations

import atexit
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import pytest
import stripe

from billing.provider import Customer, Outcome, RenewRequest, Result
from billing.stripe_provider import API_VERSION, StripeBilling
from tests.billing.conftest import PERIOD_START, Harness
from tests.fakestripe import FakeStripe

HALFWAY = datetime.fromisoformat("2026-11-15T12:00:00+00:00")  # the app tests' fixed now
WEBHOOK_SECRET = "whsec_tiergate_tests"

_server: FakeStripe | None = None


def fake_server() -> FakeStripe:
    """The process's fake Stripe API (started on first use)."""
    global _server
    if _server is None:
        _server = FakeStripe().start()
        atexit.register(_server.stop)
    return _server


def stripe_client(
    fake: FakeStripe, *, retries: int = 2, timeout: float = 10.0
) -> stripe.StripeClient:
    """A real SDK client for the fake, as `StripeBilling.from_config` builds one."""
    return stripe.StripeClient(
        "sk_test_tiergate",
        stripe_version=API_VERSION,
        base_addresses={"api": fake.api_base},
        max_network_retries=retries,
        http_client=stripe.new_default_http_client(timeout=timeout),
    )


def make_billing(fake: FakeStripe, **client_options: float) -> StripeBilling:
    return StripeBilling(
        stripe_client(fake, **client_options),  # type: ignore[arg-type]
        webhook_secret=WEBHOOK_SECRET,
        base_url="http://localhost",
        catalog_version=lambda: 1,
    )


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    """The fake Stripe API, emptied, its clock at the app tests' fixed now."""
    fake = fake_server()
    fake.reset(now=HALFWAY)
    yield fake
    assert fake.internal_errors == [], fake.internal_errors[0]


@pytest.fixture
def stripe_billing(fake_stripe: FakeStripe) -> StripeBilling:
    return make_billing(fake_stripe)


def stripe_customer(fake: FakeStripe, account_id: str, *, declining: bool = False) -> Customer:
    """A Stripe customer with a card on file (one whose charges decline, if asked)."""
    created = fake.client().v1.customers.create(
        {"email": f"{account_id}@example.com", "name": account_id.title()}
    )
    fake.attach_card(created.id, declining=declining)
    return Customer(account_id, f"{account_id}@example.com", account_id.title(), created.id)


class FakeTimeStripeBilling(StripeBilling):
    """StripeBilling on the fake's time line: `renew` runs once the period has ended, as
    `billing.service.apply_period_end` calls it; Stripe renews by itself at that moment."""

    def __init__(self, fake: FakeStripe) -> None:
        base = make_billing(fake)
        super().__init__(base.client, webhook_secret=WEBHOOK_SECRET, base_url="http://localhost")
        self.fake = fake

    def renew(self, request: RenewRequest) -> Result:
        if self.fake.clock.now() < request.current.period_end:
            self.fake.set_time(request.current.period_end)
        return super().renew(request)


@dataclass
class StripeHarness(Harness):
    """The contract suite's driver for Stripe: subscriptions start at the contract's period
    start; the customer pays at Checkout; the clock then stands halfway, like the suite's."""

    fake: FakeStripe = field(default_factory=fake_server)
    customers: dict[str, Customer] = field(default_factory=dict)

    def customer(self, account_id: str) -> Customer:
        if account_id not in self.customers:
            self.customers[account_id] = stripe_customer(self.fake, account_id)
        return self.customers[account_id]

    def finish(self, result: Result) -> Result:
        provider = self.provider
        assert isinstance(provider, StripeBilling)
        if result.outcome is Outcome.REDIRECT:
            assert result.external_id is not None
            self.fake.complete_checkout(result.external_id)
            result = provider.checkout_result(result.external_id)
        if self.fake.clock.now() < HALFWAY:
            self.fake.set_time(HALFWAY)
        return result


def stripe_harness() -> Iterator[StripeHarness]:
    """The contract suite's Stripe provider (a generator: conftest's provider_harness yields it)."""
    fake = fake_server()
    fake.reset(now=PERIOD_START)
    yield StripeHarness(FakeTimeStripeBilling(fake), fake)
    assert fake.internal_errors == [], fake.internal_errors[0]
