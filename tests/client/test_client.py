"""TiergateClient against a fake tiergate: results, errors, retries, idempotency, keep-alive."""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.client.fake_tiergate import API_KEY, Fault
from tiergate_client import (
    Entitlements,
    GateResult,
    TiergateClient,
    TiergateError,
    TiergateUnavailable,
)


def test_check_answers_with_limit_usage_and_remaining(tg):
    result = tg.check("acct_1", "projects", 2)
    assert result == GateResult(True, "projects", limit=3, used=0, remaining=3)


def test_consume_at_limit_is_a_denial_result_with_the_offer_not_an_exception(tg, fake):
    for _ in range(3):
        assert tg.consume("acct_1", "projects").allowed
    denied = tg.consume("acct_1", "projects")
    assert denied.allowed is False
    assert (denied.reason, denied.used, denied.limit) == ("limit_reached", 3, 3)
    assert denied.offer["accept_url"].endswith("/offers/off_projects/accept")
    assert fake.used[("acct_1", "projects")] == 3


def test_consume_sends_a_fresh_idempotency_key_per_call_unless_given(tg, fake):
    tg.consume("acct_1", "api_calls")
    tg.consume("acct_1", "api_calls")
    tg.consume("acct_1", "api_calls", idempotency_key="import-42")
    keys = [r["json"]["idempotency_key"] for r in fake.requests_to("/v1/usage")]
    assert keys[0] != keys[1] and keys[2] == "import-42"


def test_consume_whose_answer_was_lost_is_retried_with_the_same_key_and_counts_once(tg, fake):
    fake.fail_next(Fault(stall=1.5))  # handled, but the answer arrives after the 0.5 s timeout
    result = tg.consume("acct_1", "api_calls", 2)
    sent = fake.requests_to("/v1/usage")
    assert len(sent) == 2
    assert sent[0]["json"]["idempotency_key"] == sent[1]["json"]["idempotency_key"]
    assert (result.allowed, result.used) == (True, 2)
    assert fake.used[("acct_1", "api_calls")] == 2


def test_server_errors_are_retried_then_succeed(tg, fake):
    fake.fail_next(Fault(status=503), Fault(status=500))
    assert tg.check("acct_1", "audit_log").allowed
    assert len(fake.requests_to("/v1/check")) == 3


def test_persistent_server_errors_raise_unavailable_after_the_retries(tg, fake):
    fake.fail_next(*[Fault(status=502)] * 3)
    with pytest.raises(TiergateUnavailable) as info:
        tg.check("acct_1", "audit_log")
    assert info.value.status == 502 and "after 3 attempts" in info.value.message
    assert len(fake.requests_to("/v1/check")) == 3


@pytest.mark.parametrize("status", [520, 522, 524])
def test_a_cdn_error_page_in_front_of_tiergate_is_retried_then_raises_unavailable(tg, fake, status):
    """A CDN in front of a tiergate that is down answers 52x (Cloudflare's "origin
    unreachable"): every 5xx is an outage, retried and then reported as one, not a refusal."""
    fake.fail_next(*[Fault(status=status)] * 3)
    with pytest.raises(TiergateUnavailable) as info:
        tg.check("acct_1", "audit_log")
    assert info.value.status == status and "after 3 attempts" in info.value.message
    assert len(fake.requests_to("/v1/check")) == 3


def test_too_many_requests_is_retried_after_the_retry_after_delay(tg, fake):
    fake.fail_next(Fault(status=429, retry_after="0.1"))
    assert tg.check("acct_1", "audit_log").allowed
    assert len(fake.requests_to("/v1/check")) == 2


@pytest.mark.parametrize(
    ("account", "feature", "code", "status"),
    [("nobody", "projects", "not_found", 404), ("acct_1", "teleport", "not_found", 404)],
)
def test_client_errors_raise_tiergate_error_without_retrying(
    tg, fake, account, feature, code, status
):
    with pytest.raises(TiergateError) as info:
        tg.consume(account, feature)
    assert (info.value.code, info.value.status) == (code, status)
    assert "does not exist" in info.value.message
    assert not isinstance(info.value, TiergateUnavailable)
    assert len(fake.requests_to("/v1/usage")) == 1


def test_a_wrong_api_key_is_an_unauthorized_error(fake):
    client = TiergateClient(fake.url, "tg_wrong000_" + "x" * 40)
    with pytest.raises(TiergateError) as info:
        client.entitlements("acct_1")
    assert (info.value.code, info.value.status) == ("unauthorized", 401)


def test_a_request_that_cannot_be_made_is_an_error_not_an_outage():
    """A base URL requests cannot use is a setup bug to fix, reported at once; calling it an
    outage would fail open the host's fail_open features for everyone, indefinitely."""
    client = TiergateClient("http://tiergate internal:5000", API_KEY, retries=2)
    with pytest.raises(TiergateError) as info:
        client.check("acct_1", "projects")
    assert not isinstance(info.value, TiergateUnavailable)
    assert info.value.code == "request_failed" and "invalid character" in info.value.message


def test_unreachable_server_raises_unavailable():
    with socket.socket() as s:  # a port that was free a moment ago and nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = TiergateClient(f"http://127.0.0.1:{port}", API_KEY, timeout=0.2, retries=1)
    with pytest.raises(TiergateUnavailable) as info:
        client.check("acct_1", "projects")
    assert "failed" in info.value.message and info.value.status is None


def test_release_is_not_retried_when_the_server_may_have_applied_it(tg, fake):
    fake.used[("acct_1", "projects")] = 2
    fake.fail_next(Fault(stall=1.5))
    with pytest.raises(TiergateUnavailable):
        tg.release("acct_1", "projects", 1)
    assert len(fake.requests_to("/v1/usage/release")) == 1
    assert fake.used[("acct_1", "projects")] == 1  # released once, not twice


def test_release_and_set_usage_report_the_new_usage(tg, fake):
    assert tg.set_usage("acct_1", "projects", 3).used == 3
    result = tg.release("acct_1", "projects", 2)
    assert (result.used, result.remaining) == (1, 2)


def test_entitlements_are_parsed_into_typed_feature_states(tg, fake):
    fake.used[("acct_1", "api_calls")] = 4
    ents = tg.entitlements("acct_1")
    assert isinstance(ents, Entitlements)
    assert (ents.tier_id, ents.tier_name, ents.catalog_version) == ("free", "Free", 1)
    calls = ents.features["api_calls"]
    assert (calls.type, calls.used, calls.remaining) == ("counter", 4, 1)
    assert calls.resets_at == datetime(2026, 12, 1, tzinfo=UTC)
    assert ents.is_enabled("audit_log") and not ents.is_enabled("pdf_export")
    assert not ents.is_enabled("no_such_feature")


def test_upsert_account_puts_the_details_and_quotes_the_id(tg, fake):
    tg.upsert_account("team 7/b", email="a@example.com", name="Team 7", metadata={"plan": "x"})
    sent = fake.log[-1]
    assert sent["method"] == "PUT" and sent["raw_uri"] == "/v1/accounts/team%207%2Fb"
    assert sent["json"] == {"email": "a@example.com", "name": "Team 7", "metadata": {"plan": "x"}}


def test_upsert_account_leaves_out_details_not_given_so_they_are_kept(tg, fake):
    tg.upsert_account("acct_1", name="Renamed")
    assert fake.log[-1]["json"] == {"name": "Renamed"}


class _KeepAliveCheck(BaseHTTPRequestHandler):
    """Answers every POST like /v1/check over HTTP/1.1 keep-alive (werkzeug always closes)."""

    protocol_version = "HTTP/1.1"
    ports: list[int] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.ports.append(self.client_address[1])
        body = json.dumps({"allowed": True, "feature": "projects"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_calls_reuse_one_keep_alive_connection():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAliveCheck)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = TiergateClient(f"http://127.0.0.1:{server.server_port}", API_KEY)
        for _ in range(5):
            assert client.check("acct_1", "projects").allowed
    finally:
        server.shutdown()
        server.server_close()
    assert len(_KeepAliveCheck.ports) == 5 and len(set(_KeepAliveCheck.ports)) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_url": "localhost:5000", "api_key": API_KEY}, "must start with http"),
        ({"base_url": "http://x", "api_key": ""}, "api_key is empty"),
        ({"base_url": "http://x", "api_key": API_KEY + "\n"}, "a trailing newline read from"),
        ({"base_url": "http://x", "api_key": " " + API_KEY}, "contains whitespace"),
        ({"base_url": "http://x", "api_key": API_KEY, "retries": -1}, "retries must be 0"),
    ],
)
def test_bad_constructor_arguments_are_refused_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TiergateClient(**kwargs)
