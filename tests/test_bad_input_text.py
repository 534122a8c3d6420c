"""Bad input that used to reach the database or the JSON answers: lone surrogates (not
text: no UTF-8 for them), NaN and Infinity (not JSON), non-UTF-8 command-line arguments."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.cli import billing_group
from billing.webhook_cli import webhooks_group
from gating.cli import apikey_group
from tests.billing.stripe_fixtures import fake_stripe, stripe_billing  # noqa: F401
from tests.test_bad_input_sweep import World, assert_clear_error, snapshot

pytest_plugins = ["tests.gating.api_fixtures"]


@pytest.fixture
def world(app, clock, demo_catalog) -> World:
    return World(app, clock, int(demo_catalog.version))


def _strict_json(text: str) -> Any:
    """JSON as browsers, Go, Java... read it: NaN / Infinity are not JSON."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not valid JSON")

    return json.loads(text, parse_constant=refuse)


def _text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# ---- 1. a lone surrogate in a JSON string: 500 (UnicodeEncodeError at the database) ----------

SURROGATE_CASES = [
    ("PUT", "/v1/accounts/acme", {"name": "caf\udce9"}, "name"),
    ("PUT", "/v1/accounts/newco2", {"name": "\ud800"}, "name"),
    (
        "POST",
        "/v1/accounts/acme/overrides",
        {"kind": "limit", "feature": "projects", "limit": 50, "reason": "vip \udfff"},
        "reason",
    ),
    (
        "POST",
        "/v1/usage",
        {"account_id": "acme", "feature": "api_calls", "quantity": 1, "idempotency_key": "k\ud800"},
        "idempotency_key",
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), SURROGATE_CASES)
def test_a_lone_surrogate_in_a_json_string_is_a_422_naming_the_field(
    app, world, api_client, method, path, body, field
) -> None:
    # json.loads turns the escape "\ud800" into a str that UTF-8 (sqlite3, psycopg) cannot
    # encode: it was a 500 at the database.
    before = snapshot(app)
    response = api_client.open(method, path, json=body)
    assert_clear_error(response, path)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert field in error["message"] and "lone surrogate" in error["message"]
    assert error["details"]["field"] == f"JSON field {field!r}"
    assert snapshot(app) == before


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    name=st.text(
        alphabet=st.characters(categories=["Ll", "Cs", "Zs"]), min_size=1, max_size=20
    ).filter(lambda s: not _text(json.loads(json.dumps(s))))  # as the server reads it: a
    # high surrogate followed by a low one is a pair, one valid character (an emoji)
)
def test_fuzzed_names_with_surrogates_never_fail_with_a_500(app, world, api_client, name) -> None:
    before = snapshot(app)
    response = api_client.put("/v1/accounts/acme", json={"name": name})
    assert_clear_error(response, "/v1/accounts/acme")
    assert response.status_code == 422 and snapshot(app) == before


# ---- 2. NaN / Infinity in account metadata -----------------------------------------------------


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_a_non_finite_number_is_not_json_and_never_poisons_the_account(
    app, world, api_client, literal
) -> None:
    # Python's json.loads accepts NaN / Infinity (and reads 1e400 as inf). Stored in metadata,
    # every later GET answered {"metadata": {"k": NaN}}, which no JSON parser reads (SQLite);
    # PostgreSQL refused the UPDATE: 500.
    before = snapshot(app)
    response = api_client.put(
        "/v1/accounts/acme",
        data=b'{"metadata": {"k": ' + literal + b"}}",
        headers={"Content-Type": "application/json"},
    )
    assert_clear_error(response, "/v1/accounts/acme")
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    error = response.get_json()["error"]
    assert error["code"] == "malformed_json" and "NaN, Infinity" in error["message"]
    assert snapshot(app) == before
    _strict_json(api_client.get("/v1/accounts/acme").get_data(as_text=True))


def test_a_large_but_finite_number_is_still_read(app, world, api_client) -> None:
    response = api_client.put("/v1/accounts/acme", json={"metadata": {"k": 1e300, "s": "NaN"}})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["metadata"] == {"k": 1e300, "s": "NaN"}
    _strict_json(api_client.get("/v1/accounts/acme").get_data(as_text=True))


# ---- 3. a non-UTF-8 command-line argument: traceback ------------------------------------------

# A terminal in Latin-1 (or a script passing raw bytes) gives Python "caf\udce9" for b"caf\xe9"
# (surrogateescape): it used to reach the database, and the command died with a traceback.
NON_UTF8 = "caf\udce9"


@pytest.mark.parametrize(
    "args",
    [
        ["create", "--name", NON_UTF8, "--scope", "gate"],
        ["revoke", NON_UTF8],
    ],
    ids=["create", "revoke"],
)
def test_apikey_commands_refuse_a_non_utf8_argument_without_a_traceback(
    app, demo_catalog, args
) -> None:
    before = snapshot(app)
    result = app.test_cli_runner().invoke(apikey_group, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code != 0 and "UTF-8" in result.output, result.output
    assert snapshot(app) == before


@pytest.mark.parametrize(
    ("group", "args"),
    [
        (webhooks_group, ["replay", "evt_" + NON_UTF8]),
        (billing_group, ["reconcile", "--account", NON_UTF8]),
    ],
    ids=["webhooks-replay", "billing-reconcile"],
)
def test_stripe_commands_refuse_a_non_utf8_argument_without_a_traceback(
    app,
    demo_catalog,
    stripe_billing,  # noqa: F811
    group,
    args,
) -> None:
    app.extensions["tiergate.billing"] = stripe_billing
    result = app.test_cli_runner().invoke(group, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code != 0 and "UTF-8" in result.output, result.output
