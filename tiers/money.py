"""Money for people: integer minor units formatted with babel, and yearly-saving arithmetic.

Amounts are always integers of the currency's minor unit (1999 USD cents, 500 JPY yen). The
only non-integer value ever built is the exact `Decimal` handed to babel for display.
"""

from __future__ import annotations

import functools
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


# The currencies Stripe charges in (https://docs.stripe.com/currencies, "Supported presentment
# currencies", and the three-decimal BHD JOD KWD OMR TND), less ANG and STD, which CLDR marks as
# no longer in use (replaced by XCG and STN). Not ISO 4217's list: that one also holds test
# codes (XTS, XXX), precious metals (XAU), funds (XDR) and withdrawn currencies (DEM, HRK).
PRESENTMENT_CURRENCIES = frozenset(
    """
    aed afn all amd aoa ars aud awg azn bam bbd bdt bhd bif bmd bnd bob brl bsd bwp byn bzd cad
    cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp gel gip gmd gnf gtq
    gyd hkd hnl htg huf idr ils inr isk jmd jod jpy kes kgs khr kmf krw kwd kyd kzt lak lbp lkr
    lrd lsl mad mdl mga mkd mmk mnt mop mur mvr mwk mxn myr mzn nad ngn nio nok npr nzd omr pab
    pen pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr sek sgd shp sle sos srd szl thb tjs
    tnd top try ttd twd tzs uah ugx usd uyu uzs vnd vuv wst xaf xcd xcg xof xpf yer zar zmw
    """.split()  # noqa: SIM905 - 137 codes read better as a block than one per line
)

# Stripe's minor units (https://docs.stripe.com/currencies): every currency has two decimals
# except these. Not ISO 4217's (which babel follows): Stripe keeps two for IDR, HUF, ISK, COP...
# and for UGX and ISK, whole units written with two zero decimals (see STEP).
ZERO_DECIMAL = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)
THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])
# Amounts Stripe accepts only in steps of this many minor units: three-decimal currencies
# end in 0; ISK and UGX are charged in whole krónur and shillings, written with two zero
# decimals (500 is ISK 5, UGX 5).
STEP = {**dict.fromkeys(THREE_DECIMAL, 10), "isk": 100, "ugx": 100}
# The largest amount Stripe takes, in minor units: eight digits (999,999.99 USD), twelve for
# IDR. Stripe allows more for a few others (HUF, INR, COP, LBP) and the whole-unit currencies
# (zero-decimal, ISK, UGX) by limits not confirmed here: those get no maximum (None).
MAX_CHARGE = 99_999_999
MAX_CHARGE_BY_CURRENCY: dict[str, int | None] = {
    "idr": 999_999_999_999,
    **dict.fromkeys(["huf", "inr", "cop", "lbp", "isk", "ugx", *ZERO_DECIMAL]),
}


def decimals(currency: str) -> int:
    """How many decimals the currency's minor units have, as Stripe counts them (USD 2,
    JPY 0, KWD 3)."""
    code = currency.lower()
    return 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2


def step(currency: str) -> int:
    """The minor units an amount in `currency` must be a multiple of (1 for most)."""
    return STEP.get(currency.lower(), 1)


def max_charge(currency: str) -> int | None:
    """The largest amount Stripe takes in `currency`, in minor units (99999999 for USD); None
    where its limit is higher and not known here."""
    return MAX_CHARGE_BY_CURRENCY.get(currency.lower(), MAX_CHARGE)


def format_money(amount: int, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """Minor units as the customer reads them: 2900, "usd" -> "$29.00"; 500, "jpy" -> "¥500".
    Never rounded: the amount shown is the amount charged."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise TypeError(f"amount must be integer minor units, not {type(amount).__name__}")
    return _formatted(int(amount), currency, locale)


@functools.lru_cache(maxsize=4096)  # an offer shows a dozen amounts; the formatter is slow
def _formatted(amount: int, currency: str, locale: str) -> str:
    code = currency.upper()
    digits = decimals(code)
    value = Decimal(amount).scaleb(-digits)
    if digits == get_currency_precision(code):
        return str(format_currency(value, code, locale=locale, currency_digits=True))
    # Stripe counts more decimals than ISO (IDR 2, ISO 0): show them all, exactly.
    places = Decimal(1).scaleb(-digits)
    return str(
        format_currency(
            value.quantize(places),
            code,
            locale=locale,
            currency_digits=False,
            decimal_quantization=False,
        )
    )


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
