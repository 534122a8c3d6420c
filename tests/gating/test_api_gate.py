"""POST /v1/check, /v1/usage, /v1/usage/set, /v1/usage/release through HTTP on the demo catalog."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from gating.models import Offer, UsageCounter, UsageRequest
from tiergate.db import get_db

pytest_plugins = ["tests.gating.api_fixtures"]


@pytest.fixture
def gate(make_api_client, api_client, demo_catalog):
    """A `gate` client; account acme exists on the free tier (3 projects, 1000 API calls)."""
    assert api_client.put("/v1/accounts/acme", json={"name": "Acme"}).status_code == 201
    return make_api_client("gate")


def _used(app, feature):
    with get_db(app).sessionmaker() as s:
        return s.scalar(
            select(func.sum(UsageCounter.used)).where(UsageCounter.feature_id == feature)
        )


def _body(feature="projects", quantity=1, **extra):
    return {"account_id": "acme", "feature": feature, "quantity": quantity, **extra}


def test_check_within_the_limit_is_allowed_and_records_nothing(app, gate):
    response = gate.post("/v1/check", json=_body(quantity=2))
    assert response.status_code == 200
    body = response.get_json()
    assert body["allowed"] is True
    assert (body["feature"], body["limit"], body["used"], body["remaining"]) == (
        "projects",
        3,
        0,
        3,
    )
    assert body.get("reason") is None and body.get("offer") is None
    assert not _used(app, "projects")


def test_check_over_the_limit_is_200_with_reason_and_offer(gate):
    response = gate.post("/v1/check", json=_body(quantity=4))
    assert response.status_code == 200
    body = response.get_json()
    assert body["allowed"] is False and body["reason"] == "limit_reached"
    assert body["offer"]["id"].startswith("off_")


def test_check_quantity_defaults_to_one(gate):
    body = gate.post("/v1/check", json={"account_id": "acme", "feature": "projects"}).get_json()
    assert body["allowed"] is True and body["limit"] == 3


def test_boolean_feature_outside_the_tier_is_denied_with_an_upgrade_offer(gate):
    body = gate.post("/v1/check", json=_body("pdf_export")).get_json()
    assert body["allowed"] is False and body["reason"] == "feature_not_in_tier"
    assert body["offer"]["id"].startswith("off_")


def test_usage_is_consumed_until_the_limit_then_402_with_offer_and_nothing_recorded(app, gate):
    first = gate.post("/v1/usage", json=_body(quantity=2))
    assert first.status_code == 200
    assert first.get_json()["allowed"] is True
    assert (first.get_json()["used"], first.get_json()["remaining"]) == (2, 1)
    assert gate.post("/v1/usage", json=_body()).get_json()["remaining"] == 0

    denied = gate.post("/v1/usage", json=_body())
    assert denied.status_code == 402
    body = denied.get_json()
    assert body["allowed"] is False and body["reason"] == "limit_reached"
    assert body["offer"]["id"].startswith("off_")
    assert _used(app, "projects") == 3
    with get_db(app).sessionmaker() as s:
        assert s.get(Offer, body["offer"]["id"]).account_id == "acme"


def test_idempotent_retry_via_header_returns_the_same_body_and_counts_once(app, gate):
    headers = {"Idempotency-Key": "create-project-42"}
    first = gate.post("/v1/usage", json=_body(), headers=headers)
    again = gate.post("/v1/usage", json=_body(), headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.get_json() == first.get_json()
    assert _used(app, "projects") == 1
    with get_db(app).sessionmaker() as s:
        assert s.scalar(select(UsageRequest.idempotency_key)) == "create-project-42"


def test_idempotency_key_in_the_body_works_like_the_header(app, gate):
    first = gate.post("/v1/usage", json=_body(idempotency_key="k1"))
    again = gate.post("/v1/usage", json=_body(), headers={"Idempotency-Key": "k1"})
    assert again.get_json() == first.get_json()
    assert _used(app, "projects") == 1


def test_idempotent_retry_of_a_denial_replays_the_402(app, gate):
    gate.post("/v1/usage", json=_body(quantity=3))
    headers = {"Idempotency-Key": "retry-me"}
    first = gate.post("/v1/usage", json=_body(), headers=headers)
    gate.post("/v1/usage/release", json=_body(quantity=3))
    again = gate.post("/v1/usage", json=_body(), headers=headers)
    assert first.status_code == again.status_code == 402
    assert again.get_json() == first.get_json()
    assert _used(app, "projects") == 0


def test_reusing_an_idempotency_key_for_another_request_is_409(app, gate):
    gate.post("/v1/usage", json=_body(), headers={"Idempotency-Key": "same"})
    response = gate.post("/v1/usage", json=_body(quantity=2), headers={"Idempotency-Key": "same"})
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "conflict"
    assert _used(app, "projects") == 1


def test_usage_set_sets_a_gauge_and_over_the_limit_is_402_unchanged(app, gate):
    response = gate.post(
        "/v1/usage/set", json={"account_id": "acme", "feature": "projects", "value": 2}
    )
    assert response.status_code == 200
    assert (response.get_json()["used"], response.get_json()["remaining"]) == (2, 1)
    over = gate.post(
        "/v1/usage/set", json={"account_id": "acme", "feature": "projects", "value": 9}
    )
    assert over.status_code == 402
    assert over.get_json()["reason"] == "limit_reached"
    assert _used(app, "projects") == 2


def test_usage_release_gives_units_back(app, gate):
    gate.post("/v1/usage", json=_body(quantity=3))
    response = gate.post("/v1/usage/release", json=_body(quantity=2))
    assert response.status_code == 200
    assert (response.get_json()["used"], response.get_json()["remaining"]) == (1, 2)
    assert _used(app, "projects") == 1


@pytest.mark.parametrize(
    ("feature", "quantity"), [("projects", 1), ("projects", 3), ("projects", 4), ("sso", 1)]
)
def test_decisions_are_sent_exactly_in_their_documented_schema(app, gate, feature, quantity):
    """/v1/check and /v1/usage send Decision.to_json() without a schema pass (the hot path):
    it must be what DecisionSchema (the OpenAPI document) would have produced."""
    from flask import json

    from gating import schemas, service
    from tiergate.extensions import get_clock

    with app.test_request_context():
        from gating.api import gate_settings

        with get_db(app).session() as s:
            decision = service.check(
                s, get_clock(), "acme", feature, quantity, settings=gate_settings()
            )
        raw = json.loads(json.dumps(decision.to_json()))
        documented = json.loads(json.dumps(schemas.DecisionSchema().dump(decision.to_json())))
    assert raw == documented
    sent = gate.post("/v1/check", json=_body(feature, quantity)).get_json()
    assert _unsigned(raw) == _unsigned(sent)


def _unsigned(decision):
    """The decision without its offer's accept_url (signed with the second it was made in)."""
    offer = decision.get("offer")
    return {**decision, "offer": offer and {**offer, "accept_url": None}}
