"""JSON bodies: a number Python reads as inf must be refused, however it is written."""

from __future__ import annotations

import pytest

from tests.test_bad_input_sweep import assert_clear_error, snapshot
from tests.test_bad_input_text import _strict_json, world

__all__ = ["world"]  # fixture

pytest_plugins = ["tests.gating.api_fixtures"]


@pytest.mark.parametrize(
    "literal",
    [
        b"1" + b"0" * 400 + b".0",  # a long mantissa, no exponent: float() gives inf
        b"1" + b"0" * 300 + b"e10",  # a two-digit exponent on a long mantissa: 1e310
    ],
    ids=["long-mantissa", "long-mantissa-2-digit-exponent"],
)
def test_a_number_too_large_for_a_float_is_refused_however_it_is_written(
    app, world, api_client, literal
) -> None:
    # Neither is NaN, Infinity nor a 3-digit exponent, yet both read as inf (they were stored
    # in the metadata).
    before = snapshot(app)
    response = api_client.put(
        "/v1/accounts/acme",
        data=b'{"metadata": {"k": ' + literal + b"}}",
        headers={"Content-Type": "application/json"},
    )
    assert_clear_error(response, "/v1/accounts/acme")
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert snapshot(app) == before
    _strict_json(api_client.get("/v1/accounts/acme").get_data(as_text=True))


def test_emoji_escaped_as_surrogate_pairs_are_still_text(app, world, api_client) -> None:
    # A surrogate pair (an emoji) is not a lone surrogate.
    body = b'{"name": "Acme \\ud83d\\ude00", "metadata": {"\\ud83c\\udf89": "\\uD83D\\uDE00"}}'
    response = api_client.put(
        "/v1/accounts/acme", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    answer = response.get_json()
    assert answer["name"] == "Acme \U0001f600"
    assert answer["metadata"] == {"\U0001f389": "\U0001f600"}
