"""What a billing change costs, line by line: Stripe's behaviour, in plain integer arithmetic.

ManualBilling charges exactly these amounts, and the flows quote them for changes that have no
Offer row (add-on purchases, checkout, interval switches). Pure: no Flask, no database, no stripe.

The arithmetic is billing/proration.py's; this module maps provider Prices to its Items:
- Same interval: each changed price is prorated at the proration date.
- Another interval (month -> year): Stripe resets the billing cycle to the proration date, credits
  the unused time of the old items and charges the new items' full price for the new period.
- A promotion discounts the plan's line only (the tier it was granted for), never below zero,
  like a Stripe coupon restricted to the tier's product.
- Renewals keep the billing anchor's day (Jan 31 -> Feb 28 -> Mar 31).
- During a trial nothing is prorated: the new items are charged when the trial ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from billing import proration
from billing.proration import add_interval
from billing.provider import Discount, Line, Price, SubscriptionState

_NO_PERIOD = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Quote:
    """The lines and total of one charge, and the period the subscription is in afterwards."""

    currency: str
    lines: tuple[Line, ...]
    period_start: datetime
    period_end: datetime
    trial_end: datetime | None = None

    # The customer's balance before this charge (negative: a credit), applied as Stripe applies
    # it when it finalizes an invoice.
    balance: int = 0

    @property
    def total(self) -> int:
        """The sum of the lines; negative when the change nets to a credit."""
        return sum(line.amount for line in self.lines)

    @property
    def amount_due(self) -> int:
        """The total with the balance applied, never below zero: a net credit is kept as the
        customer's balance for the next invoices, not refunded."""
        return max(0, self.total + self.balance)

    @property
    def ending_balance(self) -> int:
        """The balance after this charge: the credit that is left (or 0)."""
        return min(0, self.total + self.balance)

    @property
    def credit_applied(self) -> int:
        """How much of a credit balance this charge used (0 when none was used)."""
        return max(0, max(0, self.total) - self.amount_due)


def next_period_end(start: datetime, end: datetime, interval: str) -> datetime:
    """The end of the period after [start, end): Stripe keeps the billing anchor's day.

    A period clamped to a short month (Jan 31 -> Feb 28) still renews on the 31st: the anchor day
    is the larger of the two ends when the period is a regular one on that day; a period that is
    not (a trial, a switch) makes its end the new anchor.
    """
    anchor = max(start.day, end.day)
    if add_interval(start, interval, day=anchor) == end:
        return add_interval(end, interval, day=anchor)
    return add_interval(end, interval)


def _item(price: Price, discount: Discount | None = None) -> proration.Item:
    off = None
    if discount is not None:
        off = proration.Discount(
            discount.promotion_id, discount.percent_off, discount.amount_off or 0, discount.name
        )
    return proration.Item(price.item_id, price.unit_amount, price.quantity, price.name, off)


def _items(
    plan: Price, addons: tuple[Price, ...], discount: Discount | None
) -> list[proration.Item]:
    return [_item(plan, discount), *(_item(p) for p in addons)]


def _lines(result: proration.Proration) -> list[Line]:
    prorated = (proration.LineKind.CREDIT, proration.LineKind.DEBIT)
    return [
        Line(line.description, line.amount, item_id=line.price_id, proration=line.kind in prorated)
        for line in result.lines
    ]


def _one_time(items: tuple[Price, ...]) -> list[Line]:
    return [Line(p.name, p.amount, item_id=p.item_id) for p in items]


def start_quote(
    plan: Price,
    addons: tuple[Price, ...],
    one_time: tuple[Price, ...],
    start: datetime,
    trial_days: int,
    discount: Discount | None,
    balance: int = 0,
) -> Quote:
    """A first subscription: a full period from `start`, or a free trial of `trial_days` first."""
    if trial_days > 0:
        trial_end = start + timedelta(days=trial_days)
        trial = Line(f"{plan.name} trial ({trial_days} days)", 0, item_id=plan.item_id)
        lines = (trial, *_one_time(one_time))
        return Quote(plan.currency, lines, start, trial_end, trial_end, balance)
    result = proration.start_period(_items(plan, addons, discount), start, _interval(plan))
    lines = (*_lines(result), *_one_time(one_time))
    return Quote(plan.currency, lines, result.period_start, result.period_end, None, balance)


def change_quote(
    current: SubscriptionState,
    plan: Price,
    addons: tuple[Price, ...],
    one_time: tuple[Price, ...],
    proration_date: datetime,
    discount: Discount | None,
) -> Quote:
    """Changing the items at `proration_date`: prorated, or a new period for a new interval."""
    if plan.currency != current.plan.currency:
        raise ValueError("a subscription cannot change currency")
    if not current.period_start <= proration_date <= current.period_end:
        raise ValueError("the proration date must lie within the current period")
    trial_end = current.trial_end
    if current.status == "trialing" and trial_end is not None and proration_date < trial_end:
        # Stripe keeps the trial: nothing is prorated; the new items are charged at its end.
        note = Line(f"{plan.name} trial until {trial_end:%d %b %Y}", 0, item_id=plan.item_id)
        lines = (note, *_one_time(one_time))
        return Quote(
            plan.currency,
            lines,
            current.period_start,
            current.period_end,
            trial_end,
            current.balance,
        )
    # The current plan keeps the discount it has only when the plan stays the same.
    before = _items(current.plan, current.addons, discount if current.plan == plan else None)
    after = _items(plan, addons, discount)
    if plan.interval != current.plan.interval:
        result = proration.prorate_interval_switch(
            before,
            after,
            current.period_start,
            current.period_end,
            proration_date,
            _interval(plan),
        )
    else:
        result = proration.prorate_change(
            before, after, current.period_start, current.period_end, proration_date
        )
    lines = (*_lines(result), *_one_time(one_time))
    return Quote(
        plan.currency, lines, result.period_start, result.period_end, None, current.balance
    )


def renewal_quote(current: SubscriptionState, discount: Discount | None) -> Quote:
    """The next period's invoice: scheduled plan and add-ons, else the current ones."""
    plan = current.next_plan or current.plan
    addons = current.next_addons if current.next_addons is not None else current.addons
    start = current.period_end
    end = None  # a new interval, or out of a trial: a full one from the start, whose day
    # becomes the anchor (a trial from March 31 to April 30 is not a month on the 31st)
    out_of_trial = current.trial_end is not None and current.trial_end == current.period_end
    if plan.interval == current.plan.interval and not out_of_trial:  # on the anchor's day
        end = next_period_end(current.period_start, start, _interval(plan))
    result = proration.start_period(_items(plan, addons, discount), start, _interval(plan), end)
    return Quote(
        plan.currency, tuple(_lines(result)), start, result.period_end, None, current.balance
    )


def one_time_quote(item: Price, balance: int = 0) -> Quote:
    """A one-time item invoiced on its own (Stripe: an invoice item on a new invoice)."""
    line = Line(item.name, item.amount, item_id=item.item_id)
    return Quote(item.currency, (line,), _NO_PERIOD, _NO_PERIOD, None, balance)


def _interval(price: Price) -> str:
    if price.interval is None:
        raise ValueError(f"{price.item_id} is a one-time price, not a subscription plan")
    return price.interval
