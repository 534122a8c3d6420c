"""Money arithmetic: proration to the second, rounding, discount allocation. Integers only.

Rounding rule (the fake's choice, documented): every proration line is rounded on its own to
the nearest minor unit, half away from zero::

    unused = period_end - t            # seconds, t = proration_date or the clock
    length = period_end - period_start
    credit = -round_half_away(old_unit_amount * old_quantity * unused, length)
    debit  = +round_half_away(new_unit_amount * new_quantity * unused, length)

so the credit is exactly the negative of what the same line would debit (rounding is symmetric
around zero). Stripe's documented example: 10 USD -> 20 USD monthly, changed exactly halfway
through the period: credit -500, debit +1000, 500 due.

Percent-off discounts are computed per line with the same rounding; amount-off discounts are
capped at the discountable total and spread over the positive lines by the largest-remainder
method so the parts add up exactly.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction


def round_half_away(numerator: int, denominator: int = 1) -> int:
    """numerator / denominator rounded to the nearest integer, ties away from zero."""
    if denominator == 0:
        raise ZeroDivisionError("denominator is zero")
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    sign = -1 if numerator < 0 else 1
    q, r = divmod(abs(numerator), denominator)
    if 2 * r >= denominator:
        q += 1
    return sign * q


def prorate(amount: int, period_start: int, period_end: int, at: int) -> int:
    """``amount`` (for the whole period) × the unused fraction ``(end - at) / (end - start)``,
    to the second, rounded half away from zero. ``at`` is clamped into the period."""
    total = period_end - period_start
    if total <= 0:
        return 0
    remaining = min(max(period_end - at, 0), total)
    return round_half_away(amount * remaining, total)


def percent_of(amount: int, percent: Decimal | Fraction | int | str) -> int:
    """``amount × percent / 100`` rounded half away from zero, exactly (percent may be 25.5)."""
    frac = Fraction(str(percent)) * amount / 100
    return round_half_away(frac.numerator, frac.denominator)


def allocate(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` over non-negative ``weights`` proportionally, largest remainder first
    (ties to the earlier line), so that the parts sum to ``total`` exactly."""
    s = sum(weights)
    if s <= 0 or total == 0:
        return [0] * len(weights)
    shares = [total * w // s for w in weights]
    rest = total - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % s), i))
    for i in order[:rest]:
        shares[i] += 1
    return shares


def decimal_string(numerator: int, denominator: int = 1) -> str:
    """An exact-ish decimal string for a unit amount (``unit_amount_decimal``), up to 12 places."""
    d = Decimal(numerator) / Decimal(denominator)
    q = d.quantize(Decimal("1.000000000000")).normalize()
    text = format(q, "f")
    return text
