"""Every field the API answers is in /openapi.json, with a type that fits: the offer's `credit`
(it was missing from OfferSchema), the trial offer fields (amount_due_today 0, trial_end, note,
yearly_alternative with first_charge/trial_end), the 400 (NaN) and 422 (lone surrogate)
answers, nosniff, /docs."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_schema_validator import OAS30Validator

from tests.factories import make_account, set_usage
from tiergate.db import get_db

pytest_plugins = ["tests.gating.api_fixtures"]


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = spec["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    if node.get("allOf"):
        return _resolve(spec, node["allOf"][0])
    return node


def _undocumented(spec, schema, body, path="") -> list[str]:
    schema = _resolve(spec, schema)
    missing: list[str] = []
    if isinstance(body, dict) and "properties" in schema:
        for key, value in body.items():
            if key not in schema["properties"]:
                missing.append(f"{path}.{key}")
            else:
                missing += _undocumented(spec, schema["properties"][key], value, f"{path}.{key}")
    elif isinstance(body, list) and "items" in schema:
        for i, value in enumerate(body):
            missing += _undocumented(spec, schema["items"], value, f"{path}[{i}]")
    return missing


UNDOC: list[str] = []


def _check(spec, method, path, status, body):
    op = spec["paths"][path][method]
    response = op["responses"].get(str(status))
    assert response is not None, f"{method} {path} {status} not documented"
    schema = response["content"]["application/json"]["schema"]
    UNDOC.extend(f"{method} {path} {status}: {m}" for m in _undocumented(spec, schema, body))
    resolved = {"components": spec["components"], **_resolve(spec, schema)}
    OAS30Validator(resolved).validate(body)


@pytest.fixture
def spec(client):
    return client.get("/openapi.json").get_json()


def test_every_field_of_the_gate_and_offer_answers_is_documented(
    app, clock, demo_catalog, api_client, spec
):
    with get_db(app).session() as s:
        make_account(s, "acme", now=clock.now())
        set_usage(s, "acme", "projects", 3, now=clock.now())
    body = {"account_id": "acme", "feature": "projects", "quantity": 1}
    denied = api_client.post("/v1/usage", json=body)
    assert denied.status_code == 402
    offer = denied.get_json()["offer"]
    assert offer["amount_due_today"] == 0 and offer["trial_end"] and offer["note"]
    assert offer["yearly_alternative"]["first_charge"]
    _check(spec, "post", "/v1/usage", 402, denied.get_json())
    checked = api_client.post("/v1/check", json=body)
    _check(spec, "post", "/v1/check", 200, checked.get_json())
    got = api_client.get(f"/v1/offers/{offer['id']}")
    _check(spec, "get", "/v1/offers/{offer_id}", 200, got.get_json())
    ents = api_client.get("/v1/accounts/acme/entitlements")
    _check(spec, "get", "/v1/accounts/{account_id}/entitlements", 200, ents.get_json())
    bad = api_client.post(
        "/v1/usage",
        data=b'{"account_id": "acme", "feature": "projects", "quantity": NaN}',
        headers={"Content-Type": "application/json"},
    )
    assert bad.status_code == 400
    _check(spec, "post", "/v1/usage", 400, bad.get_json())
    lone = api_client.post(
        "/v1/usage",
        data=b'{"account_id": "a\\ud800", "feature": "projects", "quantity": 1}',
        headers={"Content-Type": "application/json"},
    )
    assert lone.status_code == 422
    _check(spec, "post", "/v1/usage", 422, lone.get_json())
    for name in ("X-Content-Type-Options",):
        assert bad.headers.get(name) == "nosniff"
    docs = api_client.get("/docs")
    assert docs.status_code == 200 and "trial_end" in docs.get_data(as_text=True)
    assert UNDOC == []
