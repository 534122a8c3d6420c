"""Billing fixtures: subscribed accounts, quoted offers, a declining provider, page helpers.

The contract suite runs over `provider_harness`, parametrized by provider name: to add Stripe,
add "stripe" to PROVIDERS and a branch building StripeBilling against the fake Stripe API.
"""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from billing.manual import ManualBilling
from billing.provider import (
    BillingProvider,
    ChangeRequest,
    Customer,
    OneTimeRequest,
    PaymentDeclined,
    RenewRequest,
    Result,
    ScheduleRequest,
    StartRequest,
    SubscriptionState,
    TrialRequest,
)
from billing.records import live_subscription
from gating import offers
from gating.models import (
    Account,
    AccountAddOn,
    Offer,
    OfferTrigger,
    Subscription,
    SubscriptionStatus,
    UsageCounter,
)
from tiergate.clock import FixedClock
from tiers import store
from tiers.model import Tier

PERIOD_START = datetime(2026, 10, 31, 12, 0, tzinfo=UTC)
PERIOD_END = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # the fixed clock is exactly halfway
GAUGE_PERIOD = datetime(1970, 1, 1, tzinfo=UTC)


class DecliningBilling:
    """A test double: every charge is declined; scheduling works like manual billing."""

    name = "manual"
    remote = False
    same_plan_discounts = True

    def __init__(self) -> None:
        self._manual = ManualBilling()
        self.calls: list[str] = []

    def _decline(self, key: str) -> Result:
        self.calls.append(key)
        raise PaymentDeclined("Your card was declined (insufficient funds).")

    def start_subscription(self, request: StartRequest) -> Result:
        return self._decline(request.idempotency_key)

    def change_subscription(self, request: ChangeRequest) -> Result:
        return self._decline(request.idempotency_key)

    def schedule(self, request: ScheduleRequest) -> SubscriptionState:
        return self._manual.schedule(request)

    def extend_trial(self, request: TrialRequest) -> SubscriptionState:
        return self._manual.extend_trial(request)

    def renew(self, request: RenewRequest) -> Result:
        return self._decline(request.idempotency_key)

    def charge_one_time(self, request: OneTimeRequest) -> Result:
        return self._decline(request.idempotency_key)

    def find_change(self, idempotency_key: str) -> Result | None:
        return None

    def payment_url(self, current: SubscriptionState) -> str | None:
        return None

    def close_redirect(self, external_id: str) -> bool:
        return True


@dataclass
class Harness:
    """One provider under contract test, and how to drive it the way a customer would."""

    provider: BillingProvider

    def customer(self, account_id: str) -> Customer:
        """A customer with a working payment method."""
        return Customer(account_id, f"{account_id}@example.com", account_id.title())

    def finish(self, result: Result) -> Result:
        """Complete a REDIRECT the way the customer would (pay at Checkout); DONE as is."""
        return result


PROVIDERS = ["manual", "stripe"]


@pytest.fixture(params=PROVIDERS)
def provider_harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    if request.param == "manual":
        yield Harness(ManualBilling())
    else:  # StripeBilling against the fake Stripe API (tests/billing/stripe_fixtures.py)
        from tests.billing.stripe_fixtures import stripe_harness

        yield from stripe_harness()


def add_account(session: Session, account_id: str, clock: FixedClock) -> Account:
    now = clock.now()
    account = Account(
        id=account_id,
        email=f"{account_id}@example.com",
        name=account_id,
        metadata_={},
        created_at=now,
        updated_at=now,
    )
    session.add(account)
    session.flush()
    return account


def subscribe(
    session: Session,
    account_id: str,
    clock: FixedClock,
    version: int,
    *,
    tier: str = "starter",
    interval: str = "month",
    currency: str = "usd",
    period_start: datetime = PERIOD_START,
    period_end: datetime = PERIOD_END,
    status: str = "active",
    addons: tuple[str, ...] = (),
) -> Account:
    """An account with a subscription row (and add-on rows), as billing left it."""
    account = session.get(Account, account_id) or add_account(session, account_id, clock)
    now = clock.now()
    account.subscription = Subscription(
        account_id=account_id,
        tier_id=tier,
        interval=interval,
        currency=currency,
        status=SubscriptionStatus(status),
        catalog_version=version,
        current_period_start=period_start,
        current_period_end=period_end,
        cancel_at_period_end=False,
        provider="manual",
        created_at=now,
        updated_at=now,
    )
    for addon_id in addons:
        session.add(
            AccountAddOn(
                account_id=account_id, addon_id=addon_id, quantity=1, active=True, purchased_at=now
            )
        )
    session.flush()
    return account


def set_gauge(
    session: Session, account_id: str, feature_id: str, used: int, clock: FixedClock
) -> None:
    session.add(
        UsageCounter(
            account_id=account_id,
            feature_id=feature_id,
            period_start=GAUGE_PERIOD,
            used=used,
            updated_at=clock.now(),
        )
    )
    session.flush()


def quote_offer(
    session: Session,
    account_id: str,
    clock: FixedClock,
    version: int,
    *,
    to_tier: str = "pro",
    interval: str = "month",
    amount_due_today: int,
    new_recurring: int,
    next_renewal: int | None = None,
    feature_id: str | None = "projects",
    from_tier: str | None = "starter",
    addon_id: str | None = None,
    promotion_id: str | None = None,
    contact_sales: bool = False,
    minutes_valid: int = 30,
) -> Offer:
    """An Offer row holding an exact quote, as gating/offers.py persists it."""
    now = clock.now()
    offer = Offer(
        id="off_" + secrets.token_hex(8),
        account_id=account_id,
        trigger=OfferTrigger.LIMIT_REACHED,
        feature_id=feature_id,
        quantity=1,
        catalog_version=version,
        from_tier_id=from_tier,
        to_tier_id=to_tier,
        from_interval="month" if from_tier else None,
        interval=interval,
        currency="usd",
        addon_id=addon_id,
        promotion_id=promotion_id,
        contact_sales=contact_sales,
        new_recurring_amount=new_recurring,
        amount_due_today=amount_due_today,
        next_renewal_amount=new_recurring if next_renewal is None else next_renewal,
        proration_date=now,
        prompt=True,
        details={},
        expires_at=now + timedelta(minutes=minutes_valid),
        created_at=now,
    )
    session.add(offer)
    session.flush()
    return offer


@dataclass(frozen=True)
class _Entitlements:
    tier: Tier
    catalog_version: int


@dataclass(frozen=True)
class _Settings:
    base_url: str = "http://localhost"


def gate_offer(
    session: Session,
    clock: FixedClock,
    account_id: str,
    feature_id: str,
    *,
    used: int,
    requested: int,
) -> Offer:
    """The offer the gate itself makes (gating/offers.py and the policy quote the amounts)."""
    account = session.get(Account, account_id)
    assert account is not None
    published = store.load(session)
    sub = live_subscription(account)  # a plan that ended leaves the account on Free
    tier = published.catalog.tier(sub.tier_id if sub else "free")
    assert tier is not None
    offer = offers.offer_for(
        session,
        clock,
        account=account,
        entitlements=_Entitlements(tier, sub.catalog_version if sub else published.version),
        feature_id=feature_id,
        used=used,
        requested=requested,
        trigger="limit_reached",
        settings=_Settings(),
    )
    assert offer is not None
    return offer


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: str) -> str:
    match = CSRF.search(page)
    assert match, "the page has no CSRF token"
    return match.group(1)


def dollars(text: str) -> int:
    """'$1,234.50' -> 123450 (minor units), as a reader of the page would take it."""
    match = re.search(r"-?\$([0-9,]+)\.([0-9]{2})", text)
    assert match, f"no amount in {text!r}"
    return int(match.group(1).replace(",", "")) * 100 + int(match.group(2))


def form_fields(page: str, action_part: str) -> dict[str, Any]:
    """The hidden inputs of the form whose action contains `action_part` (or the only form)."""
    forms = re.findall(r"<form[^>]*>.*?</form>", page, re.S)
    form = next((f for f in forms if action_part in f), None)
    assert form is not None, f"no form posting to {action_part!r}"
    pairs = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form)
    return {name: html.unescape(value) for name, value in pairs}
