"""Money for people: integer minor units formatted with babel, and yearly-saving arithmetic.

Amounts are always integers of the currency's minor unit (1999 USD cents, 500 JPY yen). The
only non-integer value ever built is the exact `Decimal` handed to babel for display.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from babel.numbers import (
    format_currency,
    format_decimal,
    get_currency_name,
    get_currency_precision,
)

DEFAULT_LOCALE = "en_US"
MONTHS_PER_YEAR = 12


def decimals(currency: str) -> int:
    """How many decimals the currency has (USD 2, JPY 0, KWD 3)."""
    return int(get_currency_precision(currency.upper()))


def format_money(amount: int, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """Minor units as the customer reads them: 2900, "usd" -> "$29.00"; 500, "jpy" -> "¥500"."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise TypeError(f"amount must be integer minor units, not {type(amount).__name__}")
    code = currency.upper()
    value = Decimal(amount).scaleb(-decimals(code))
    return str(format_currency(value, code, locale=locale, currency_digits=True))


def currency_name(currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """The currency's name for people: "usd" -> "US Dollar"."""
    return str(get_currency_name(currency.upper(), locale=locale))


def format_count(n: int, locale: str = DEFAULT_LOCALE) -> str:
    """An integer with the locale's grouping: 100000 -> "100,000"."""
    return str(format_decimal(n, locale=locale))


@dataclass(frozen=True)
class YearlySaving:
    """What paying yearly saves against twelve monthly payments."""

    amount: int  # minor units: 12 x monthly - yearly
    percent: int  # of twelve monthly payments, rounded down
    months_free: int | None  # set only when the saving is a whole number of monthly prices

    def text(self, currency: str, locale: str = DEFAULT_LOCALE) -> str:
        """'2 months free', or the exact amount and percent: 'Save $58.00 (16 %)'."""
        if self.months_free is not None:
            unit = "month" if self.months_free == 1 else "months"
            return f"{self.months_free} {unit} free"
        return f"Save {format_money(self.amount, currency, locale)} ({self.percent} %)"


def yearly_saving(monthly: int, yearly: int) -> YearlySaving | None:
    """The saving of a yearly price over twelve monthly ones; None when there is none."""
    twelve = MONTHS_PER_YEAR * monthly
    saving = twelve - yearly
    if monthly <= 0 or yearly < 0 or saving <= 0:
        return None
    months = saving // monthly if saving % monthly == 0 else None
    return YearlySaving(amount=saving, percent=saving * 100 // twelve, months_free=months)


def monthly_equivalent(yearly: int) -> int:
    """A yearly price per month in minor units, rounded half up (29000 -> 2417)."""
    return (2 * yearly + MONTHS_PER_YEAR) // (2 * MONTHS_PER_YEAR)
