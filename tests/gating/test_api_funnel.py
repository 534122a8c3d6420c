"""GET /v1/funnel and `tiergate funnel`: what the product team reads of the upsell funnel."""

from __future__ import annotations

import pytest

from gating.cli import funnel_command

pytest_plugins = ["tests.gating.api_fixtures"]


@pytest.fixture
def denied_offer(make_api_client, api_client, demo_catalog) -> str:
    """acme hit its free project limit; the offer was shown and clicked."""
    assert api_client.put("/v1/accounts/acme", json={}).status_code == 201
    gate = make_api_client("gate")
    body = {"account_id": "acme", "feature": "projects", "quantity": 1}
    for _ in range(3):
        gate.post("/v1/usage", json=body)
    offer_id = gate.post("/v1/usage", json=body).get_json()["offer"]["id"]
    for kind in ("shown", "clicked"):
        assert gate.post(f"/v1/offers/{offer_id}/events", json={"type": kind}).status_code == 200
    return offer_id


def test_funnel_counts_each_step_per_trigger_and_feature(api_client, denied_offer):
    response = api_client.get("/v1/funnel")
    assert response.status_code == 200
    body = response.get_json()
    total = body["total"]
    # The third project crossed the nudge threshold (a nudge offer), the fourth was denied.
    assert (total["created"], total["shown"], total["clicked"], total["paid"]) == (2, 1, 1, 0)
    assert total["conversion_bp"] == 0
    by_trigger = {r["trigger"]: (r["created"], r["shown"]) for r in body["by_trigger"]}
    assert by_trigger == {"limit_reached": (1, 1), "nudge": (1, 0)}
    assert [r["feature"] for r in body["by_feature"]] == ["projects"]


def test_funnel_window_excludes_offers_created_before_since(api_client, denied_offer):
    body = api_client.get("/v1/funnel?since=2026-11-16T00:00:00Z&until=2026-11-20T00:00:00Z")
    assert body.status_code == 200
    assert body.get_json()["total"]["created"] == 0


def test_funnel_needs_the_admin_scope(make_api_client, demo_catalog):
    response = make_api_client("gate").get("/v1/funnel")
    assert response.status_code == 403
    assert "admin" in response.get_json()["error"]["message"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=yesterday", "since"),
        ("until=2026-11-20T00:00:00", "until"),  # no offset: ambiguous, refused
        ("since=2026-11-20T00:00:00Z&until=2026-11-10T00:00:00Z", "until"),
    ],
)
def test_bad_funnel_queries_say_which_field(api_client, demo_catalog, query, field):
    response = api_client.get(f"/v1/funnel?{query}")
    assert response.status_code == 422
    assert field in response.get_json()["error"]["message"]


def test_funnel_command_prints_the_table(app, denied_offer):
    result = app.test_cli_runner().invoke(funnel_command, ["--days", "7"])
    assert result.exit_code == 0, result.output
    assert "trigger limit_reached" in result.output
    assert "feature projects" in result.output
