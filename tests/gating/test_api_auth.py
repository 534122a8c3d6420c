"""Bearer keys and scopes on every v1 endpoint."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gating.cli import apikey_group
from gating.models import ApiKey
from tiergate.db import get_db

pytest_plugins = ["tests.gating.api_fixtures"]

CHECK = {"account_id": "acme", "feature": "projects", "quantity": 1}

# (method, path, body, scopes that may call it besides admin)
ENDPOINTS = [
    ("PUT", "/v1/accounts/acme", {"name": "Acme"}, {"accounts"}),
    ("GET", "/v1/accounts/acme", None, {"gate", "accounts"}),
    ("GET", "/v1/accounts/acme/entitlements", None, {"gate", "accounts"}),
    (
        "POST",
        "/v1/accounts/acme/overrides",
        {"kind": "feature", "feature": "sso", "reason": "deal"},
        {"accounts"},
    ),
    ("GET", "/v1/accounts/acme/overrides", None, {"accounts"}),
    ("DELETE", "/v1/accounts/acme/overrides/999", None, {"accounts"}),
    ("POST", "/v1/check", CHECK, {"gate"}),
    ("POST", "/v1/usage", CHECK, {"gate"}),
    ("POST", "/v1/usage/set", {"account_id": "acme", "feature": "projects", "value": 1}, {"gate"}),
    ("POST", "/v1/usage/release", CHECK, {"gate"}),
    ("GET", "/v1/offers/off_missing", None, {"gate"}),
    ("POST", "/v1/offers/off_missing/events", {"type": "shown"}, {"gate"}),
]
ROUTE = {
    "/v1/accounts/acme": "/v1/accounts/{account_id}",
    "/v1/accounts/acme/entitlements": "/v1/accounts/{account_id}/entitlements",
    "/v1/accounts/acme/overrides": "/v1/accounts/{account_id}/overrides",
    "/v1/accounts/acme/overrides/999": "/v1/accounts/{account_id}/overrides/{override_id}",
    "/v1/offers/off_missing": "/v1/offers/{offer_id}",
    "/v1/offers/off_missing/events": "/v1/offers/{offer_id}/events",
}


@pytest.fixture
def acme(api_client, demo_catalog):
    assert api_client.put("/v1/accounts/acme", json={}).status_code == 201


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ENDPOINTS)
@pytest.mark.parametrize("scope", ["gate", "accounts", "admin"])
def test_scope_matrix(make_api_client, acme, method, path, body, allowed, scope):
    response = make_api_client(scope).open(method, path, json=body)
    if scope == "admin" or scope in allowed:
        assert response.status_code not in (401, 403), response.get_json()
        assert response.status_code < 500
    else:
        assert response.status_code == 403
        error = response.get_json()["error"]
        route = ROUTE.get(path, path)
        needed = " or ".join(f"'{s}'" for s in sorted(allowed, key=["gate", "accounts"].index))
        assert error == {
            "code": "forbidden",
            "message": f"this key has scope '{scope}'; {method} {route} needs {needed}",
            "details": {
                "key_scopes": [scope],
                "required_scopes": error["details"]["required_scopes"],
            },
        }


def test_gate_key_cannot_manage_accounts_and_the_message_says_which_scope(make_api_client):
    response = make_api_client("gate").put("/v1/accounts/acme", json={"name": "Acme"})
    assert response.status_code == 403
    assert response.get_json()["error"]["message"] == (
        "this key has scope 'gate'; PUT /v1/accounts/{account_id} needs 'accounts'"
    )


def test_key_with_two_scopes_may_do_both(make_api_client, demo_catalog):
    both = make_api_client("gate", "accounts")
    assert both.put("/v1/accounts/acme", json={}).status_code == 201
    assert both.post("/v1/check", json=CHECK).status_code == 200


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Missing API key: send it as the header 'Authorization: Bearer tg_...'."),
        (
            {"Authorization": ""},
            "Missing API key: send it as the header 'Authorization: Bearer tg_...'.",
        ),
        (
            {"Authorization": "Basic dXNlcjpwdw=="},
            "Malformed Authorization header: expected 'Authorization: Bearer tg_...'.",
        ),
        (
            {"Authorization": "Bearer"},
            "Malformed Authorization header: expected 'Authorization: Bearer tg_...'.",
        ),
        (
            {"Authorization": "Bearer sk_live_123"},
            "The API key is malformed: expected 'tg_' + 8 characters + '_' + the secret.",
        ),
        (
            {"Authorization": "Bearer tg_abcdefgh_" + "x" * 43},
            "The API key is not valid: no key with that prefix and secret.",
        ),
    ],
)
def test_missing_or_bad_key_is_401_with_www_authenticate(client, headers, message):
    response = client.post("/v1/check", json=CHECK, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.get_json()["error"] == {
        "code": "unauthorized",
        "message": message,
        "details": None,
    }


def test_revoked_key_is_401(app, make_api_client, acme):
    api = make_api_client("gate")
    key = api.key
    assert api.post("/v1/check", json=CHECK).status_code == 200
    result = app.test_cli_runner().invoke(apikey_group, ["revoke", key[3:11]])
    assert result.exit_code == 0, result.output
    response = api.post("/v1/check", json=CHECK)
    assert response.status_code == 401
    assert response.get_json()["error"]["message"] == f"The API key '{key[3:11]}' has been revoked."


def test_authentication_comes_before_reading_the_body(client):
    response = client.post("/v1/usage", data="{not json", content_type="application/json")
    assert response.status_code == 401


def test_requests_record_last_used_at(app, clock, make_api_client, acme):
    gate = make_api_client("gate")
    gate.post("/v1/check", json=CHECK)
    with get_db(app).sessionmaker() as s:
        assert s.scalar(select(ApiKey.last_used_at).where(ApiKey.prefix == gate.key[3:11])) == (
            clock.now()
        )


def test_openapi_document_and_docs_page_need_no_key(client):
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200
