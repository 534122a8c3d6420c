"""TIERGATE_BILLING_RETURN_ORIGINS: the origins the customer pages may send customers back to
and be framed by. It goes into every page's Content-Security-Policy as written."""

from __future__ import annotations

import pytest

from tiergate import create_app
from tiergate.config import ConfigError


@pytest.mark.parametrize(
    "value",
    [
        "app.example.com",  # no scheme: becomes "://" in the CSP, and matches no return_url
        "https://app.example.com https://evil.example",  # a space, not a comma: two sources
        "https://app.example.com; frame-ancestors *",  # ends up inside the header as written
    ],
)
def test_a_malformed_return_origin_fails_at_start(database_url, schema, clock, value) -> None:  # type: ignore[no-untyped-def]
    """An invalid setting fails at start with one line naming it (README): an origin without
    a scheme, a space-separated list (which would let a second site frame the pages), or a ";"
    (which would end up inside the Content-Security-Policy header)."""
    with pytest.raises(ConfigError, match="BILLING_RETURN_ORIGINS"):
        create_app(
            {
                "TESTING": True,
                "DATABASE_URL": database_url,
                "SECRET_KEY": "test-secret-key-not-for-production",
                "CLOCK": clock,
                "BASE_URL": "http://localhost",
                "BILLING_RETURN_ORIGINS": value,
            }
        )


def test_comma_separated_origins_with_ports_are_accepted(database_url, schema, clock) -> None:  # type: ignore[no-untyped-def]
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test-secret-key-not-for-production",
            "CLOCK": clock,
            "BASE_URL": "http://localhost",
            "BILLING_RETURN_ORIGINS": "https://app.example.com, http://localhost:3000",
        }
    )
    assert app.config["BILLING_RETURN_ORIGINS"]
