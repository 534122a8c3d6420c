"""Signed customer links and return-URL validation."""

from __future__ import annotations

import pytest

from billing import portal
from tiergate.exceptions import Forbidden

CONFIG = {"SECRET_KEY": "s" * 32, "BASE_URL": "https://billing.trackly.example"}


def test_an_offer_link_carries_the_account_and_opens_only_its_offer() -> None:
    link = portal.offer_link(
        CONFIG, "acme", "off_1", return_url="https://billing.trackly.example/x"
    )
    assert link.startswith("https://billing.trackly.example/offers/off_1?t=")
    token = link.split("t=")[1].split("&")[0]
    assert portal.read_offer_token(CONFIG, token, "off_1") == "acme"
    with pytest.raises(Forbidden, match="not valid for this offer"):
        portal.read_offer_token(CONFIG, token, "off_2")


def test_a_link_signed_with_another_key_or_salt_is_refused() -> None:
    other = portal.offer_token({**CONFIG, "SECRET_KEY": "x" * 32}, "acme", "off_1")
    with pytest.raises(Forbidden, match="not valid"):
        portal.read_offer_token(CONFIG, other, "off_1")
    account = portal.account_token(CONFIG, "acme")
    with pytest.raises(Forbidden):
        portal.read_offer_token(CONFIG, account, "off_1")


def test_an_expired_link_is_refused() -> None:
    token = portal.account_token(CONFIG, "acme")
    with pytest.raises(Forbidden, match="expired"):
        portal.read_account_token({**CONFIG, "BILLING_LINK_MAX_AGE": -1}, token)


def test_a_missing_token_says_what_is_missing() -> None:
    with pytest.raises(Forbidden, match="`t` parameter is missing"):
        portal.read_account_token(CONFIG, "")


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://billing.trackly.example/done", True),
        ("https://BILLING.trackly.example/done", True),
        ("http://billing.trackly.example/done", False),
        ("https://billing.trackly.example.evil.example/", False),
        ("//evil.example/", False),
        ("/relative", False),
        ("javascript:alert(1)", False),
        ("https://evil.example\\@billing.trackly.example/", False),
        ("", False),
    ],
)
def test_return_urls_must_stay_on_an_allowed_origin(url: str, allowed: bool) -> None:
    assert (portal.safe_return_url(CONFIG, url) == url) is allowed
