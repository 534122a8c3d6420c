"""GET /v1/offers/{id} and POST /v1/offers/{id}/events through HTTP."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from gating.models import OfferEvent
from tiergate.db import get_db

pytest_plugins = ["tests.gating.api_fixtures"]

FOURTH_PROJECT = {"account_id": "acme", "feature": "projects", "quantity": 4}


@pytest.fixture
def gate(make_api_client, api_client, demo_catalog):
    """A `gate` client; accounts acme and other exist on the free tier."""
    api_client.put("/v1/accounts/acme", json={})
    api_client.put("/v1/accounts/other", json={})
    return make_api_client("gate")


@pytest.fixture
def offer_id(gate):
    """The offer acme got when asking for more projects than the free tier allows."""
    return gate.post("/v1/check", json=FOURTH_PROJECT).get_json()["offer"]["id"]


def _events(app):
    with get_db(app).sessionmaker() as s:
        return s.scalar(select(func.count()).select_from(OfferEvent))


def test_offer_from_a_denial_reads_with_exact_amounts(gate, offer_id):
    response = gate.get(f"/v1/offers/{offer_id}")
    assert response.status_code == 200
    offer = response.get_json()
    assert (offer["id"], offer["status"], offer["feature"]) == (offer_id, "created", "projects")
    assert offer["to"]["tier"] == "starter"
    assert offer["new_recurring_amount"] == 900 and offer["currency"] == "usd"
    assert offer["accept_url"].startswith(f"http://localhost/offers/{offer_id}?t=")
    again = gate.get(f"/v1/offers/{offer_id}?account_id=acme").get_json()
    # The signed link carries the second it was made; everything else reads the same.
    assert {**again, "accept_url": None} == {**offer, "accept_url": None}


def test_events_move_the_offer_through_its_funnel(app, gate, offer_id):
    shown = gate.post(f"/v1/offers/{offer_id}/events", json={"type": "shown"})
    assert shown.status_code == 200 and shown.get_json()["status"] == "shown"
    clicked = gate.post(
        f"/v1/offers/{offer_id}/events", json={"type": "clicked", "account_id": "acme"}
    )
    assert clicked.get_json()["status"] == "clicked"
    assert gate.get(f"/v1/offers/{offer_id}").get_json()["status"] == "clicked"
    assert _events(app) == 2


def test_dismissal_silences_the_prompt_during_the_cooldown(gate, offer_id):
    dismissed = gate.post(f"/v1/offers/{offer_id}/events", json={"type": "dismissed"})
    assert dismissed.get_json()["status"] == "dismissed"
    again = gate.post("/v1/check", json=FOURTH_PROJECT).get_json()
    assert again["allowed"] is False
    assert again["offer"] is None or again["offer"]["prompt"] is False


def test_another_accounts_offer_is_404_and_records_nothing(app, gate, offer_id):
    read = gate.get(f"/v1/offers/{offer_id}?account_id=other")
    event = gate.post(
        f"/v1/offers/{offer_id}/events", json={"type": "clicked", "account_id": "other"}
    )
    for response in (read, event):
        assert response.status_code == 404
        assert response.get_json()["error"]["message"] == f"Offer {offer_id!r} does not exist."
    assert _events(app) == 0


def test_unknown_offer_is_404_naming_it(gate):
    response = gate.post("/v1/offers/off_nope/events", json={"type": "shown"})
    assert response.status_code == 404
    assert response.get_json()["error"]["message"] == "Offer 'off_nope' does not exist."


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"type": "accepted"}, "type: Must be one of: shown, clicked, dismissed."),
        ({}, "type: Missing data for required field."),
        ({"type": "shown", "when": "now"}, "when: Unknown field."),
    ],
)
def test_bad_event_is_422_and_records_nothing(app, gate, offer_id, body, message):
    response = gate.post(f"/v1/offers/{offer_id}/events", json=body)
    assert response.status_code == 422
    assert response.get_json()["error"]["message"] == message
    assert _events(app) == 0
