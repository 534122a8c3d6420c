"""ManualBilling: no payment processor. Changes apply at once; invoices are recorded as paid.

For teams that invoice by hand (or run the demo): the amounts are exactly the ones Stripe would
charge (billing/quotes.py), so switching to Stripe later changes no number a customer saw.
Manual changes happen inside the caller's database transaction, so a change is never applied
without its BillingChange row: `find_change` has nothing to recover and returns None.
"""

from __future__ import annotations

from dataclasses import replace

from billing.provider import (
    ChangeRequest,
    Charge,
    Line,
    OneTimeRequest,
    Outcome,
    QuoteMismatch,
    RenewRequest,
    Result,
    ScheduleRequest,
    StartRequest,
    SubscriptionState,
)
from billing.quotes import Quote, change_quote, renewal_quote, start_quote


class ManualBilling:
    """The billing provider with no processor: the default when no Stripe key is configured."""

    name = "manual"

    def start_subscription(self, request: StartRequest) -> Result:
        """Start at once: a full period (or the trial) from `request.start`, invoiced as paid."""
        quote = start_quote(
            request.plan,
            request.addons,
            request.one_time,
            request.start,
            request.trial_days,
            request.discount,
        )
        _check(quote, request.expected_amount_due)
        state = SubscriptionState(
            plan=request.plan,
            addons=request.addons,
            status="trialing" if quote.trial_end else "active",
            period_start=quote.period_start,
            period_end=quote.period_end,
            trial_end=quote.trial_end,
        )
        return Result(Outcome.DONE, subscription=state, charge=_paid(quote))

    def change_subscription(self, request: ChangeRequest) -> Result:
        """Apply the new items now and record the prorated charge as paid."""
        quote = change_quote(
            request.current,
            request.plan,
            request.addons,
            request.one_time,
            request.proration_date,
            request.discount,
        )
        _check(quote, request.expected_amount_due)
        state = replace(
            request.current,
            plan=request.plan,
            addons=request.addons,
            period_start=quote.period_start,
            period_end=quote.period_end,
            status="trialing" if quote.trial_end else "active",
            trial_end=quote.trial_end,
            # An upgrade supersedes a scheduled downgrade or cancellation, as in Stripe.
            next_plan=None,
            next_addons=None,
            cancel_at_period_end=False,
        )
        return Result(Outcome.DONE, subscription=state, charge=_paid(quote))

    def schedule(self, request: ScheduleRequest) -> SubscriptionState:
        """Remember the change for the period end; nothing is charged now."""
        return replace(
            request.current,
            next_plan=request.next_plan,
            next_addons=request.next_addons,
            cancel_at_period_end=request.cancel_at_period_end,
        )

    def renew(self, request: RenewRequest) -> Result:
        """End the period: cancel, or start the next period with the scheduled items, paid."""
        current = request.current
        if current.cancel_at_period_end:
            ended = replace(current, status="canceled", next_plan=None, next_addons=None)
            return Result(Outcome.DONE, subscription=ended)
        quote = renewal_quote(current, request.discount)
        state = replace(
            current,
            plan=current.next_plan or current.plan,
            addons=current.next_addons if current.next_addons is not None else current.addons,
            status="active",
            period_start=quote.period_start,
            period_end=quote.period_end,
            trial_end=None,
            next_plan=None,
            next_addons=None,
        )
        return Result(Outcome.DONE, subscription=state, charge=_paid(quote))

    def charge_one_time(self, request: OneTimeRequest) -> Result:
        """Record the one-time item as a paid invoice."""
        item = request.item
        line = Line(item.name, item.amount, item_id=item.item_id)
        if item.amount != request.expected_amount_due:
            raise _mismatch(item.amount, request.expected_amount_due, item.currency)
        charge = Charge(item.currency, item.amount, item.amount, "paid", (line,))
        return Result(Outcome.DONE, charge=charge)

    def find_change(self, idempotency_key: str) -> Result | None:
        """Nothing to recover: manual changes commit or roll back with their BillingChange row."""
        return None


def _check(quote: Quote, expected: int) -> None:
    if quote.amount_due != expected:
        raise _mismatch(quote.amount_due, expected, quote.currency)


def _mismatch(amount: int, expected: int, currency: str) -> QuoteMismatch:
    return QuoteMismatch(
        f"The amount due is {amount} ({currency}, minor units) but {expected} was quoted; "
        "nothing was charged. Ask for a new quote.",
        details={"amount_due": amount, "quoted": expected},
    )


def _paid(quote: Quote) -> Charge:
    return Charge(
        currency=quote.currency,
        amount_due=quote.amount_due,
        amount_paid=quote.amount_due,
        status="paid",
        lines=quote.lines,
    )
