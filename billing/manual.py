"""ManualBilling: no payment processor. Changes apply at once; invoices are recorded as paid.

For teams that invoice by hand (or run the demo): the amounts are exactly the ones Stripe would
charge (billing/quotes.py), so switching to Stripe later changes no number a customer saw.
Manual changes happen inside the caller's database transaction, so a change is never applied
without its BillingChange row: `find_change` has nothing to recover and returns None.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from billing.proration import add_interval
from billing.provider import (
    ChangeRequest,
    Charge,
    Discount,
    Line,
    OneTimeRequest,
    Outcome,
    Price,
    RenewRequest,
    Result,
    RunningDiscount,
    ScheduleRequest,
    StartRequest,
    SubscriptionState,
    TrialRequest,
    quote_mismatch,
)
from billing.quotes import Quote, change_quote, one_time_quote, renewal_quote, start_quote


class ManualBilling:
    """The billing provider with no processor: the default when no Stripe key is configured."""

    name = "manual"
    remote = False  # everything happens in our own transaction
    same_plan_discounts = True  # the discount is on our own invoice lines

    def start_subscription(self, request: StartRequest) -> Result:
        """Start at once: a full period (or the trial) from `request.start`, invoiced as paid."""
        quote = start_quote(
            request.plan,
            request.addons,
            request.one_time,
            request.start,
            request.trial_days,
            request.discount,
            request.customer.balance,
        )
        _check(quote, request.expected_amount_due)
        state = SubscriptionState(
            plan=request.plan,
            addons=request.addons,
            status="trialing" if quote.trial_end else "active",
            period_start=quote.period_start,
            period_end=quote.period_end,
            trial_end=quote.trial_end,
            running_discount=running(
                request.discount, request.plan, request.start, charged=not quote.trial_end
            ),
            balance=quote.ending_balance,
        )
        return _done(state, quote)

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
            running_discount=_after_change(request, charged=not quote.trial_end),
            balance=quote.ending_balance,
        )
        return _done(state, quote)

    def schedule(self, request: ScheduleRequest) -> SubscriptionState:
        """Remember the change for the period end; nothing is charged now."""
        return replace(
            request.current,
            next_plan=request.next_plan,
            next_addons=request.next_addons,
            cancel_at_period_end=request.cancel_at_period_end,
        )

    def extend_trial(self, request: TrialRequest) -> SubscriptionState:
        """The trial (and with it the first charge, made by `renew`) ends later."""
        end = request.trial_end
        return replace(request.current, trial_end=end, period_end=end)

    def renew(self, request: RenewRequest) -> Result:
        """End the period: cancel, or start the next period with the scheduled items, paid."""
        current = request.current
        if current.cancel_at_period_end:
            ended = replace(current, status="canceled", next_plan=None, next_addons=None)
            return Result(Outcome.DONE, subscription=ended)
        plan = current.next_plan or current.plan
        kept = running_at_renewal(current)
        discount = request.discount or (kept.discount if kept is not None else None)
        quote = renewal_quote(current, discount)
        state = replace(
            current,
            plan=plan,
            addons=current.next_addons if current.next_addons is not None else current.addons,
            status="active",
            period_start=quote.period_start,
            period_end=quote.period_end,
            trial_end=None,
            next_plan=None,
            next_addons=None,
            running_discount=_one_used(kept) if request.discount is None else None,
            balance=quote.ending_balance,
        )
        return _done(state, quote)

    def charge_one_time(self, request: OneTimeRequest) -> Result:
        """Record the one-time item as a paid invoice."""
        item = request.item
        quote = one_time_quote(item, request.customer.balance)
        _check(quote, request.expected_amount_due)
        return Result(Outcome.DONE, charge=_paid(quote), balance=quote.ending_balance)

    def find_change(self, idempotency_key: str) -> Result | None:
        """Nothing to recover: manual changes commit or roll back with their BillingChange row."""
        return None

    def payment_url(self, current: SubscriptionState) -> str | None:
        """No payment page: invoices are settled by hand."""
        return None

    def close_redirect(self, external_id: str) -> bool:
        """Manual billing never redirects: there is nothing to close."""
        return True


def running_at_renewal(current: SubscriptionState) -> RunningDiscount | None:
    """The running promotion that still discounts the next period's plan (None: none does)."""
    plan = current.next_plan or current.plan
    kept = current.running_discount
    if kept is not None and (
        kept.tier_id != plan.item_id or plan.interval != current.plan.interval
    ):
        return None  # given for another plan, or a switch of interval ends it (as Stripe's
        # next subscription starts without the coupon, and a change made now ends it)
    if kept is not None and kept.ends_at is not None and current.period_end >= kept.ends_at:
        return None  # a repeating promotion that has run its months
    return kept


def running(
    discount: Discount | None, plan: Price, given_at: datetime, *, charged: bool
) -> RunningDiscount | None:
    """What is left of a promotion given at `given_at` with a charge (`charged`: that charge
    was discounted; False during a trial, whose first charge comes at its end).

    As Stripe's coupons: `once` is one charge, `forever` every renewal of this plan, and
    `repeating` every renewal before its months have run from when it was given (a promotion
    of 3 months given mid-period also discounts the third renewal, which falls inside them)."""
    if discount is None:
        return None
    if discount.duration == "forever":
        return RunningDiscount(discount, plan.item_id, None)
    if discount.duration == "repeating":
        months = discount.duration_in_months or (12 if plan.interval == "year" else 1)
        ends_at = add_interval(given_at, "month", months)
        return RunningDiscount(discount, plan.item_id, None, ends_at)
    return None if charged else RunningDiscount(discount, plan.item_id, 1)


def _after_change(request: ChangeRequest, *, charged: bool) -> RunningDiscount | None:
    """A new promotion replaces the running one; a change to another plan (another tier, or
    the same tier billed at another interval) ends it, as StripeBilling removes its coupon."""
    if request.discount is not None:
        return running(request.discount, request.plan, request.proration_date, charged=charged)
    kept = request.current.running_discount
    same = (request.plan.item_id, request.plan.interval) == (
        request.current.plan.item_id,
        request.current.plan.interval,
    )
    return kept if kept is not None and same else None


def _one_used(kept: RunningDiscount | None) -> RunningDiscount | None:
    if kept is None or kept.charges_left is None:
        return kept
    left = kept.charges_left - 1
    return replace(kept, charges_left=left) if left > 0 else None


def _check(quote: Quote, expected: int) -> None:
    if quote.amount_due != expected:
        raise quote_mismatch(quote.amount_due, expected, quote.currency)


def _done(state: SubscriptionState, quote: Quote) -> Result:
    return Result(
        Outcome.DONE, subscription=state, charge=_paid(quote), balance=quote.ending_balance
    )


def _paid(quote: Quote) -> Charge:
    """The invoice: its lines, then how the balance settled it (the lines add up to the amount
    due, as on a Stripe invoice's "Applied balance")."""
    lines = list(quote.lines)
    if quote.credit_applied:
        lines.append(Line("Applied from your account credit", -quote.credit_applied))
    if quote.balance > 0:
        lines.append(Line("Balance carried from earlier invoices", quote.balance))
    if rest := quote.amount_due - sum(line.amount for line in lines):
        lines.append(Line("Credit kept on your account for the next invoices", rest))
    return Charge(
        currency=quote.currency,
        amount_due=quote.amount_due,
        amount_paid=quote.amount_due,
        status="paid",
        lines=tuple(lines),
    )
