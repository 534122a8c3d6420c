"""PUT/GET /v1/accounts/{id}, its entitlements and overrides, through HTTP."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from gating.models import Account, Override
from tests.factories import make_account
from tiergate.db import get_db
from tiers import store
from tiers.model import Catalog

pytest_plugins = ["tests.gating.api_fixtures"]

CHECK = {"account_id": "acme", "feature": "projects"}


@pytest.fixture
def accounts(make_api_client, demo_catalog):
    return make_api_client("accounts")


def _overrides(app):
    with get_db(app).sessionmaker() as s:
        return s.scalar(select(func.count()).select_from(Override))


def test_put_creates_the_account_with_201_and_returns_it(accounts, clock):
    body = {"email": "billing@acme.test", "name": "Acme", "metadata": {"crm": "hs-1"}}
    response = accounts.put("/v1/accounts/acme", json=body)
    assert response.status_code == 201
    assert response.get_json() == {
        "id": "acme",
        "email": "billing@acme.test",
        "name": "Acme",
        "metadata": {"crm": "hs-1"},
        "created_at": "2026-11-15T12:00:00Z",
        "updated_at": "2026-11-15T12:00:00Z",
        "subscription": None,
    }


def test_put_again_updates_with_200_and_keeps_the_fields_left_out(app, accounts, clock):
    accounts.put("/v1/accounts/acme", json={"email": "a@acme.test", "metadata": {"k": 1}})
    clock.advance(hours=1)
    response = accounts.put("/v1/accounts/acme", json={"name": "Acme Inc"})
    assert response.status_code == 200
    body = response.get_json()
    assert (body["email"], body["name"], body["metadata"]) == ("a@acme.test", "Acme Inc", {"k": 1})
    assert body["updated_at"] == "2026-11-15T13:00:00Z"
    with get_db(app).sessionmaker() as s:
        assert s.scalar(select(func.count()).select_from(Account)) == 1


def test_put_null_clears_a_field(accounts):
    accounts.put("/v1/accounts/acme", json={"name": "Acme"})
    assert accounts.put("/v1/accounts/acme", json={"name": None}).get_json()["name"] is None


def test_get_shows_the_subscription(app, session, clock, make_api_client, demo_catalog):
    make_account(session, "pro-co", now=clock.now(), tier="pro", period_end=clock.now())
    session.commit()
    response = make_api_client("gate").get("/v1/accounts/pro-co")
    assert response.status_code == 200
    subscription = response.get_json()["subscription"]
    assert (subscription["tier"], subscription["status"]) == ("pro", "active")
    assert subscription["current_period_end"] == "2026-11-15T12:00:00Z"


def test_entitlements_list_the_tier_limits_and_usage(make_api_client, accounts):
    accounts.put("/v1/accounts/acme", json={})
    gate = make_api_client("gate")
    gate.post("/v1/usage", json={**CHECK, "quantity": 2})
    response = gate.get("/v1/accounts/acme/entitlements")
    assert response.status_code == 200
    body = response.get_json()
    assert body["account_id"] == "acme" and body["tier"]["id"] == "free"
    projects = body["features"]["projects"]
    assert (projects["limit"], projects["used"], projects["remaining"]) == (3, 2, 1)
    assert body["features"]["api_calls"]["resets_at"] == "2026-12-01T00:00:00Z"
    assert body["features"]["pdf_export"]["enabled"] is False


def test_limit_override_is_added_listed_applied_and_removed(app, make_api_client, accounts):
    accounts.put("/v1/accounts/acme", json={})
    gate = make_api_client("gate")
    body = {"kind": "limit", "feature": "projects", "limit": 20, "reason": "design partner"}
    created = accounts.post("/v1/accounts/acme/overrides", json=body)
    assert created.status_code == 201
    override = created.get_json()
    assert (override["kind"], override["feature"], override["limit"]) == ("limit", "projects", 20)
    assert gate.post("/v1/check", json=CHECK).get_json()["limit"] == 20

    listed = accounts.get("/v1/accounts/acme/overrides")
    assert [o["id"] for o in listed.get_json()] == [override["id"]]

    removed = accounts.delete(f"/v1/accounts/acme/overrides/{override['id']}")
    assert removed.status_code == 204 and removed.data == b""
    assert gate.post("/v1/check", json=CHECK).get_json()["limit"] == 3
    assert _overrides(app) == 0


def test_removed_override_id_is_never_given_to_a_new_override(app, accounts):
    """Removing the newest override and adding another gives the new one its own id: a
    script or a retry that removes the old id again gets 404 and the new override stays."""
    accounts.put("/v1/accounts/acme", json={})
    body = {"kind": "feature", "feature": "sso", "reason": "pilot"}
    old_id = accounts.post("/v1/accounts/acme/overrides", json=body).get_json()["id"]
    assert accounts.delete(f"/v1/accounts/acme/overrides/{old_id}").status_code == 204

    body = {"kind": "limit", "feature": "projects", "limit": 20, "reason": "design partner"}
    new_id = accounts.post("/v1/accounts/acme/overrides", json=body).get_json()["id"]
    assert new_id != old_id

    again = accounts.delete(f"/v1/accounts/acme/overrides/{old_id}")
    assert again.status_code == 404
    assert again.get_json()["error"]["message"] == (
        f"Override {old_id} does not exist on account 'acme'"
    )
    listed = accounts.get("/v1/accounts/acme/overrides").get_json()
    assert [(o["id"], o["feature"], o["limit"]) for o in listed] == [(new_id, "projects", 20)]


def test_feature_override_of_a_feature_newer_than_the_pinned_catalog_is_applied(
    app, clock, make_api_client, accounts, demo_catalog
):
    with get_db(app).session() as s:
        make_account(s, "acme", now=clock.now(), tier="pro", catalog_version=demo_catalog.version)
        doc = store.load(s).catalog.to_document()
        doc["features"]["webhooks"] = {"name": "Webhooks", "type": "boolean"}
        newer = Catalog.from_document(doc)
        store.publish(s, newer, source="", author="test", note="webhooks", now=clock.now())
    gate = make_api_client("gate")
    check = {"account_id": "acme", "feature": "webhooks"}
    assert gate.post("/v1/check", json=check).get_json()["allowed"] is False

    body = {"kind": "feature", "feature": "webhooks", "reason": "pilot customer"}
    assert accounts.post("/v1/accounts/acme/overrides", json=body).status_code == 201
    assert gate.post("/v1/check", json=check).get_json()["allowed"] is True
    ents = gate.get("/v1/accounts/acme/entitlements").get_json()
    assert ents["catalog_version"] == demo_catalog.version and ents["tier"]["id"] == "pro"
    assert (ents["features"]["webhooks"]["enabled"], ents["features"]["webhooks"]["source"]) == (
        True,
        "override",
    )


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"kind": "limit", "feature": "sso", "limit": 5, "reason": "x"},
            422,
            "'sso' is a boolean feature: use kind 'feature' to grant it",
        ),
        ({"kind": "limit", "feature": "projets", "limit": 5, "reason": "x"}, 404, "'projets'"),
        ({"kind": "upgrade", "reason": "x"}, 422, "kind: Must be one of: limit, feature, "),
        ({"kind": "limit", "feature": "projects", "limit": -1, "reason": "x"}, 422, "limit: Must"),
        ({"kind": "limit", "feature": "projects", "limit": 5}, 422, "reason: Missing data"),
        (
            {"kind": "feature", "feature": "sso", "reason": "x", "expires_at": "2026-12-01T00:00"},
            422,
            "expires_at: Not a valid aware datetime.",
        ),
        (
            {"kind": "feature", "feature": "sso", "reason": "x", "expires_at": "2020-01-01T00:00Z"},
            422,
            "expires_at is in the past",
        ),
    ],
)
def test_bad_override_is_rejected_and_stores_nothing(app, accounts, body, status, message):
    accounts.put("/v1/accounts/acme", json={})
    response = accounts.post("/v1/accounts/acme/overrides", json=body)
    assert response.status_code == status
    assert message in response.get_json()["error"]["message"]
    assert _overrides(app) == 0


def test_override_of_another_account_cannot_be_removed(app, accounts):
    accounts.put("/v1/accounts/acme", json={})
    accounts.put("/v1/accounts/other", json={})
    body = {"kind": "feature", "feature": "sso", "reason": "pilot"}
    override_id = accounts.post("/v1/accounts/other/overrides", json=body).get_json()["id"]
    response = accounts.delete(f"/v1/accounts/acme/overrides/{override_id}")
    assert response.status_code == 404
    assert response.get_json()["error"]["message"] == (
        f"Override {override_id} does not exist on account 'acme'"
    )
    assert accounts.delete("/v1/accounts/acme/overrides/not-a-number").status_code == 404
    assert _overrides(app) == 1


def test_overrides_of_an_unknown_account_are_404(accounts):
    response = accounts.get("/v1/accounts/ghost/overrides")
    assert response.status_code == 404
    assert "'ghost'" in response.get_json()["error"]["message"]
