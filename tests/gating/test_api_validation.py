"""Every bad input to the v1 API: a 4xx naming the field, the error shape, nothing changed."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from gating.models import Account, Offer, OfferEvent, Override, UsageCounter, UsageRequest
from tiergate.db import get_db

pytest_plugins = ["tests.gating.api_fixtures"]

ACCOUNT_ID_RULE = "account_id: Use 1 to 128 characters of letters, digits and _ . : @ -"
TABLES = (Account, Override, UsageCounter, UsageRequest, Offer, OfferEvent)


def _state(app) -> dict[str, object]:
    """Row counts and usage values: what a rejected request must leave untouched."""
    with get_db(app).sessionmaker() as s:
        counts = {t.__tablename__: s.scalar(select(func.count()).select_from(t)) for t in TABLES}
        used = s.execute(select(UsageCounter.feature_id, UsageCounter.used)).all()
        accounts = s.execute(select(Account.id, Account.email, Account.name)).all()
    return {"counts": counts, "used": sorted(used), "accounts": sorted(accounts)}


@pytest.fixture
def gate(make_api_client, api_client, demo_catalog):
    """A `gate` client, with account acme on the free tier and 2 of its 3 projects used."""
    assert api_client.put("/v1/accounts/acme", json={"email": "a@acme.test"}).status_code == 201
    gate = make_api_client("gate")
    response = gate.post(
        "/v1/usage", json={"account_id": "acme", "feature": "projects", "quantity": 2}
    )
    assert response.status_code == 200, response.get_json()
    return gate


def _error(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return body["error"]


BAD_QUANTITIES = [
    ("5", "quantity: Must be a whole number (a JSON integer, not a string, boolean or decimal)."),
    (True, "quantity: Must be a whole number (a JSON integer, not a string, boolean or decimal)."),
    (5.0, "quantity: Must be a whole number (a JSON integer, not a string, boolean or decimal)."),
    (None, "quantity: Field may not be null."),
    (0, "quantity: Must be greater than or equal to 1 and less than or equal to 1000000000000."),
    (-3, "quantity: Must be greater than or equal to 1 and less than or equal to 1000000000000."),
    (
        10**12 + 1,
        "quantity: Must be greater than or equal to 1 and less than or equal to 1000000000000.",
    ),
    (
        10**30,
        "quantity: Must be greater than or equal to 1 and less than or equal to 1000000000000.",
    ),
]


@pytest.mark.parametrize("path", ["/v1/check", "/v1/usage", "/v1/usage/release"])
@pytest.mark.parametrize(("quantity", "message"), BAD_QUANTITIES)
def test_bad_quantity_is_422_naming_the_field_and_changes_nothing(
    app, gate, path, quantity, message
):
    before = _state(app)
    body = {"account_id": "acme", "feature": "projects", "quantity": quantity}
    error = _error(gate.post(path, json=body), 422)
    assert error["code"] == "invalid_request"
    assert error["message"] == message
    assert "quantity" in error["details"]
    assert _state(app) == before


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "value: Must be greater than or equal to 0 and less than or equal to 1000000000000."),
        ("2", "value: Must be a whole number (a JSON integer, not a string, boolean or decimal)."),
        (
            False,
            "value: Must be a whole number (a JSON integer, not a string, boolean or decimal).",
        ),
    ],
)
def test_bad_gauge_value_is_422_and_changes_nothing(app, gate, value, message):
    before = _state(app)
    body = {"account_id": "acme", "feature": "projects", "value": value}
    assert _error(gate.post("/v1/usage/set", json=body), 422)["message"] == message
    assert _state(app) == before


def test_missing_fields_are_each_named(app, gate):
    before = _state(app)
    error = _error(gate.post("/v1/usage", json={"feature": "projects"}), 422)
    assert error["message"] == (
        "account_id: Missing data for required field.; quantity: Missing data for required field."
    )
    assert _state(app) == before


def test_unknown_fields_are_rejected_by_name(app, gate):
    before = _state(app)
    body = {"account_id": "acme", "feature": "projects", "quantity": 1, "qty": 1, "force": True}
    error = _error(gate.post("/v1/usage", json=body), 422)
    assert "qty: Unknown field." in error["message"] and "force: Unknown field." in error["message"]
    assert _state(app) == before


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("account_id", "", ACCOUNT_ID_RULE),
        ("account_id", "a" * 129, ACCOUNT_ID_RULE),
        ("account_id", "has space", ACCOUNT_ID_RULE),
        ("account_id", "acme/../x", ACCOUNT_ID_RULE),
        ("account_id", 42, "account_id: Not a valid string."),
        ("feature", "f" * 65, "feature: Length must be between 1 and 64."),
        ("feature", ["projects"], "feature: Not a valid string."),
    ],
)
def test_bad_ids_are_422_naming_the_field(app, gate, field, value, message):
    before = _state(app)
    body = {"account_id": "acme", "feature": "projects", "quantity": 1, field: value}
    assert _error(gate.post("/v1/check", json=body), 422)["message"] == message
    assert _state(app) == before


def test_malformed_json_is_400_malformed_json(app, gate):
    before = _state(app)
    response = gate.post(
        "/v1/usage", data='{"account_id": "acme", "quantity": 1', content_type="application/json"
    )
    error = _error(response, 400)
    assert error["code"] == "malformed_json"
    assert error["message"].startswith("The request body is not valid JSON (line 1, column")
    assert _state(app) == before


@pytest.mark.parametrize("payload", ["[1, 2]", '"acme"', "5", "null"])
def test_json_that_is_not_an_object_is_422_saying_so(app, gate, payload):
    before = _state(app)
    response = gate.post("/v1/usage", data=payload, content_type="application/json")
    error = _error(response, 422)
    assert error["message"] == "The request body must be a JSON object."
    assert _state(app) == before


def test_wrong_content_type_is_415_naming_the_expected_one(app, gate):
    before = _state(app)
    response = gate.post(
        "/v1/usage",
        data='{"account_id": "acme", "feature": "projects", "quantity": 1}',
        content_type="text/plain",
    )
    error = _error(response, 415)
    assert error["code"] == "unsupported_media_type"
    assert (
        "'Content-Type: application/json'" in error["message"] and "text/plain" in error["message"]
    )
    assert _state(app) == before


def test_unknown_account_is_404_naming_it(app, gate):
    before = _state(app)
    body = {"account_id": "ghost", "feature": "projects", "quantity": 1}
    error = _error(gate.post("/v1/usage", json=body), 404)
    assert "'ghost'" in error["message"] and "PUT /v1/accounts/ghost" in error["message"]
    assert _state(app) == before


def test_unknown_feature_is_404_naming_it(app, gate):
    before = _state(app)
    body = {"account_id": "acme", "feature": "projets", "quantity": 1}
    error = _error(gate.post("/v1/usage", json=body), 404)
    assert "'projets'" in error["message"] and "projects" in error["message"]  # did you mean
    assert _state(app) == before


def test_idempotency_key_in_header_and_body_must_agree(app, gate):
    before = _state(app)
    body = {"account_id": "acme", "feature": "projects", "quantity": 1, "idempotency_key": "a"}
    response = gate.post("/v1/usage", json=body, headers={"Idempotency-Key": "b"})
    error = _error(response, 422)
    assert error["message"] == (
        "idempotency_key: Differs from the Idempotency-Key header: send one or the other."
    )
    assert _state(app) == before


def test_overlong_idempotency_header_is_422(app, gate):
    before = _state(app)
    body = {"account_id": "acme", "feature": "projects", "quantity": 1}
    response = gate.post("/v1/usage", json=body, headers={"Idempotency-Key": "k" * 256})
    assert _error(response, 422)["message"] == "Idempotency-Key: Must be 1 to 255 characters."
    assert _state(app) == before


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"email": "not-an-email"}, "email: Not a valid email address."),
        ({"name": "n" * 201}, "name: Longer than maximum length 200."),
        ({"metadata": "x"}, "metadata: Not a valid mapping type."),
        ({"metadata": {str(i): i for i in range(51)}}, "metadata: At most 50 keys."),
        ({"plan": "pro"}, "plan: Unknown field."),
    ],
)
def test_bad_account_fields_are_422_and_change_nothing(
    app, api_client, demo_catalog, body, message
):
    api_client.put("/v1/accounts/acme", json={"email": "a@acme.test", "name": "Acme"})
    before = _state(app)
    error = _error(api_client.put("/v1/accounts/acme", json=body), 422)
    assert error["message"] == message
    assert _state(app) == before


def test_account_id_in_the_path_is_validated_like_the_body_field(app, api_client):
    error = _error(api_client.put("/v1/accounts/" + "a" * 129, json={}), 422)
    assert error["message"] == ACCOUNT_ID_RULE
    assert _state(app)["counts"]["accounts"] == 0


def test_unknown_account_on_read_is_404_naming_it(api_client):
    error = _error(api_client.get("/v1/accounts/ghost"), 404)
    assert "'ghost'" in error["message"]
