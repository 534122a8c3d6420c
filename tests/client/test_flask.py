"""The Flask Gate extension against a fake tiergate: cache, decorators, denials, outages."""

from __future__ import annotations

import logging
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask, g, jsonify

from tests.client import fake_tiergate
from tests.client.fake_tiergate import API_KEY, Fault
from tiergate_client import Entitlements, FeatureState, GateResult, TiergateClient, TiergateError
from tiergate_client.flask import REFUSED, UNAVAILABLE, Gate, describe


class Ticker:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_host(gate: Gate, account: str | None = "acct_1") -> Flask:
    app = Flask("host")
    app.config["TIERGATE_URL"] = "unused-when-a-client-is-given"
    gate.account_loader = lambda: account
    gate.init_app(app)

    @app.get("/reports/export")
    @gate.requires("pdf_export")
    def export_pdf():
        return "pdf bytes"

    @app.get("/audit")
    @gate.requires("audit_log")
    def audit():
        return "audit log"

    @app.post("/api/tasks")
    @gate.consumes("api_calls")
    def api_task():
        return jsonify(remaining=g.tiergate_results["api_calls"].remaining)

    @app.post("/projects")
    @gate.consumes("projects")
    def create_project():
        return "created", 201

    @app.post("/api/broken")
    @gate.consumes("api_calls", 2)
    def broken():
        raise RuntimeError("the host's own bug")

    return app


@pytest.fixture
def ticker():
    return Ticker()


@pytest.fixture
def gate(tg, ticker):
    return Gate(client=tg, cache_ttl=5.0, clock=ticker)


@pytest.fixture
def host(gate):
    return make_host(gate).test_client()


def test_init_app_stores_the_gate_in_extensions_and_keeps_no_app(gate):
    app = make_host(gate)
    assert app.extensions["tiergate"] is gate
    assert not hasattr(gate, "app")


def test_init_app_builds_the_client_from_settings():
    gate = Gate(account_loader=lambda: "acct_1")
    app = Flask("host")
    app.config.update(TIERGATE_URL="http://tiergate.internal:5000", TIERGATE_API_KEY=API_KEY)
    gate.init_app(app)
    assert gate.client.base_url == "http://tiergate.internal:5000"


def test_init_app_without_client_or_settings_says_what_is_missing():
    with pytest.raises(RuntimeError, match="TIERGATE_URL and TIERGATE_API_KEY"):
        Gate(Flask("host"), account_loader=lambda: "acct_1")


def test_a_feature_cannot_both_fail_open_and_fail_closed():
    with pytest.raises(ValueError, match=r"both fail_open and fail_closed: \['sso'\]"):
        Gate(fail_open={"sso", "audit_log"}, fail_closed={"sso"})


def test_boolean_checks_hit_tiergate_once_per_ttl(gate, fake, ticker):
    for _ in range(100):
        assert gate.is_enabled("acct_1", "audit_log")
        assert not gate.is_enabled("acct_1", "pdf_export")
    assert len(fake.requests_to("/v1/accounts/acct_1/entitlements")) == 1
    ticker.now += 5.0
    assert gate.is_enabled("acct_1", "audit_log")
    assert len(fake.requests_to("/v1/accounts/acct_1/entitlements")) == 2


def test_the_cache_is_bounded_dropping_the_oldest_account(tg, fake, ticker):
    for account in ("a", "b", "c"):
        fake.accounts[account] = {"id": account}
    gate = Gate(client=tg, clock=ticker, max_cached_accounts=2)
    for account in ("a", "b", "c"):
        gate.is_enabled(account, "audit_log")
    assert list(gate._cache) == ["b", "c"]


def test_required_feature_lets_the_view_run(host):
    response = host.get("/audit")
    assert (response.status_code, response.text) == (200, "audit log")


def test_missing_feature_redirects_html_to_the_offer_when_it_prompts(host, fake):
    response = host.get("/reports/export")
    assert response.status_code == 303
    assert response.location == f"{fake.url}/offers/off_pdf_export/accept"


def test_missing_feature_during_offer_cooldown_explains_without_redirecting(host, fake):
    fake.prompt = False
    response = host.get("/reports/export")
    assert response.status_code == 402
    assert "Free does not include enough pdf_export; Starter does." in response.text
    assert "Upgrade to Starter: $9.00 / month, $9.00 due today." in response.text
    assert f"{fake.url}/offers/off_pdf_export/accept" in response.text


def test_missing_feature_answers_json_402_when_the_client_asks_for_json(host):
    response = host.get("/reports/export", headers={"Accept": "application/json"})
    assert response.status_code == 402
    body = response.get_json()
    assert (body["reason"], body["error"]["code"]) == ("feature_not_in_tier", "feature_not_in_tier")
    assert body["offer"]["id"] == "off_pdf_export"


def test_a_configured_upgrade_page_replaces_the_offer_link(tg, ticker):
    gate = Gate(client=tg, clock=ticker, upgrade_url="/billing/upgrade")
    response = make_host(gate).test_client().get("/reports/export")
    assert response.status_code == 303
    assert response.location == "/billing/upgrade?feature=pdf_export&offer=off_pdf_export"


def test_an_upgrade_page_with_its_own_query_keeps_it_and_gains_feature_and_offer(tg, ticker):
    """A host's upgrade page that takes its own parameters gets them back unchanged, with the
    feature and the offer added to the same query."""
    gate = Gate(client=tg, clock=ticker, upgrade_url="/billing/upgrade?src=gate")
    response = make_host(gate).test_client().get("/reports/export")
    assert response.status_code == 303
    query = parse_qs(urlsplit(response.location).query)
    assert query == {"src": ["gate"], "feature": ["pdf_export"], "offer": ["off_pdf_export"]}


def test_no_signed_in_account_is_unauthorized(gate):
    response = make_host(gate, account=None).test_client().get("/audit")
    assert response.status_code == 401


def test_consumes_counts_every_call_at_tiergate_and_shares_the_result(host, fake):
    for remaining in (4, 3, 2, 1, 0):
        response = host.post("/api/tasks")
        assert response.get_json() == {"remaining": remaining}
    assert len(fake.requests_to("/v1/usage")) == 5


def test_consume_over_the_limit_on_an_api_route_is_a_402_with_reason_and_offer(host, fake):
    fake.used[("acct_1", "api_calls")] = 5
    response = host.post("/api/tasks")
    assert response.status_code == 402
    body = response.get_json()
    assert (body["reason"], body["used"], body["limit"]) == ("limit_reached", 5, 5)
    assert body["error"]["message"].startswith("Free does not include enough api_calls")
    assert body["offer"]["accept_url"].endswith("/offers/off_api_calls/accept")


def test_consume_over_the_limit_on_an_html_route_redirects_to_the_offer(host, fake):
    fake.used[("acct_1", "projects")] = 3
    response = host.post("/projects")
    assert response.status_code == 303
    assert response.location.endswith("/offers/off_projects/accept")


def test_units_are_given_back_when_the_view_fails(host, fake):
    assert host.post("/api/broken").status_code == 500
    assert fake.used[("acct_1", "api_calls")] == 0
    assert len(fake.requests_to("/v1/usage/release")) == 1


def test_consume_refreshes_the_cached_usage(gate, fake):
    assert gate.entitlements("acct_1").features["projects"].used == 0
    gate.consume("acct_1", "projects")
    assert gate.entitlements("acct_1").features["projects"].used == 1


def test_a_stale_cache_after_an_upgrade_does_not_block_the_view(gate, fake):
    host = make_host(gate).test_client()
    assert host.get("/reports/export").status_code == 303
    fake_tiergate.PLAN["pdf_export"]["enabled"] = True  # the account upgraded just now
    try:
        assert host.get("/reports/export").text == "pdf bytes"
    finally:
        fake_tiergate.PLAN["pdf_export"]["enabled"] = False


def _entitlements(pdf_export: bool) -> Entitlements:
    feature = FeatureState("pdf_export", "boolean", pdf_export)
    tier = "pro" if pdf_export else "free"
    return Entitlements("acct_1", tier, None, "active", 1, {"pdf_export": feature})


class SlowClient:
    """Answers entitlements as they were when asked, but only once the test lets it."""

    def __init__(self) -> None:
        self.pdf_export = True
        self.asked = threading.Event()
        self.answer = threading.Event()

    def entitlements(self, account_id: str) -> Entitlements:
        answer = _entitlements(self.pdf_export)
        self.asked.set()
        self.answer.wait(5)
        return answer


def test_an_invalidation_during_a_fetch_is_not_undone_by_its_older_answer(ticker):
    """The host drops an account's entitlements when told its plan changed; a fetch that was
    already on its way must not put the old plan back in the cache for a whole TTL."""
    client = SlowClient()
    gate = Gate(client=client, account_loader=lambda: "acct_1", cache_ttl=60.0, clock=ticker)
    reader = threading.Thread(target=gate.is_enabled, args=("acct_1", "pdf_export"))
    reader.start()
    assert client.asked.wait(5)
    client.pdf_export = False  # downgraded in tiergate ...
    gate.invalidate("acct_1")  # ... and the host is told
    client.answer.set()
    reader.join(5)
    assert gate.is_enabled("acct_1", "pdf_export") is False
    assert gate._refreshes == {}  # nothing kept once no fetch is in flight


class RefusingClient:
    def __init__(self) -> None:
        self.refuse = False

    def entitlements(self, account_id: str) -> Entitlements:
        if self.refuse:
            raise TiergateError("not_found", "Account 'acct_1' does not exist", 404)
        return _entitlements(True)


def test_entitlements_refused_on_refresh_are_none_never_the_expired_copy(ticker):
    """An account tiergate no longer knows is answered closed everywhere: its entitlements are
    None, not the old plan and usage from an expired cache entry, even when asked fresh."""
    client = RefusingClient()
    gate = Gate(client=client, account_loader=lambda: "acct_1", cache_ttl=5.0, clock=ticker)
    assert gate.entitlements("acct_1").tier_id == "pro"
    client.refuse = True
    ticker.now += 600.0
    assert gate.is_enabled("acct_1", "pdf_export") is False
    assert gate.entitlements("acct_1") is None
    assert gate.entitlements("acct_1", fresh=True) is None


def test_entitlements_are_the_answer_just_fetched_even_if_the_cache_kept_none(tg, ticker):
    """entitlements() returns what tiergate just answered, whatever the cache kept of it."""
    gate = Gate(client=tg, clock=ticker, max_cached_accounts=0)
    assert gate.entitlements("acct_1").tier_id == "free"
    assert gate._cache == {}


# -- tiergate unreachable --------------------------------------------------------------------


@pytest.fixture
def outage_gate(fake, ticker):
    client = TiergateClient(fake.url, API_KEY, timeout=0.5, retries=0)
    return Gate(client=client, clock=ticker, fail_open={"audit_log"}, failure_cooldown=2.0)


def test_unreachable_tiergate_fails_boolean_features_closed_unless_listed_open(outage_gate, fake):
    host = make_host(outage_gate).test_client()
    fake.fail_next(Fault(status=503))
    assert host.get("/audit").text == "audit log"  # listed in fail_open
    page = host.get("/reports/export")
    assert page.status_code == 503 and "temporarily unavailable" in page.text


def test_unreachable_tiergate_fails_metered_features_closed_with_a_503(outage_gate, fake):
    host = make_host(outage_gate).test_client()
    fake.fail_next(Fault(status=503))
    response = host.post("/api/tasks")
    assert response.status_code == 503
    assert response.get_json()["reason"] == UNAVAILABLE
    assert fake.used.get(("acct_1", "api_calls"), 0) == 0


def test_metered_feature_listed_open_runs_uncounted_during_an_outage(fake, ticker):
    client = TiergateClient(fake.url, API_KEY, retries=0)
    gate = Gate(client=client, clock=ticker, fail_open={"api_calls"})
    host = make_host(gate).test_client()
    fake.fail_next(Fault(status=503))
    assert host.post("/api/tasks").status_code == 200


def test_a_cdn_error_page_in_front_of_tiergate_is_an_outage_so_fail_open_applies(outage_gate, fake):
    """A CDN's 522 ("the origin is unreachable") means tiergate is down: features listed in
    fail_open stay open, rather than be refused as if tiergate had answered."""
    host = make_host(outage_gate).test_client()
    fake.fail_next(*[Fault(status=522)] * 2)  # Cloudflare: "the origin is unreachable"
    assert host.get("/audit").text == "audit log"  # listed in fail_open
    page = host.get("/reports/export")
    assert page.status_code == 503 and "temporarily unavailable" in page.text


def test_units_counted_for_a_create_whose_answer_was_lost_are_given_back_later(fake):
    """tiergate counts a project, but every answer (first try and retry, one key) arrives after
    the client's timeout: the host answers 503 and creates nothing. At its next successful
    call the Gate asks again with the same key (counting nothing twice) and gives back the
    unit, so the account does not pay for a project that does not exist."""
    client = TiergateClient(fake.url, API_KEY, timeout=0.3, retries=1)
    gate = Gate(client=client, failure_cooldown=0.0)
    fake.fail_next(Fault(stall=0.8), Fault(stall=0.8))
    response = make_host(gate).test_client().post("/projects")
    assert response.status_code == 503
    assert fake.used[("acct_1", "projects")] == 1  # counted, but the view never ran
    assert gate.is_enabled("acct_1", "audit_log")  # tiergate answers again
    assert fake.used[("acct_1", "projects")] == 0
    keys = {r["json"]["idempotency_key"] for r in fake.requests_to("/v1/usage")}
    assert len(keys) == 1 and len(fake.requests_to("/v1/usage/release")) == 1


def test_a_lost_consume_is_settled_once_and_one_never_sent_is_not_asked_again(
    outage_gate, fake, ticker
):
    """Each lost consume is asked again once, after tiergate answers again; consumes skipped
    during the failure cooldown never reached tiergate, so there is nothing to ask."""
    host = make_host(outage_gate).test_client()
    fake.fail_next(Fault(status=503))  # sent: tiergate may have counted it
    assert host.post("/projects").status_code == 503
    for _ in range(3):  # within the cooldown: not sent, nothing to settle
        assert host.post("/projects").status_code == 503
    ticker.now += 2.0
    assert host.post("/projects").status_code == 201
    assert outage_gate.is_enabled("acct_1", "audit_log")
    assert fake.used[("acct_1", "projects")] == 1  # the created project only
    assert len(fake.requests_to("/v1/usage")) == 3  # lost, created, asked again
    assert len(fake.requests_to("/v1/usage/release")) == 1


def test_after_a_failure_tiergate_is_left_alone_for_the_cooldown(outage_gate, fake, ticker):
    host = make_host(outage_gate).test_client()
    fake.fail_next(Fault(status=503))
    for _ in range(10):
        host.post("/api/tasks")
    assert len(fake.requests_to("/v1/usage")) == 1
    ticker.now += 2.0
    assert host.post("/api/tasks").status_code == 200


def test_denial_without_offer_explains_from_the_numbers():
    result = GateResult(False, "projects", limit=3, used=3, remaining=0, reason="limit_reached")
    assert describe(result) == "You have used 3 of 3 projects on your plan."
    assert describe(GateResult(False, "sso", reason="feature_not_in_tier")) == (
        "Your plan does not include sso."
    )


def test_outage_warning_is_logged_once_a_minute_not_per_request(outage_gate, fake, ticker, caplog):
    host = make_host(outage_gate).test_client()
    caplog.set_level(logging.WARNING, logger="tiergate_client")
    for _ in range(30):  # 30 failures over 58 seconds
        fake.fail_next(Fault(status=503))
        host.post("/api/tasks")
        ticker.now += 2.0
    warnings = [r for r in caplog.records if r.name == "tiergate_client"]
    assert len(warnings) == 1
    assert "failing open for: audit_log" in warnings[0].getMessage()
    ticker.now += 2.0
    fake.faults.clear()
    fake.fail_next(Fault(status=503))
    host.post("/api/tasks")
    assert len([r for r in caplog.records if r.name == "tiergate_client"]) == 2


def test_an_account_tiergate_does_not_know_is_answered_closed_and_logged_not_a_500(
    gate, fake, caplog
):
    """A signed-in user whose account was never created in tiergate (a host-app bug): the
    pages refuse with a plain 403, the API with JSON, and the error is logged for the
    operator; nothing fails open and nothing is counted."""
    host = make_host(gate, account="nobody").test_client()
    caplog.set_level(logging.ERROR, logger="tiergate_client")
    page = host.get("/reports/export")
    assert page.status_code == 403 and "could not be checked" in page.text
    assert gate.is_enabled("nobody", "audit_log") is False
    response = host.post("/api/tasks")
    assert response.status_code == 403
    assert response.get_json()["reason"] == REFUSED
    assert "does not exist" in caplog.text and "nobody" in caplog.text
    # tiergate itself is fine: the others are not failed over
    assert make_host(gate).test_client().get("/reports/export").status_code in (200, 303, 402)
