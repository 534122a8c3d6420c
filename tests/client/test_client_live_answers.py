"""tiergate_client and the Flask Gate against a live tiergate.

1. GateResult carries tiergate's `message`, so the Gate's denial page and JSON (describe()) say
   what tiergate said (they made up their own text and blamed the plan for the account's own
   limit).
2. A NaN/Infinity argument is bad input, refused by the client before sending (it was retried
   and reported as TiergateUnavailable, and the Gate then treated tiergate as down for
   everyone)."""

from __future__ import annotations

import pytest
from flask import Flask, g, jsonify

from tests.client.live import live_tiergate  # noqa: F401 (fixture)
from tests.factories import add_override, set_usage
from tiergate.db import get_db
from tiergate_client import TiergateClient, TiergateError
from tiergate_client.flask import Gate


class Ticker:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def live(live_tiergate):  # noqa: F811
    client = TiergateClient(live_tiergate.url, live_tiergate.api_key, retries=2)
    client.upsert_account("acme", name="Acme")
    client.upsert_account("other", name="Other")
    yield client
    client.close()


def _host(gate: Gate, account: str = "acme") -> Flask:
    app = Flask("host")
    gate.account_loader = lambda: account
    gate.init_app(app)

    @app.post("/projects")
    @gate.consumes("projects")
    def create_project():
        return "created", 201

    @app.post("/api/tasks")
    @gate.consumes("api_calls")
    def api_task():
        return jsonify(used=g.tiergate_results["api_calls"].used)

    return app


# ---- the account's own limit is not blamed on the plan -------------------------------------


def test_a_denial_by_the_accounts_own_limit_is_not_blamed_on_the_plan_by_the_gate(app, clock, live):
    # tiergate says "...: your account's limit is reached." (change (d)); the Gate's denial page
    # and its JSON answer, built by tiergate_client.flask.describe(), say "on your plan".
    with get_db(app).session() as s:
        add_override(s, "acme", "limit", feature="projects", limit=5, now=clock.now())
        set_usage(s, "acme", "projects", 5, now=clock.now())
    raw = live.session.post(
        f"{live.base_url}/v1/usage",
        json={"account_id": "acme", "feature": "projects", "quantity": 1},
        headers=live._headers,
    ).json()
    assert "your account's limit" in raw["message"]  # what tiergate says
    assert raw["offer"] is None
    gate = Gate(client=live, clock=Ticker())
    host = _host(gate).test_client()
    page = host.post("/projects", headers={"Accept": "text/html"})
    assert page.status_code == 402
    assert "on your plan" not in page.text, page.text
    api = host.post("/projects", headers={"Accept": "application/json"})
    assert "on your plan" not in api.get_json()["error"]["message"], api.get_json()


def test_the_client_result_carries_the_message_tiergate_answers(app, clock, live):
    # docs/integration.md: "`message` says it in words you can show"; GateResult drops it.
    with get_db(app).session() as s:
        set_usage(s, "acme", "projects", 3, now=clock.now())
    result = live.consume("acme", "projects")
    assert not result.allowed
    assert getattr(result, "message", None), result


# ---- a float the JSON encoder refuses is bad input, not an outage ------------------------


def test_a_nan_quantity_is_refused_as_bad_input_not_reported_as_tiergate_down(live):
    # requests refuses to encode NaN (InvalidJSONError, a RequestException): the client retries
    # it with backoff and raises TiergateUnavailable, as if tiergate were unreachable.
    with pytest.raises(TiergateError) as caught:
        live.consume("acme", "api_calls", float("nan"))
    assert caught.value.code != "unavailable", caught.value


def test_one_nan_quantity_does_not_put_the_gate_in_outage_mode_for_everyone(live):
    # The Gate takes the TiergateUnavailable for an outage: for failure_cooldown seconds every
    # account's gate calls answer by the fail policy (a fail_open feature is open to all, a
    # metered one is refused to all), and the NaN consume itself is allowed when fail_open.
    ticker = Ticker()
    gate = Gate(client=live, clock=ticker, fail_open={"api_calls"})
    bad = gate.consume("acme", "api_calls", float("nan"))
    ticker.now += 1.0
    good = gate.consume("other", "projects", 1)  # another account, a second later
    assert (good.allowed, good.used, good.reason) == (True, 1, None), good
    assert not bad.allowed, bad
