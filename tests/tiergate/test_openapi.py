"""The OpenAPI document at /openapi.json and the self-contained docs page at /docs."""

from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate

V1_OPERATIONS = {
    ("put", "/v1/accounts/{account_id}"),
    ("get", "/v1/accounts/{account_id}"),
    ("get", "/v1/accounts/{account_id}/entitlements"),
    ("post", "/v1/accounts/{account_id}/overrides"),
    ("get", "/v1/accounts/{account_id}/overrides"),
    ("delete", "/v1/accounts/{account_id}/overrides/{override_id}"),
    ("post", "/v1/check"),
    ("post", "/v1/usage"),
    ("post", "/v1/usage/set"),
    ("post", "/v1/usage/release"),
    ("get", "/v1/offers/{offer_id}"),
    ("post", "/v1/offers/{offer_id}/events"),
}
METHODS = {"get", "put", "post", "patch", "delete"}


@pytest.fixture
def spec(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def _operations(spec):
    return {
        (method, path): op
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }


def test_document_is_valid_openapi_3(spec):
    assert spec["openapi"].startswith("3.")
    validate(spec)


def test_every_v1_endpoint_is_documented(spec):
    assert set(_operations(spec)) >= V1_OPERATIONS


def test_every_route_of_the_api_blueprints_is_in_the_document(app, spec):
    documented = set(_operations(spec))
    blueprints = set(app.extensions["flask-smorest"]["blp_name_to_api"])
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in blueprints:
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods & {m.upper() for m in METHODS}:
            assert (method.lower(), path) in documented


def test_bearer_scheme_and_scopes_are_on_every_v1_operation(spec):
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: tg_<prefix>_<secret>",
    }
    for key in V1_OPERATIONS:
        op = _operations(spec)[key]
        assert op["security"] == [{"bearerAuth": []}], key
        assert set(op["x-required-scopes"]) <= {"gate", "accounts"}, key


def test_error_schema_is_documented_on_every_v1_operation(spec):
    error = {"$ref": "#/components/schemas/Error"}
    for key in V1_OPERATIONS:
        responses = _operations(spec)[key]["responses"]
        for status in ("401", "403"):
            assert responses[status]["content"]["application/json"]["schema"] == error, key
        assert responses["default"] == {"$ref": "#/components/responses/DEFAULT_ERROR"}
    body = spec["components"]["schemas"]["ErrorBody"]
    assert set(body["properties"]) == {"code", "message", "details"}
    default = spec["components"]["responses"]["DEFAULT_ERROR"]
    assert default["content"]["application/json"]["schema"] == error


def test_every_operation_with_an_id_in_its_path_documents_the_422_for_a_bad_id(spec):
    # A NUL character (or another unusable id) in the path is refused with a 422 naming it.
    for key in V1_OPERATIONS:
        method, path = key
        if "{" in path:
            assert "422" in _operations(spec)[key]["responses"], key


def test_request_schemas_reject_unknown_fields_and_bound_quantities(spec):
    schemas = spec["components"]["schemas"]
    for name in ("Check", "Usage", "UsageSet", "UsageRelease", "AccountUpsert", "OfferEvent"):
        assert schemas[name]["additionalProperties"] is False, name
    quantity = schemas["Usage"]["properties"]["quantity"]
    assert (quantity["type"], quantity["minimum"], quantity["maximum"]) == ("integer", 1, 10**12)
    assert schemas["UsageSet"]["properties"]["value"]["minimum"] == 0
    assert schemas["Usage"]["required"] == ["account_id", "feature", "quantity"]


def test_usage_documents_the_402_denial_and_the_idempotency_header(spec):
    op = _operations(spec)[("post", "/v1/usage")]
    assert op["responses"]["402"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Decision"
    }
    assert any(p["in"] == "header" and p["name"] == "Idempotency-Key" for p in op["parameters"])


def test_docs_page_lists_every_endpoint_without_third_party_scripts(client):
    response = client.get("/docs")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for method, path in V1_OPERATIONS:
        assert f'{method.upper()}</span> <span class="path">{path}</span>' in html
    assert "Authorization: Bearer tg_..." in html
    assert "quantity" in html and "Idempotency-Key" in html
    assert "<script" not in html and "cdn" not in html.lower()
