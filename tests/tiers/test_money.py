"""tiers/money.py: babel formatting of minor units and the yearly-saving arithmetic."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from babel.numbers import list_currencies, parse_decimal
from hypothesis import given
from hypothesis import strategies as st

from tiers.money import (
    PRESENTMENT_CURRENCIES,
    YearlySaving,
    currency_name,
    decimals,
    format_count,
    format_money,
    max_charge,
    monthly_equivalent,
    step,
    yearly_saving,
)

monthly_prices = st.integers(min_value=1, max_value=10**9)
amounts = st.integers(min_value=-(10**13), max_value=10**13)
currencies = st.sampled_from(["usd", "eur", "jpy", "kwd", "gbp", "chf"])
locales = st.sampled_from(["en_US", "de_DE", "fr_FR", "ja_JP", "en_IN"])


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (2900, "usd", "$29.00"),
        (2700, "EUR", "€27.00"),
        (1999, "usd", "$19.99"),
        (500, "jpy", "¥500"),
        (123456, "kwd", "KWD123.456"),
        (10000000, "usd", "$100,000.00"),
        (0, "usd", "$0.00"),
        (-5, "usd", "-$0.05"),
    ],
)
def test_format_money_uses_the_currencys_real_decimals(amount, currency, expected):
    assert format_money(amount, currency) == expected


def test_format_money_follows_the_locale():
    assert format_money(123456, "eur", locale="de_DE") == "1.234,56\xa0€"


@pytest.mark.parametrize("amount", [29.0, Decimal("29"), "2900", True])
def test_format_money_refuses_anything_but_integer_minor_units(amount):
    with pytest.raises(TypeError, match="integer minor units"):
        format_money(amount, "usd")


def test_jpy_has_no_decimals_and_usd_two():
    assert (decimals("jpy"), decimals("usd"), decimals("kwd")) == (0, 2, 3)


def test_ugx_like_isk_is_whole_units_written_with_two_zero_decimals():
    assert (decimals("ugx"), step("ugx")) == (decimals("isk"), step("isk")) == (2, 100)
    assert format_money(500000, "ugx") == "UGX5,000.00"


def test_every_currency_stripe_charges_in_has_a_name_and_a_format():
    known = {code.lower() for code in list_currencies()}
    assert not PRESENTMENT_CURRENCIES - known, sorted(PRESENTMENT_CURRENCIES - known)
    for code in sorted(PRESENTMENT_CURRENCIES):
        assert currency_name(code) and format_money(10000, code)


@pytest.mark.parametrize("code", ["xxx", "xts", "xau", "xag", "xdr", "xba", "dem", "hrk", "ang"])
def test_test_codes_metals_funds_and_withdrawn_currencies_are_not_charged_in(code):
    assert code not in PRESENTMENT_CURRENCIES


@pytest.mark.parametrize(
    ("currency", "largest"),
    [
        ("usd", 99_999_999),  # 999,999.99 USD: Stripe's amounts have at most eight digits
        ("KWD", 99_999_999),
        ("idr", 999_999_999_999),  # twelve digits for IDR
        ("jpy", None),  # more for these, by limits not checked
        ("isk", None),
        ("ugx", None),
        ("huf", None),
    ],
)
def test_max_charge_is_stripes_largest_amount_where_it_is_known(currency, largest):
    assert max_charge(currency) == largest


def test_format_count_groups_digits():
    assert format_count(100000) == "100,000"


def _parse_back(text: str, currency: str, locale: str) -> int:
    number = re.sub(r"[^\d.,\-\u2212\u00a0\u202f' ]", "", text).strip()
    number = number.replace("\u2212", "-")
    value = parse_decimal(number, locale=locale, strict=False)
    return int(value.scaleb(decimals(currency)))


@given(amount=amounts, currency=currencies, locale=locales)
def test_formatting_never_loses_a_minor_unit(amount, currency, locale):
    assert _parse_back(format_money(amount, currency, locale), currency, locale) == amount


@given(monthly=monthly_prices, months_paid=st.integers(min_value=1, max_value=12))
def test_saving_of_whole_months_reads_as_months_free(monthly, months_paid):
    saving = yearly_saving(monthly, months_paid * monthly)
    if months_paid == 12:
        assert saving is None
        return
    assert saving is not None
    assert saving.months_free == 12 - months_paid
    assert saving.text("usd").endswith(("months free", "1 month free"))


@given(monthly=monthly_prices, data=st.data())
def test_saving_plus_yearly_is_twelve_monthly_in_integers(monthly, data):
    yearly = data.draw(st.integers(min_value=0, max_value=12 * monthly - 1))
    saving = yearly_saving(monthly, yearly)
    assert saving is not None
    assert type(saving.amount) is int and type(saving.percent) is int
    assert saving.amount + yearly == 12 * monthly
    assert saving.percent == saving.amount * 100 // (12 * monthly)
    assert 0 <= saving.percent <= 100
    if saving.months_free is None:
        assert saving.amount % monthly != 0
        assert (
            saving.text("usd") == f"Save {format_money(saving.amount, 'usd')} ({saving.percent} %)"
        )
    else:
        assert type(saving.months_free) is int
        assert saving.months_free * monthly == saving.amount


@given(monthly=monthly_prices, extra=st.integers(min_value=0, max_value=10**9))
def test_a_yearly_price_of_twelve_months_or_more_saves_nothing(monthly, extra):
    assert yearly_saving(monthly, 12 * monthly + extra) is None


def test_partial_month_saving_shows_amount_and_percent_rounded_down():
    saving = yearly_saving(2900, 29000 + 1)
    assert saving == YearlySaving(amount=5799, percent=16, months_free=None)
    assert saving.text("usd") == "Save $57.99 (16 %)"


def test_ten_monthly_prices_a_year_is_two_months_free():
    assert yearly_saving(2900, 29000).text("usd") == "2 months free"
    assert yearly_saving(1000, 11000).text("usd") == "1 month free"


@given(yearly=st.integers(min_value=0, max_value=10**13))
def test_monthly_equivalent_rounds_half_up_in_integers(yearly):
    result = monthly_equivalent(yearly)
    assert type(result) is int
    # Exact half-up rounding of yearly / 12, checked with integer arithmetic only.
    assert 12 * result - 6 <= yearly < 12 * result + 6


def test_monthly_equivalent_examples():
    assert monthly_equivalent(29000) == 2417  # 2416.67
    assert monthly_equivalent(30) == 3  # 2.5 rounds up
    assert monthly_equivalent(18) == 2  # 1.5 rounds up
    assert monthly_equivalent(17) == 1  # 1.42
