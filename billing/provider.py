"""The billing provider interface: one door to the payment processor.

Flows (billing/service.py) describe a change in catalog terms (which prices, from when, for how
much) and the provider carries it out: ManualBilling applies it at once with no processor,
StripeBilling through the Stripe API. Providers hold no database session: they take plain
dataclasses and return plain dataclasses, and the flows write the rows.

Rules every provider keeps (tests/billing/test_provider_contract.py checks them):
- `idempotency_key` is the BillingChange id: a repeated call with the same key changes nothing
  more and returns the first result (Stripe: the `Idempotency-Key` header).
- A charging call is given `expected_amount_due` (the quote the customer saw). A provider that
  would charge anything else raises QuoteMismatch BEFORE changing anything.
- A declined payment raises PaymentDeclined (customer-facing message) and changes nothing:
  the subscription keeps its old items (Stripe: payment_behavior="pending_if_incomplete").
- An unreachable processor raises ProviderUnavailable; the outcome may be unknown, so the flow
  keeps its BillingChange pending for reconcile (`find_change`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from tiergate.exceptions import Conflict, PaymentFailed
from tiers.money import format_money


class PaymentDeclined(PaymentFailed):
    """The card was declined (or needs a payment method): nothing was changed."""

    code = "payment_declined"


class QuoteMismatch(Conflict):
    """The provider would charge another amount than the customer was quoted: nothing changed."""

    code = "quote_mismatch"


def quote_mismatch(amount: int, expected: int, currency: str | None) -> QuoteMismatch:
    """The customer-facing refusal of a charge that differs from the quote."""
    if currency:
        now, quoted = format_money(amount, currency), format_money(expected, currency)
    else:
        now, quoted = str(amount), str(expected)
    return QuoteMismatch(
        f"The amount due is now {now}, not the {quoted} you were shown, so nothing was "
        "charged. Open the page again for the current price.",
        details={"amount_due": amount, "quoted": expected},
    )


class ItemKind(StrEnum):
    TIER = "tier"
    ADDON = "addon"


class Outcome(StrEnum):
    DONE = "done"  # applied and paid (or nothing was due)
    REDIRECT = (
        "redirect"  # the customer must finish at `redirect_url` (Stripe Checkout, 3-D Secure)
    )


@dataclass(frozen=True)
class Customer:
    account_id: str
    email: str | None = None
    name: str | None = None
    external_id: str | None = None  # Stripe: cus_...; None until the provider created one
    balance: int = 0  # the invoice balance (negative: a credit), applied to the next charge


@dataclass(frozen=True)
class Price:
    """A catalog price to charge: a tier or add-on, per interval (None: one-time), in a currency."""

    kind: ItemKind
    item_id: str
    name: str
    interval: str | None
    currency: str
    unit_amount: int
    quantity: int = 1

    @property
    def amount(self) -> int:
        """Unit amount times quantity."""
        return self.unit_amount * self.quantity

    @property
    def lookup_key(self) -> str:
        """A stable key for the processor's price object (amounts are immutable in Stripe)."""
        return (
            f"tiergate:{self.kind.value}:{self.item_id}:{self.interval or 'once'}:"
            f"{self.currency}:{self.unit_amount}"
        )


@dataclass(frozen=True)
class Discount:
    """A catalog promotion as the provider applies it (Stripe: a coupon with these terms)."""

    promotion_id: str
    percent_off: int | None = None
    amount_off: int | None = None  # minor units of the charge's currency
    duration: str = "once"  # once | forever | repeating
    duration_in_months: int | None = None
    code: str | None = None
    name: str = field(default="", compare=False)  # the customer-facing name, for invoice lines

    def off(self, amount: int) -> int:
        """The discount on `amount`: percent rounds half up; never more than the amount."""
        if amount <= 0:
            return 0
        if self.percent_off is not None:
            value = (amount * self.percent_off + 50) // 100
        else:
            value = self.amount_off or 0
        return max(0, min(value, amount))


@dataclass(frozen=True)
class RunningDiscount:
    """A promotion that keeps discounting the plan's renewals (forever, repeating, or a first
    charge still to come after a trial). ManualBilling's own record; Stripe keeps the coupon on
    the subscription and applies it itself, so Stripe states carry None."""

    discount: Discount
    tier_id: str  # the plan it was given for (Stripe: the coupon's applies_to product)
    charges_left: int | None  # charges it still discounts; None: no count (forever, repeating)
    # repeating: it ends this many months after it was given, as Stripe's coupon does; a
    # renewal before that instant is discounted
    ends_at: datetime | None = None


@dataclass(frozen=True)
class SubscriptionState:
    """A subscription as the provider holds it: the items, the period and any scheduled change."""

    plan: Price
    addons: tuple[Price, ...]
    status: str  # gating.models.SubscriptionStatus values (Stripe's strings)
    period_start: datetime
    period_end: datetime
    trial_end: datetime | None = None
    cancel_at_period_end: bool = False
    next_plan: Price | None = None  # a downgrade or interval change waiting for the period end
    next_addons: tuple[Price, ...] | None = None  # the add-ons of the next period, when scheduled
    external_id: str | None = None  # Stripe: sub_...
    item_ids: Mapping[str, str] = field(default_factory=dict)  # item_id -> Stripe si_...
    running_discount: RunningDiscount | None = None  # manual billing: renewals it discounts
    # The customer's invoice balance in the plan's currency (negative: a credit): Stripe takes
    # it off the next invoice it finalizes, and so do the quotes.
    balance: int = 0


@dataclass(frozen=True)
class Line:
    description: str
    amount: int  # signed minor units; credits are negative
    item_id: str | None = None
    proration: bool = False


@dataclass(frozen=True)
class Charge:
    """The invoice the provider created for a call: what the customer was charged."""

    currency: str
    amount_due: int
    amount_paid: int
    status: str  # paid | open
    lines: tuple[Line, ...]
    external_id: str | None = None  # Stripe: in_...
    ending_balance: int | None = None  # the customer's balance after it (None: not final)


@dataclass(frozen=True)
class Result:
    """What a charging call did: DONE with the new state and the charge, or REDIRECT."""

    outcome: Outcome
    subscription: SubscriptionState | None = None
    charge: Charge | None = None
    redirect_url: str | None = None
    customer_external_id: str | None = None
    external_id: str | None = None  # Stripe Checkout Session id for REDIRECT
    balance: int | None = None  # the customer's balance after the call; None: not known


@dataclass(frozen=True)
class StartRequest:
    """Start a first paid subscription (free account, checkout, accepted offer from free)."""

    idempotency_key: str
    customer: Customer
    plan: Price
    addons: tuple[Price, ...]  # recurring add-ons started with the plan
    one_time: tuple[Price, ...]  # one-time add-ons invoiced with the first invoice
    start: datetime
    trial_days: int
    discount: Discount | None
    expected_amount_due: int
    success_url: str
    cancel_url: str


@dataclass(frozen=True)
class ChangeRequest:
    """Change the items now, prorated at `proration_date` (upgrade, month->year, add an add-on)."""

    idempotency_key: str
    customer: Customer
    current: SubscriptionState
    plan: Price
    addons: tuple[Price, ...]  # the full set of recurring add-ons after the change
    one_time: tuple[Price, ...]
    proration_date: datetime
    discount: Discount | None
    expected_amount_due: int
    return_url: str  # where a customer comes back after 3-D Secure


@dataclass(frozen=True)
class ScheduleRequest:
    """At the period end: switch to `next_plan` / `next_addons`, or cancel; or clear (resume)."""

    idempotency_key: str
    customer: Customer
    current: SubscriptionState
    next_plan: Price | None  # None: keep the plan
    next_addons: tuple[Price, ...] | None  # None: keep the add-ons
    cancel_at_period_end: bool


@dataclass(frozen=True)
class TrialRequest:
    """Move the running trial's end to `trial_end` (later): nothing is charged before it."""

    idempotency_key: str
    customer: Customer
    current: SubscriptionState
    trial_end: datetime


@dataclass(frozen=True)
class RenewRequest:
    """The period ended: move to the next period with the scheduled items and invoice it."""

    idempotency_key: str
    customer: Customer
    current: SubscriptionState
    discount: Discount | None  # a `forever`/`repeating` promotion still running


@dataclass(frozen=True)
class OneTimeRequest:
    """Charge a one-time add-on now (Stripe: an invoice item on a new invoice, paid at once)."""

    idempotency_key: str
    customer: Customer
    item: Price
    expected_amount_due: int


@runtime_checkable
class BillingProvider(Protocol):
    """The payment processor behind the flows (ManualBilling, StripeBilling, test doubles)."""

    name: str  # "manual" | "stripe": stored in Subscription.provider and Invoice.provider
    remote: bool  # True: it changes state outside our database (intents are committed first)
    # False: a promotion cannot discount a change within the current plan (monthly to yearly)
    same_plan_discounts: bool

    def start_subscription(self, request: StartRequest) -> Result:
        """Start a paid subscription: DONE (manual, saved card) or REDIRECT (Stripe Checkout)."""
        ...

    def change_subscription(self, request: ChangeRequest) -> Result:
        """Change plan/add-ons now for exactly `expected_amount_due`, prorated."""
        ...

    def schedule(self, request: ScheduleRequest) -> SubscriptionState:
        """Schedule (or with nothing to change, clear) a change or cancellation at period end."""
        ...

    def extend_trial(self, request: TrialRequest) -> SubscriptionState:
        """End the trial later: the first charge moves with it, nothing is charged now."""
        ...

    def renew(self, request: RenewRequest) -> Result:
        """Start the next period applying scheduled changes; `subscription` None once canceled."""
        ...

    def charge_one_time(self, request: OneTimeRequest) -> Result:
        """Invoice and collect a one-time item now."""
        ...

    def find_change(self, idempotency_key: str) -> Result | None:
        """The result of an earlier call with this key, if the provider applied it (reconcile)."""
        ...

    def payment_url(self, current: SubscriptionState) -> str | None:
        """Where the customer pays the subscription's open invoice after a failed payment (a
        page of the processor's), or None when the provider has none."""
        ...

    def close_redirect(self, external_id: str) -> bool:
        """Close a payment page a REDIRECT sent the customer to (Stripe: expire the Checkout
        Session), so it can no longer be paid. False: it was paid already (settle it)."""
        ...


@runtime_checkable
class InvoiceSource(Protocol):
    """A provider that lists a subscription's invoices (StripeBilling): reconcile records the
    ones whose webhooks were lost."""

    def recent_invoices(
        self, subscription_external_id: str, since: datetime, limit: int
    ) -> list[dict[str, Any]]:
        """The subscription's invoices created at or after `since` (at most `limit`, the newest),
        oldest first, in the shape the invoice webhooks carry (Stripe's invoice JSON)."""
        ...
