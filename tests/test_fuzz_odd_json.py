"""Hypothesis: odd JSON on the gate and account endpoints: never a 500, the error shape, and
nothing changed in the database by a refused request."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_bad_input_sweep import World, assert_clear_error, snapshot

pytest_plugins = ["tests.gating.api_fixtures"]

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
odd_text = st.one_of(
    st.text(max_size=20),
    st.text(alphabet=st.one_of(surrogates, st.characters()), max_size=8),
    st.sampled_from(["acme", "projects", "api_calls", "seats", "pdf_export", "k", "\u0000", "é"]),
)
odd_number = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 2, 10**12, 10**12 + 1, 2**63, -1, 1.0, 1e308, True, False]),
)
scalar = st.one_of(st.none(), st.booleans(), odd_number, odd_text)
odd_json = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(odd_text, inner, max_size=3)
    ),
    max_leaves=8,
)

VALID = {
    "/v1/check": {"account_id": "acme", "feature": "api_calls", "quantity": 1},
    "/v1/usage": {"account_id": "acme", "feature": "api_calls", "quantity": 1},
    "/v1/usage/set": {"account_id": "acme", "feature": "projects", "value": 3},
    "/v1/usage/release": {"account_id": "acme", "feature": "projects", "quantity": 1},
    "/v1/accounts/acme": {"name": "Acme", "email": "a@b.example", "metadata": {"k": 1}},
}


def _encode(body, how: str) -> bytes:
    if how == "ascii":
        return json.dumps(body, ensure_ascii=True).encode()
    # raw UTF-8, lone surrogates written as their (invalid) UTF-8 bytes
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")


@pytest.fixture
def world(app, clock, demo_catalog) -> World:
    return World(app, clock, int(demo_catalog.version))


@pytest.mark.parametrize("path", list(VALID))
def test_odd_json_is_a_clear_answer_and_a_refusal_changes_nothing(app, world, api_client, path):
    method = "PUT" if path.startswith("/v1/accounts") else "POST"

    @FUZZ
    @given(
        field=st.sampled_from([*VALID[path], "extra", "idempotency_key", None]),
        value=odd_json,
        how=st.sampled_from(["ascii", "raw"]),
        whole=st.booleans(),
    )
    def run(field, value, how, whole):
        body = value if whole else (dict(VALID[path]) | ({field: value} if field else {}))
        data = _encode(body, how)
        before = snapshot(app)
        response = api_client.open(
            method, path, data=data, headers={"Content-Type": "application/json"}
        )
        assert_clear_error(response, path)
        if response.status_code >= 400 and response.status_code != 402:
            assert snapshot(app) == before, (response.status_code, data[:200])
        # Whatever was stored can be read back as strict JSON.
        got = api_client.get("/v1/accounts/acme/entitlements")
        assert got.status_code == 200
        acct = api_client.get("/v1/accounts/acme")
        assert acct.status_code == 200
        json.loads(acct.get_data(as_text=True), parse_constant=lambda c: 1 / 0)

    run()
