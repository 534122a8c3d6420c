"""The HTTP API against its contract (docs/integration.md) and /openapi.json: odd ids, unknown
query parameters, documented statuses, times in UTC, the docs page's links."""

from __future__ import annotations

import re

from tests.factories import add_override, make_account
from tiergate.db import get_db

pytest_plugins = ["tests.gating.api_fixtures"]

ERROR_KEYS = {"code", "message", "details"}


def _error(response):
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS, body
    return body["error"]


def test_an_override_id_of_odd_digits_is_404_not_500(app, clock, demo_catalog, make_api_client):
    """DELETE /v1/accounts/acme/overrides/² (a superscript two, which str.isdigit() accepts)
    is a 404 like any other id that is not a number, never a 500."""
    with get_db(app).session() as s:
        make_account(s, "acme", now=clock.now())
        add_override(s, "acme", "feature", feature="sso", now=clock.now())
    api = make_api_client("accounts")
    response = api.delete("/v1/accounts/acme/overrides/%C2%B2")
    assert response.status_code == 404, response.get_data(as_text=True)
    assert _error(response)["code"] == "not_found"


def test_a_misspelt_query_parameter_is_refused_by_name_not_ignored(
    app, clock, demo_catalog, make_api_client
):
    """GET /v1/offers/{id}?acount_id=other (account_id misspelt) is refused by name (422), as
    unknown body fields are: never another account's offer as if the ownership check passed."""
    with get_db(app).session() as s:
        make_account(s, "acme", now=clock.now())
        make_account(s, "other", now=clock.now())
    gate = make_api_client("gate")
    check = gate.post("/v1/check", json={"account_id": "acme", "feature": "sso"}).get_json()
    offer_id = check["offer"]["id"]
    assert gate.get(f"/v1/offers/{offer_id}?account_id=other").status_code == 404

    response = gate.get(f"/v1/offers/{offer_id}?acount_id=other")
    assert response.status_code == 422, response.get_json()
    assert "acount_id" in _error(response)["message"]


def test_a_misspelt_funnel_window_is_refused_by_name_not_ignored(demo_catalog, make_api_client):
    """GET /v1/funnel?sinse=2026-01-01T00:00:00Z (since misspelt) is refused naming `sinse`,
    not answered for the default window."""
    admin = make_api_client("admin")
    response = admin.get("/v1/funnel?sinse=2026-01-01T00:00:00Z")
    assert response.status_code == 422, response.get_json()
    assert "sinse" in _error(response)["message"]


def test_every_link_of_the_docs_page_leads_to_its_section(client):
    """/docs links each response body to its schema's section, a list answer (GET
    /v1/accounts/{id}/overrides: a list of Override) to its item's: every in-page link has a
    target."""
    html = client.get("/docs").get_data(as_text=True)
    ids = set(re.findall(r'id="([^"]+)"', html))
    broken = sorted(h for h in set(re.findall(r'href="#([^"]*)"', html)) if h not in ids)
    assert broken == []


def test_a_503_the_gate_answers_is_in_its_openapi_document(app, clock, client, make_api_client):
    """Before a catalog is published (or while the database is briefly unavailable), POST
    /v1/check answers 503: /openapi.json documents it, as for every endpoint."""
    with get_db(app).session() as s:
        make_account(s, "acme", now=clock.now())
    response = make_api_client("gate").post(
        "/v1/check", json={"account_id": "acme", "feature": "projects"}
    )
    assert response.status_code == 503
    assert _error(response)["code"] == "no_catalog"
    spec = client.get("/openapi.json").get_json()
    assert "503" in spec["paths"]["/v1/check"]["post"]["responses"]


def test_the_funnel_window_is_answered_in_utc_like_every_other_time(demo_catalog, make_api_client):
    """Every time the API answers is ISO 8601 UTC with a Z, the funnel's window too:
    GET /v1/funnel?since=2026-11-01T00:00:00+02:00 answers since "2026-10-31T22:00:00Z"."""
    admin = make_api_client("admin")
    body = admin.get("/v1/funnel?since=2026-11-01T00:00:00%2B02:00").get_json()
    assert body["since"] == "2026-10-31T22:00:00Z"
    assert body["until"].endswith("Z"), body["until"]
