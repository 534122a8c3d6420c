"""A retried POST /v1/usage answers byte-for-byte what the first call answered.

Over HTTP on both dialects: plain, nudge with offer, denial with offer,
overage allowance, unlimited, gauges, a month boundary crossed between the call and the retry,
a limit changed in between, and a key reused for another request (409)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.factories import add_override, make_account, month_start, set_usage
from tiergate.db import get_db

pytest_plugins = ["tests.gating.api_fixtures"]


@pytest.fixture
def gate(make_api_client, demo_catalog):
    return make_api_client("gate")


def _setup(app, clock, tier, feature, used):
    now = clock.now()
    with get_db(app).session() as s:
        make_account(s, "acme", now=now, tier=tier)
        if used:
            kw = {}
            if feature in ("api_calls",):
                kw["period_start"] = month_start(now)
            set_usage(s, "acme", feature, used, now=now, **kw)


CASES = [
    ("plain", None, "api_calls", 0, 5),
    ("nudge", None, "api_calls", 0, 800),
    ("denial", None, "api_calls", 995, 10),
    ("at-limit", None, "api_calls", 990, 10),
    ("overage", "pro", "api_calls", 99_990, 20),
    ("unlimited", "business", "projects", 7, 3),
    ("gauge-plain", "starter", "projects", 1, 1),
    ("gauge-nudge", "starter", "projects", 7, 1),
    ("gauge-denied", "starter", "projects", 10, 1),
    ("trial-offer", None, "projects", 3, 1),
]


@pytest.mark.parametrize(("name", "tier", "feature", "used", "quantity"), CASES)
def test_a_retry_answers_byte_for_byte(app, clock, gate, name, tier, feature, used, quantity):
    _setup(app, clock, tier, feature, used)
    body = {"account_id": "acme", "feature": feature, "quantity": quantity, "idempotency_key": "k"}
    first = gate.post("/v1/usage", json=body)
    assert first.status_code in (200, 402), first.get_data(as_text=True)
    clock.advance(seconds=5)
    again = gate.post("/v1/usage", json=body)
    header = gate.post(
        "/v1/usage",
        json={k: v for k, v in body.items() if k != "idempotency_key"},
        headers={"Idempotency-Key": "k"},
    )
    assert again.status_code == first.status_code == header.status_code
    assert again.get_data() == first.get_data() == header.get_data()
    ents = gate.get("/v1/accounts/acme/entitlements").get_json()
    expected = used + quantity if first.status_code == 200 else used
    assert ents["features"][feature]["used"] == expected


def test_a_retry_after_the_month_rolled_over_replays_and_counts_nothing_new(app, clock, gate):
    clock_now = datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)
    clock.set(clock_now)
    _setup(app, clock, None, "api_calls", 0)
    body = {"account_id": "acme", "feature": "api_calls", "quantity": 7, "idempotency_key": "k"}
    first = gate.post("/v1/usage", json=body)
    new = datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)
    clock.set(new)
    again = gate.post("/v1/usage", json=body)
    assert again.get_data() == first.get_data()
    assert (
        gate.get("/v1/accounts/acme/entitlements").get_json()["features"]["api_calls"]["used"] == 0
    )


@pytest.mark.parametrize("new_limit", [0, 3, 500, None])
def test_a_retry_after_the_limit_changed_replays(app, clock, gate, new_limit):
    _setup(app, clock, None, "api_calls", 0)
    body = {"account_id": "acme", "feature": "api_calls", "quantity": 5, "idempotency_key": "k"}
    first = gate.post("/v1/usage", json=body)
    api = gate  # the gate key cannot add overrides: add it directly
    with get_db(app).session() as s:
        add_override(s, "acme", "limit", feature="api_calls", limit=new_limit, now=clock.now())
    app.extensions["tiergate.gate_cache"].invalidate()
    again = api.post("/v1/usage", json=body)
    assert again.status_code == first.status_code
    assert again.get_data() == first.get_data()


@pytest.mark.parametrize("change", [{"feature": "projects"}, {"quantity": 6}])
def test_a_key_reused_for_another_request_is_409(app, clock, gate, change):
    _setup(app, clock, None, "api_calls", 0)
    body = {"account_id": "acme", "feature": "api_calls", "quantity": 5, "idempotency_key": "k"}
    assert gate.post("/v1/usage", json=body).status_code == 200
    other = gate.post("/v1/usage", json=body | change)
    assert other.status_code == 409, other.get_data(as_text=True)
    assert set(other.get_json()["error"]) == {"code", "message", "details"}
