"""POST /v1/accounts/{id}/billing_link: the host app's "Manage plan" button."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

pytest_plugins = ["tests.gating.api_fixtures"]


@pytest.fixture
def accounts(make_api_client, api_client, demo_catalog):
    assert api_client.put("/v1/accounts/acme", json={"name": "Acme"}).status_code == 201
    return make_api_client("accounts")


def test_the_link_opens_the_accounts_billing_page(accounts, client) -> None:
    response = accounts.post(
        "/v1/accounts/acme/billing_link", json={"return_url": "http://localhost/settings"}
    )
    assert response.status_code == 201
    body = response.get_json()
    expires = datetime.fromisoformat(body["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(hours=1))) < timedelta(minutes=1)
    link = urlsplit(body["url"])
    assert (link.scheme, link.netloc, link.path) == ("http", "localhost", "/billing")
    assert parse_qs(link.query)["return_url"] == ["http://localhost/settings"]
    page = client.get(f"{link.path}?{link.query}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "You are on the Free plan." in text and "http://localhost/settings" in text


def test_without_a_body_the_link_has_no_return_address(accounts) -> None:
    response = accounts.post("/v1/accounts/acme/billing_link")
    assert response.status_code == 201
    assert "return_url" not in parse_qs(urlsplit(response.get_json()["url"]).query)


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"return_url": "https://evil.example/phish"}, "return_url", "Must be an address on"),
        ({"return_url": "javascript:alert(1)"}, "return_url", "Not a valid URL"),
        ({"return_url": 42}, "return_url", "Not a valid"),
        ({"next": "/"}, "next", "Unknown field"),
    ],
)
def test_a_bad_return_address_is_refused_and_named(accounts, body, field, words) -> None:
    response = accounts.post("/v1/accounts/acme/billing_link", json=body)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert field in error["message"] and words in error["message"]


def test_an_unknown_account_is_404(accounts) -> None:
    response = accounts.post("/v1/accounts/nobody/billing_link", json={})
    assert response.status_code == 404
    assert "nobody" in response.get_json()["error"]["message"]


def test_a_gate_key_cannot_make_billing_links(make_api_client, accounts) -> None:
    response = make_api_client("gate").post("/v1/accounts/acme/billing_link", json={})
    assert response.status_code == 403
    assert "'accounts'" in response.get_json()["error"]["message"]
