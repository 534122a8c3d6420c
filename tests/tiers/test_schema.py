"""tiers/schema.py: the currencies a catalog may sell in, and the price values it accepts."""

from __future__ import annotations

import pytest

from tiers.loader import validate_catalog_text

CATALOG = """
format: 1
currencies: [{currency}]
tiers:
  - id: free
    name: Free
  - id: pro
    name: Pro
    prices:
      month: {{{currency}: {amount}}}
"""


def issues(currency: str, amount: str) -> dict[str, str]:
    document, found = validate_catalog_text(CATALOG.format(currency=currency, amount=amount))
    assert (document is None) == bool(found)
    return {i.path: i.message for i in found}


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("xxx", "Unknown Currency"),  # ISO's "no currency"
        ("xts", "Testing Currency Code"),
        ("xau", "Gold"),
        ("xdr", "Special Drawing Rights"),
        ("dem", "German Mark"),  # withdrawn
        ("hrk", "Croatian Kuna"),  # replaced by the euro
    ],
)
def test_an_iso_code_stripe_takes_no_payments_in_is_refused(code: str, name: str) -> None:
    assert issues(code, "500") == {
        "currencies[0]": f"'{code}' ({name}) is not a currency payments can be taken in: "
        "Stripe does not support it"
    }


@pytest.mark.parametrize("code", ["usd", "EUR", "jpy", "kwd", "isk", "ugx", "idr", "xof", "xcg"])
def test_a_currency_stripe_takes_payments_in_is_accepted(code: str) -> None:
    assert issues(code, "500000") == {}


def test_a_misspelt_currency_is_told_the_chargeable_one_it_is_closest_to() -> None:
    assert issues("usdd", "500")["currencies[0]"].endswith(": did you mean 'usd'?")


@pytest.mark.parametrize(
    ("written", "hint"),
    [
        ('"2900"', "write 2900 without quotes"),  # already cents: not 290000
        ("' 2900 '", "write 2900 without quotes"),
        ('"0500"', "write 500 for 0500, without the leading zero"),
        ('"19.99"', "write 1999 for 19.99"),  # a decimal is major units: scaled
        ("19.99", "write 1999 for 19.99"),
    ],
)
def test_the_hint_for_a_price_written_as_text_keeps_whole_numbers_as_written(
    written: str, hint: str
) -> None:
    assert issues("usd", written) == {
        "tiers[1].prices.month.usd": f"prices are integer minor units: {hint}"
    }


@pytest.mark.parametrize(
    ("currency", "amount", "message"),
    [
        ("usd", "100000000", "usd 1,000,000.00 is more than Stripe can charge: at most "
         "usd 999,999.99"),
        ("kwd", "100000000", "kwd 100,000.000 is more than Stripe can charge: at most "
         "kwd 99,999.990"),
        ("idr", "1000000000000", "idr 10,000,000,000.00 is more than Stripe can charge: at most "
         "idr 9,999,999,999.99"),
    ],
)  # fmt: skip
def test_a_price_above_stripes_largest_amount_is_refused(
    currency: str, amount: str, message: str
) -> None:
    assert issues(currency, amount) == {f"tiers[1].prices.month.{currency}": message}


@pytest.mark.parametrize(
    ("currency", "amount"),
    [("usd", "99999999"), ("idr", "999999999999"), ("jpy", "100000000"), ("isk", "10000000000")],
)
def test_a_price_up_to_stripes_largest_amount_is_accepted(currency: str, amount: str) -> None:
    assert issues(currency, amount) == {}


def test_an_amount_off_above_stripes_largest_amount_is_refused() -> None:
    text = CATALOG.format(currency="usd", amount="2900") + (
        "promotions:\n  - id: big\n    amount_off: {usd: 100000000}\n    tiers: [pro]\n"
    )
    document, found = validate_catalog_text(text)
    assert [(i.path, i.message) for i in found] == [
        (
            "promotions[0].amount_off.usd",
            "usd 1,000,000.00 is more than Stripe can charge: at most usd 999,999.99",
        )
    ]
