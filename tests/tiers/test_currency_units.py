"""Currency minor units as Stripe reads them: how tiergate shows, validates and hints them.

Stripe's rule (docs.stripe.com/currencies, "Minor units in API amounts"): every currency is
two-decimal in the API unless it is one of the zero-decimal currencies (BIF CLP DJF GNF JPY KMF
KRW MGA PYG RWF VND VUV XAF XOF XPF) or a three-decimal one (BHD JOD KWD OMR TND), and
three-decimal amounts must end in 0. ISK and UGX stay two-decimal in the API with the decimals
always 00 (100 = 1 krona, 1 shilling). The fake Stripe API in tests/fakestripe formats amounts
by the same rule.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.billing.stripe_fixtures import (
    fake_stripe,  # noqa: F401 - a fixture
    stripe_billing,  # noqa: F401 - a fixture
)
from tests.billing.test_stripe_sync import run_sync, stripe_prices
from tests.fakestripe.billing import format_amount
from tiergate.db import get_db
from tiers import store
from tiers.checks import money as diff_money
from tiers.loader import load_catalog_text, validate_catalog_text
from tiers.money import format_money


# Currencies Stripe charges as two-decimal, to which babel/CLDR gives 0 digits.
@pytest.mark.parametrize("currency", ["idr", "huf", "cop", "isk", "ugx"])
def test_a_two_decimal_stripe_currency_is_shown_as_stripe_charges_it(currency: str) -> None:
    # A price of 1,500,000 minor units: Stripe charges 15,000.00 ("15000.00 IDR").
    assert format_amount(1_500_000, currency) == f"15000.00 {currency.upper()}"
    shown = format_money(1_500_000, currency)
    # Shown as charged (it showed "IDR1,500,000", one hundred times the amount).
    assert "15,000" in shown and "1,500,000" not in shown, shown
    # The catalog diff / publish output too.
    assert diff_money(1_500_000, currency) == f"{currency} 15,000.00"


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


def _messages(currency: str, amount: str) -> list[str]:
    document, issues = validate_catalog_text(CATALOG.format(currency=currency, amount=amount))
    assert document is None
    return [i.message for i in issues]


def test_the_hint_for_a_decimal_yen_price_does_not_multiply_it_by_100() -> None:
    # JPY has no minor unit below the yen: 1000.0 yen is written 1000 (not 100000).
    [message] = _messages("jpy", "1000.0")
    assert "write 1000 for" in message, message


def test_the_hint_for_a_decimal_dinar_price_uses_its_three_decimals() -> None:
    # 1.5 KWD is 1500 fils (not 150).
    [message] = _messages("kwd", "1.5")
    assert "write 1500 for" in message, message


def test_a_three_decimal_price_stripe_refuses_is_a_catalog_error() -> None:
    # Stripe needs three-decimal amounts to end in 0 (12.345 KWD must be 12.340 or 12.350),
    # or it refuses the tier's payments.
    assert _messages("kwd", "12345") == [
        "kwd amounts must be a multiple of 10 minor units, as Stripe charges them "
        "(kwd 12.345 cannot be charged): write 12340 or 12350"
    ]
    document, issues = validate_catalog_text(CATALOG.format(currency="kwd", amount="12340"))
    assert document is not None and not issues


def test_whole_units_show_without_decimals_and_others_keep_theirs() -> None:
    assert format_money(500, "jpy") == "¥500"
    assert format_money(2681, "kwd") == "KWD2.681"
    assert format_money(2900, "usd") == "$29.00"
    assert format_money(500, "isk") == "ISK5.00"


def test_a_fractional_shilling_price_is_a_catalog_error() -> None:
    # Stripe charges UGX in whole shillings written with two zero decimals, like ISK.
    assert _messages("ugx", "5000050") == [
        "ugx amounts must be a multiple of 100 minor units, as Stripe charges them "
        "(ugx 50,000.50 cannot be charged): write 5000000 or 5000100"
    ]
    document, issues = validate_catalog_text(CATALOG.format(currency="ugx", amount="5000000"))
    assert document is not None and not issues


def test_a_ugx_price_is_shown_as_stripe_charges_the_synced_price(
    app: Any,
    client: Any,
    clock: Any,
    fake_stripe: Any,  # noqa: F811
    stripe_billing: Any,  # noqa: F811
) -> None:
    """`ugx: 5000000` is USh 50,000 to Stripe (two decimals, always 00): the pricing page shows
    USh 50,000.00 for the Price `stripe sync` creates, not one hundred times that."""
    text = CATALOG.format(currency="ugx", amount="5000000")
    with get_db(app).session() as s:
        catalog = load_catalog_text(text)
        store.publish(s, catalog, source=text, author="t", note="t", now=clock.now())
    run_sync(app, stripe_billing)
    [price] = [p for p in stripe_prices(fake_stripe).values() if p["currency"] == "ugx"]
    assert format_amount(price["unit_amount"], "ugx") == "50000.00 UGX"
    page = client.get("/pricing?interval=month").get_data(as_text=True)
    assert "UGX50,000.00" in page and "5,000,000" not in page
