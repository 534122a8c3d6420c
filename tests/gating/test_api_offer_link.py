"""The offer in a denial carries the customer's signed link, and that link opens the page."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

pytest_plugins = ["tests.gating.api_fixtures"]


@pytest.fixture
def gate(make_api_client, api_client, demo_catalog):
    assert api_client.put("/v1/accounts/acme", json={"name": "Acme"}).status_code == 201
    return make_api_client("gate")


def _deny(gate) -> dict:
    for _ in range(3):
        gate.post("/v1/usage", json={"account_id": "acme", "feature": "projects", "quantity": 1})
    response = gate.post(
        "/v1/usage", json={"account_id": "acme", "feature": "projects", "quantity": 1}
    )
    assert response.status_code == 402
    return response.get_json()["offer"]


def test_denial_offer_accept_url_is_a_signed_link_that_opens_the_upgrade_page(client, gate):
    offer = _deny(gate)
    url = urlsplit(offer["accept_url"])
    assert url.path == f"/offers/{offer['id']}" and "t=" in url.query
    page = client.get(f"{url.path}?{url.query}")
    assert page.status_code == 200
    assert offer["display"]["amount_due_today"] in page.get_data(as_text=True)


def test_offer_page_without_the_signed_token_is_refused(client, gate):
    offer = _deny(gate)
    assert client.get(f"/offers/{offer['id']}").status_code in (401, 403)


def test_read_offer_returns_the_same_signed_link(gate):
    offer = _deny(gate)
    again = gate.get(f"/v1/offers/{offer['id']}").get_json()
    assert urlsplit(again["accept_url"]).path == f"/offers/{offer['id']}"
    assert "t=" in urlsplit(again["accept_url"]).query
