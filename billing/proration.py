"""Proration arithmetic as Stripe does it: integers only, each line rounded on its own.

Changing a subscription's items at `proration_date` inside the period [period_start, period_end)
creates, for every changed price, a credit for the unused time of the old item and a debit for
the remaining time of the new one::

    remaining = period_end - proration_date        # whole seconds
    period    = period_end - period_start          # whole seconds
    credit    = -round_div(old_amount x quantity x remaining, period)
    debit     = +round_div(new_amount x quantity x remaining, period)

rounded to the nearest minor unit, half away from zero (`round_div`), so a credit is exactly the
negative of the same line as a debit. Stripe's example: 10 USD -> 20 USD monthly, changed exactly
halfway through the period: lines -500 and +1000, 500 due.

Switching the interval (month -> year) resets the billing cycle: the unused time of every old item
is credited, every new item is charged its full price for a new period starting at the proration
date (`prorate_interval_switch`).

Promotions are discounts on an item: the percent applies to that item's debit (or full charge)
line, rounded half up like `tiers.model.Promotion.discount`, and is a separate negative line; an
amount off is capped at the line it discounts. Credits are never discounted.

Pure: no Flask, no database, no stripe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from gating.periods import add_months

SECOND = timedelta(seconds=1)


class LineKind(StrEnum):
    CREDIT = "credit"  # unused time of an old item (negative)
    DEBIT = "debit"  # remaining time of a new item
    CHARGE = "charge"  # a full period of a new item (new subscription, interval switch)
    DISCOUNT = "discount"  # a promotion on the line before it (negative)


@dataclass(frozen=True)
class Discount:
    """A promotion applied to one item: percent off (1..100) or an amount off in minor units."""

    promotion_id: str
    percent_off: int | None = None
    amount_off: int = 0
    name: str = field(default="", compare=False)  # the customer-facing name, for the line

    def off(self, amount: int) -> int:
        """The discount on a line of `amount`: percent rounds half up, never exceeds the line."""
        if amount <= 0:
            return 0
        value = (amount * self.percent_off + 50) // 100 if self.percent_off else self.amount_off
        return max(0, min(value, amount))


@dataclass(frozen=True)
class Item:
    """One subscription item: a tier's price or a recurring add-on, per period, times quantity."""

    price_id: str  # the tier or add-on id
    amount: int  # unit amount for a whole period, in minor units
    quantity: int = 1
    name: str = ""
    discount: Discount | None = None

    @property
    def total(self) -> int:
        return self.amount * self.quantity

    @property
    def label(self) -> str:
        name = self.name or self.price_id
        return f"{self.quantity} x {name}" if self.quantity != 1 else name


@dataclass(frozen=True)
class Line:
    description: str
    amount: int  # signed minor units: credits and discounts are negative
    quantity: int
    price_id: str
    period_start: datetime
    period_end: datetime
    kind: LineKind


@dataclass(frozen=True)
class Proration:
    """The lines of one change and the period the subscription is in afterwards."""

    lines: tuple[Line, ...]
    period_start: datetime
    period_end: datetime

    @property
    def total(self) -> int:
        """Signed: negative is a credit (Stripe keeps it as customer balance)."""
        return sum(line.amount for line in self.lines)

    @property
    def amount_due(self) -> int:
        """What is charged now: the total, never below zero."""
        return max(0, self.total)


def round_div(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest integer, halves away from zero."""
    if denominator == 0:
        raise ZeroDivisionError("round_div: the denominator is zero")
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


def prorate(amount: int, period_start: datetime, period_end: datetime, at: datetime) -> int:
    """`amount` for the whole period times the unused fraction after `at`, rounded (one line)."""
    _check_period(period_start, period_end, at)
    _check_amount(amount, "amount")
    return round_div(amount * _seconds(period_end - at), _seconds(period_end - period_start))


def prorate_change(
    items_before: Sequence[Item],
    items_after: Sequence[Item],
    period_start: datetime,
    period_end: datetime,
    proration_date: datetime,
) -> Proration:
    """Change the items within the period: a credit and a debit line for every changed price."""
    _check_period(period_start, period_end, proration_date)
    before, after = _by_price(items_before, "items_before"), _by_price(items_after, "items_after")
    remaining = _seconds(period_end - proration_date)
    period = _seconds(period_end - period_start)
    day = f"{proration_date:%d %b %Y}"
    lines: list[Line] = []
    for price_id in [*before, *(p for p in after if p not in before)]:
        old, new = before.get(price_id), after.get(price_id)
        if old is not None and new is not None and _same(old, new):
            continue
        if old is not None:
            credit = round_div(old.total * remaining, period)
            lines.append(
                Line(
                    f"Unused time on {old.label} after {day}",
                    -credit,
                    old.quantity,
                    price_id,
                    proration_date,
                    period_end,
                    LineKind.CREDIT,
                )
            )
        if new is not None:
            debit = round_div(new.total * remaining, period)
            line = Line(
                f"Remaining time on {new.label} after {day}",
                debit,
                new.quantity,
                price_id,
                proration_date,
                period_end,
                LineKind.DEBIT,
            )
            lines += [line, *_discount_lines(new, line)]
    return Proration(tuple(lines), period_start, period_end)


def prorate_interval_switch(
    items_before: Sequence[Item],
    items_after: Sequence[Item],
    period_start: datetime,
    period_end: datetime,
    proration_date: datetime,
    new_interval: str,
) -> Proration:
    """Switch interval (month -> year): credit the unused old time, charge a new full period now."""
    _check_period(period_start, period_end, proration_date)
    before, after = _by_price(items_before, "items_before"), _by_price(items_after, "items_after")
    remaining = _seconds(period_end - proration_date)
    period = _seconds(period_end - period_start)
    day = f"{proration_date:%d %b %Y}"
    lines = [
        Line(
            f"Unused time on {old.label} after {day}",
            -round_div(old.total * remaining, period),
            old.quantity,
            old.price_id,
            proration_date,
            period_end,
            LineKind.CREDIT,
        )
        for old in before.values()
    ]
    switched = start_period(list(after.values()), proration_date, new_interval)
    return Proration((*lines, *switched.lines), switched.period_start, switched.period_end)


def start_period(
    items: Sequence[Item], start: datetime, interval: str, end: datetime | None = None
) -> Proration:
    """A full new period of `items` from `start` (a first subscription or an interval switch);
    `end`: where it ends when the billing anchor says so (a renewal after a clamped month)."""
    _check_aware(start, "start")
    end = end or add_interval(start, interval)
    lines: list[Line] = []
    for item in _by_price(items, "items").values():
        line = Line(
            f"{item.label} ({start:%d %b %Y} - {end:%d %b %Y})",
            item.total,
            item.quantity,
            item.price_id,
            start,
            end,
            LineKind.CHARGE,
        )
        lines += [line, *_discount_lines(item, line)]
    return Proration(tuple(lines), start, end)


def add_interval(
    start: datetime, interval: str, count: int = 1, day: int | None = None
) -> datetime:
    """`start` plus `count` months or years on `day` (default: start's), clamped to the month."""
    if interval not in ("month", "year"):
        raise ValueError(f"unknown interval {interval!r}: expected 'month' or 'year'")
    return add_months(start, count * (12 if interval == "year" else 1), day)


def _discount_lines(item: Item, line: Line) -> list[Line]:
    off = item.discount.off(line.amount) if item.discount is not None else 0
    if off == 0 or item.discount is None:
        return []
    return [
        Line(
            f"{item.discount.name or 'Promotion ' + item.discount.promotion_id} on {item.label}",
            -off,
            item.quantity,
            item.price_id,
            line.period_start,
            line.period_end,
            LineKind.DISCOUNT,
        )
    ]


def _same(old: Item, new: Item) -> bool:
    return (old.amount, old.quantity, old.discount) == (new.amount, new.quantity, new.discount)


def _by_price(items: Sequence[Item], where: str) -> dict[str, Item]:
    found: dict[str, Item] = {}
    for index, item in enumerate(items):
        _check_amount(item.amount, f"{where}[{index}].amount")
        quantity = item.quantity
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
            raise ValueError(
                f"{where}[{index}].quantity must be a positive integer, not {quantity!r}"
            )
        discount = item.discount
        if (
            discount is not None
            and discount.percent_off is not None
            and not (1 <= discount.percent_off <= 100)
        ):
            raise ValueError(f"{where}[{index}].discount.percent_off must be 1..100")
        if item.price_id in found:
            raise ValueError(f"{where}: price {item.price_id!r} appears twice; use quantity")
        found[item.price_id] = item
    return found


def _check_amount(amount: object, where: str) -> None:
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise ValueError(f"{where} must be integer minor units, not {type(amount).__name__}")
    if amount < 0:
        raise ValueError(f"{where} must not be negative (got {amount})")


def _check_aware(value: datetime, where: str) -> None:
    if value.tzinfo is None:
        raise ValueError(f"{where} must be a timezone-aware datetime")


def _check_period(start: datetime, end: datetime, at: datetime) -> None:
    for value, where in ((start, "period_start"), (end, "period_end"), (at, "proration_date")):
        _check_aware(value, where)
    if _seconds(end - start) <= 0:
        raise ValueError(f"the period must end after it starts ({start} .. {end})")
    if not start <= at <= end:
        raise ValueError(f"the proration date {at} lies outside the period {start} .. {end}")


def _seconds(delta: timedelta) -> int:
    return delta // SECOND
