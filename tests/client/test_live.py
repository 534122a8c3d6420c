"""TiergateClient and the Gate against a LIVE tiergate (real API, demo catalog, real database)."""

from __future__ import annotations

import pytest

from tiergate_client import TiergateClient, TiergateError
from tiergate_client.flask import Gate


@pytest.fixture
def live(live_tiergate):
    client = TiergateClient(live_tiergate.url, live_tiergate.api_key)
    client.upsert_account("acme", email="ops@acme.example", name="Acme")
    yield client
    client.close()


def test_a_new_account_is_on_the_free_tier_with_its_limits(live):
    ents = live.entitlements("acme")
    assert (ents.account_id, ents.tier_id) == ("acme", "free")
    projects = ents.features["projects"]
    assert (projects.type, projects.limit, projects.used) == ("gauge", 3, 0)
    assert not ents.is_enabled("pdf_export")


def test_consuming_past_the_free_limit_is_denied_with_an_upgrade_offer(live):
    for used in (1, 2, 3):
        assert live.consume("acme", "projects").used == used
    denied = live.consume("acme", "projects")
    assert (denied.allowed, denied.reason, denied.used, denied.limit) == (
        False,
        "limit_reached",
        3,
        3,
    )
    assert denied.offer["prompt"] is True
    assert denied.offer["accept_url"].startswith("http")
    assert live.entitlements("acme").features["projects"].used == 3


def test_a_repeated_idempotency_key_counts_once(live):
    first = live.consume("acme", "api_calls", 5, idempotency_key="sync-1")
    again = live.consume("acme", "api_calls", 5, idempotency_key="sync-1")
    assert first == again
    assert live.entitlements("acme").features["api_calls"].used == 5


def test_release_gives_a_gauge_unit_back(live):
    live.consume("acme", "projects", 2)
    assert live.release("acme", "projects", 1).used == 1


def test_set_usage_sets_the_gauge(live):
    assert live.set_usage("acme", "projects", 2).used == 2


def test_a_boolean_feature_outside_the_tier_is_a_denial_result(live):
    result = live.check("acme", "pdf_export")
    assert (result.allowed, result.reason) == (False, "feature_not_in_tier")
    assert result.offer is not None


def test_unknown_feature_is_a_client_error_naming_it(live):
    with pytest.raises(TiergateError) as info:
        live.check("acme", "pdf_exports")
    assert (info.value.status, info.value.code) == (404, "not_found")
    assert "pdf_exports" in info.value.message


def test_a_wrong_key_is_refused(live_tiergate):
    client = TiergateClient(live_tiergate.url, "tg_nokey000_" + "x" * 40)
    with pytest.raises(TiergateError) as info:
        client.entitlements("acme")
    assert info.value.status == 401


def test_gate_reads_live_entitlements_through_its_cache(live):
    gate = Gate(client=live, account_loader=lambda: "acme")
    assert gate.is_enabled("acme", "projects")
    assert not gate.is_enabled("acme", "pdf_export")
    assert gate.entitlements("acme").tier_name == "Free"
