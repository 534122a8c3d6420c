"""Webhook signing and delivery, verified with the real SDK."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.fakestripe import FakeStripe, event_payload, sign_payload

SECRET = "whsec_test_secret"


@pytest.fixture
def event(client: Any, fake: FakeStripe) -> dict[str, Any]:
    client.v1.customers.create({"email": "hook@example.com"})
    return fake.events[-1]


def test_sdk_accepts_our_signature(event: dict[str, Any]) -> None:
    payload = event_payload(event)
    header = sign_payload(payload, SECRET, int(time.time()))
    parsed = stripe.Webhook.construct_event(payload, header, SECRET)
    assert parsed.id == event["id"] and parsed.type == "customer.created"
    assert parsed.data.object.email == "hook@example.com"


def test_sdk_rejects_tampered_forged_and_stale(event: dict[str, Any]) -> None:
    payload = event_payload(event)
    header = sign_payload(payload, SECRET, int(time.time()))
    tampered = payload.replace(b"hook@example.com", b"evil@example.com")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(tampered, header, SECRET)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, sign_payload(payload, "whsec_wrong"), SECRET)
    stale = sign_payload(payload, SECRET, int(time.time()) - 3600)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, stale, SECRET)


def test_signature_format() -> None:
    import hashlib
    import hmac

    header = sign_payload(b'{"a": 1}', "whsec_x", 1700000000)
    expected = hmac.new(b"whsec_x", b'1700000000.{"a": 1}', hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


def test_deliver_to_a_callable(fake: FakeStripe, event: dict[str, Any]) -> None:
    received: list[tuple[bytes, dict[str, str]]] = []

    def endpoint(body: bytes, headers: dict[str, str]) -> Any:
        received.append((body, headers))
        stripe.Webhook.construct_event(body, headers["Stripe-Signature"], SECRET)
        return Response("ok", status=200)

    result = fake.deliver(event, endpoint, SECRET)
    assert result.ok and result.status == 200
    body, headers = received[0]
    assert json.loads(body)["id"] == event["id"]
    assert headers["Content-Type"].startswith("application/json")


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    got: list[dict[str, Any]] = []

    def app(environ: Any, start_response: Any) -> Any:
        req = Request(environ)
        try:
            ev = stripe.Webhook.construct_event(req.get_data(), req.headers["Stripe-Signature"],
                                                SECRET)
        except stripe.SignatureVerificationError:
            return Response("bad signature", status=400)(environ, start_response)
        got.append(ev)
        return Response("ok")(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/stripe", got
    server.shutdown()
    server.server_close()


def test_deliver_to_a_url_and_pending(client: Any, fake: FakeStripe,
                                      receiver: tuple[str, list[dict[str, Any]]]) -> None:
    url, got = receiver
    client.v1.customers.create({"email": "a@example.com"})
    client.v1.customers.create({"email": "b@example.com"})
    results = fake.deliver_pending(url, SECRET)
    assert [r.status for r in results] == [200, 200]
    assert [e.data.object.email for e in got] == ["a@example.com", "b@example.com"]
    assert fake.deliver_pending(url, SECRET) == []  # already delivered
    bad = fake.deliver(fake.events[0], url, "whsec_other")
    assert bad.status == 400


def test_flask_test_client_as_target(fake: FakeStripe, event: dict[str, Any]) -> None:
    from flask import Flask, request

    app = Flask(__name__)

    @app.post("/hooks")
    def hooks() -> Any:
        ev = stripe.Webhook.construct_event(request.get_data(),
                                            request.headers["Stripe-Signature"], SECRET)
        return {"received": ev.type}

    tc = app.test_client()
    result = fake.deliver(event, lambda body, headers: tc.post("/hooks", data=body,
                                                                headers=headers), SECRET)
    assert result.status == 200 and json.loads(result.body) == {"received": "customer.created"}
