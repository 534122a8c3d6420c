"""`tiergate catalog validate`: the hints for a price never lead to another error."""

from __future__ import annotations

import pytest

from tests.tiers.test_currency_units import _messages


@pytest.mark.parametrize(
    ("currency", "written", "hinted"),
    [
        ("isk", "1.5", "150"),  # "write 150 for 1.5", then: "isk amounts must be a multiple of 100"
        ("kwd", "12.345", "12345"),  # "write 12345", then: "must be a multiple of 10"
    ],
)
def test_the_major_units_hint_proposes_an_amount_the_catalog_accepts(
    currency: str, written: str, hinted: str
) -> None:
    [hint] = _messages(currency, written)
    if f"write {hinted} for" not in hint:
        return  # no longer proposes the refused amount
    # The product team follows the hint, and validate refuses what it proposed.
    assert _messages(currency, hinted) == [], (hint, _messages(currency, hinted))


def test_an_isk_price_below_one_krona_is_not_told_to_become_free() -> None:
    """isk: 50 (an add-on or a price written as 50 aurar): the hint proposes 0, a free plan."""
    [message] = _messages("isk", "50")
    assert "write 0 or" not in message, message
