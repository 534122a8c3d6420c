"""Transport-level behaviour of the fake, exercised through the real SDK over HTTP."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

import pytest
import stripe

from tests.fakestripe import FakeStripe


def raw(fake: FakeStripe, method: str, path: str, body: str | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], Any]:
    req = urllib.request.Request(
        fake.api_base + path, data=body.encode() if body is not None else None, method=method,
        headers={"Authorization": "Bearer sk_test_raw",
                 "Content-Type": "application/x-www-form-urlencoded", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read()), resp.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), e.headers


def test_real_sdk_over_http_with_stripe_client_constructor(fake: FakeStripe) -> None:
    client = stripe.StripeClient("sk_test_x", base_addresses={"api": fake.api_base})
    created = client.v1.customers.create({"email": "a@example.com", "metadata": {"k": "v"}})
    assert created.id.startswith("cus_")
    assert created.object == "customer" and created.livemode is False
    assert created.created == fake.now
    again = client.v1.customers.retrieve(created.id)
    assert again.email == "a@example.com" and again.metadata["k"] == "v"
    assert [(r.method, r.path) for r in fake.requests] == [
        ("POST", "/v1/customers"), ("GET", f"/v1/customers/{created.id}")]
    assert fake.requests[0].api_key == "sk_test_x"
    assert fake.requests[0].idempotency_key  # the SDK sends one on every POST


def test_module_level_sdk_configuration_works_too(fake: FakeStripe,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stripe, "api_key", "sk_test_global")
    monkeypatch.setattr(stripe, "api_base", fake.api_base)
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    cus = stripe.Customer.create(email="g@example.com")
    assert stripe.Customer.retrieve(cus.id).email == "g@example.com"
    assert fake.requests[-1].api_key == "sk_test_global"


def test_api_base_is_an_ephemeral_local_port(fake: FakeStripe) -> None:
    assert fake.api_base.startswith("http://127.0.0.1:")
    assert fake.port > 0


def test_missing_or_bad_api_key_is_401(fake: FakeStripe) -> None:
    status, body, _ = raw(fake, "GET", "/v1/customers", headers={"Authorization": ""})
    assert status == 401 and body["error"]["type"] == "invalid_request_error"
    assert "did not provide an API key" in body["error"]["message"]
    with pytest.raises(stripe.AuthenticationError):
        fake.client("sk_live_nope").v1.customers.list()
    with pytest.raises(stripe.AuthenticationError):
        fake.client("pk_test_publishable").v1.customers.list()


def test_unknown_parameter_is_rejected_like_stripe(client: Any, fake: FakeStripe) -> None:
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.customers.create({"email": "a@example.com", "foo": "bar"})
    err = exc.value
    assert err.http_status == 400
    assert err.json_body == {"error": {
        "type": "invalid_request_error", "message": "Received unknown parameter: foo",
        "param": "foo", "request_log_url": err.json_body["error"]["request_log_url"]}}
    assert client.v1.customers.list().data == []


def test_nested_unknown_parameter_names_the_full_path(client: Any, catalog: Any,
                                                      customer: Any) -> None:
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.subscriptions.create({"customer": customer.id,
                                        "items": [{"price": catalog.basic.id, "colour": "red"}]})
    assert exc.value.param == "items[0][colour]"
    assert exc.value.user_message == "Received unknown parameter: items[0][colour]"


def test_coupon_parameter_of_older_api_versions_is_unknown(client: Any, customer: Any,
                                                           catalog: Any) -> None:
    # The SDK's API version only has `discounts`; `coupon` was removed from subscriptions.
    client.v1.coupons.create({"id": "HALF", "percent_off": 50, "duration": "forever"})
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.subscriptions.create({"customer": customer.id, "coupon": "HALF",
                                        "items": [{"price": catalog.basic.id}]})
    assert exc.value.param == "coupon"


def test_real_parameter_the_fake_does_not_implement_is_refused_distinctly(
        client: Any, customer: Any, catalog: Any) -> None:
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.subscriptions.create({"customer": customer.id,
                                        "items": [{"price": catalog.basic.id}],
                                        "automatic_tax": {"enabled": True}})
    assert exc.value.code == "fakestripe_unsupported_parameter"
    assert exc.value.param == "automatic_tax"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.subscriptions.create({"customer": customer.id,
                                        "items": [{"price": catalog.basic.id,
                                                   "tax_rates": ["txr_1"]}]})
    assert exc.value.code == "fakestripe_unsupported_parameter"
    assert exc.value.param == "items[0][tax_rates]"


def test_type_errors(client: Any) -> None:
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.prices.create({"currency": "usd", "unit_amount": "ten",
                                 "product_data": {"name": "x"}})
    assert exc.value.user_message == "Invalid integer: ten"
    assert exc.value.param == "unit_amount"


def test_form_encoding_nested_arrays_metadata_and_expand_brackets(fake: FakeStripe,
                                                                  catalog: Any) -> None:
    status, cus, _ = raw(fake, "POST", "/v1/customers",
                         "email=b%40example.com&metadata[plan]=pro&metadata[team]=a%26b"
                         "&payment_method=pm_card_visa"
                         "&invoice_settings[default_payment_method]=pm_card_visa")
    assert status == 200 and cus["metadata"] == {"plan": "pro", "team": "a&b"}
    body = (f"customer={cus['id']}&items[0][price]={catalog.basic.id}&items[0][quantity]=2"
            f"&items[1][price]={catalog.addon.id}&expand[]=latest_invoice"
            "&expand[]=items.data.price.product")
    status, sub, _ = raw(fake, "POST", "/v1/subscriptions", body)
    assert status == 200, sub
    assert sub["latest_invoice"]["object"] == "invoice"
    assert sub["items"]["data"][0]["quantity"] == 2
    assert sub["items"]["data"][0]["price"]["product"]["name"] == "Pro"
    status, prices, _ = raw(fake, "GET", "/v1/prices?lookup_keys[]=pro_monthly"
                                         "&lookup_keys[]=basic_monthly")
    assert {p["lookup_key"] for p in prices["data"]} == {"pro_monthly", "basic_monthly"}


def test_unknown_ids_are_404_resource_missing(client: Any, catalog: Any) -> None:
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.customers.retrieve("cus_doesnotexist")
    assert exc.value.http_status == 404 and exc.value.code == "resource_missing"
    assert exc.value.user_message == "No such customer: 'cus_doesnotexist'"
    # an id referenced by a parameter is a 400 naming the parameter, as on Stripe
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.subscriptions.create({"customer": "cus_nope",
                                        "items": [{"price": catalog.basic.id}]})
    assert exc.value.http_status == 400 and exc.value.param == "customer"
    assert exc.value.code == "resource_missing"


def test_unrecognized_url(fake: FakeStripe) -> None:
    status, body, _ = raw(fake, "GET", "/v1/nothing_here")
    assert status == 404 and "Unrecognized request URL" in body["error"]["message"]


def test_idempotency_replay_and_conflict(client: Any, fake: FakeStripe) -> None:
    opts = {"idempotency_key": "key-1"}
    first = client.v1.customers.create({"email": "a@example.com"}, opts)
    second = client.v1.customers.create({"email": "a@example.com"}, opts)
    assert second.id == first.id
    assert second.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(client.v1.customers.list().data) == 1
    assert [e["type"] for e in fake.events] == ["customer.created"]
    with pytest.raises(stripe.IdempotencyError) as exc:
        client.v1.customers.create({"email": "other@example.com"}, opts)
    assert exc.value.http_status == 400
    assert exc.value.json_body["error"]["type"] == "idempotency_error"
    assert "same parameters" in exc.value.user_message
    with pytest.raises(stripe.IdempotencyError):
        client.v1.products.create({"name": "x"}, opts)


def test_validation_errors_are_not_saved_for_idempotency(client: Any) -> None:
    opts = {"idempotency_key": "key-2"}
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.prices.create({"currency": "usd", "product": "prod_missing",
                                 "unit_amount": 5}, opts)
    product = client.v1.products.create({"name": "x"})
    price = client.v1.prices.create({"currency": "usd", "product": product.id,
                                     "unit_amount": 5}, {"idempotency_key": "key-3"})
    assert price.unit_amount == 5


def test_fail_next_injects_5xx_then_recovers(client: Any, fake: FakeStripe) -> None:
    fake.fail_next(2, status=503)
    for _ in range(2):
        with pytest.raises(stripe.APIError) as exc:
            client.v1.customers.create({"email": "a@example.com"})
        assert exc.value.http_status == 503
        assert exc.value.json_body["error"]["type"] == "api_error"
    assert client.v1.customers.create({"email": "a@example.com"}).email == "a@example.com"
    assert len(client.v1.customers.list().data) == 1


def test_sdk_retries_injected_5xx_with_the_same_idempotency_key(fake: FakeStripe) -> None:
    client = fake.client(max_network_retries=2)
    fake.fail_next(1, status=500)
    cus = client.v1.customers.create({"email": "a@example.com"})
    assert cus.email == "a@example.com"
    posts = [r for r in fake.requests if r.method == "POST"]
    assert [r.status for r in posts] == [500, 200]
    assert posts[0].idempotency_key == posts[1].idempotency_key
    assert len(client.v1.customers.list().data) == 1


def test_rate_limit_injection(client: Any, fake: FakeStripe) -> None:
    fake.fail_next(1, status=429)
    with pytest.raises(stripe.RateLimitError):
        client.v1.customers.list()


def test_delay_next_makes_the_client_time_out(fake: FakeStripe) -> None:
    slow = fake.client(http_client=stripe.RequestsClient(timeout=0.3))
    fake.delay_next(1.0)
    with pytest.raises(stripe.APIConnectionError):
        slow.v1.customers.create({"email": "late@example.com"})
    # the request is still processed once its delay is over
    done = threading.Event()

    def wait() -> None:
        import time

        for _ in range(50):
            if fake.store.all("customer"):
                done.set()
                return
            time.sleep(0.05)

    wait()
    assert done.is_set()
    assert fake.client().v1.customers.list().data[0].email == "late@example.com"


def test_clock_is_controllable_and_shared(fake: FakeStripe, client: Any) -> None:
    start = fake.now
    assert fake.clock.now() == datetime.fromtimestamp(start, UTC)
    fake.advance(3600)
    assert client.v1.customers.create({}).created == start + 3600
    fake.clock.advance(minutes=1)
    assert fake.now == start + 3660
    fake.set_time(datetime(2027, 1, 1, tzinfo=UTC))
    assert client.v1.products.create({"name": "x"}).created == int(
        datetime(2027, 1, 1, tzinfo=UTC).timestamp())


def test_ids_are_deterministic() -> None:
    def run() -> list[str]:
        with FakeStripe() as fake:
            c = fake.client()
            return [c.v1.customers.create({}).id, c.v1.products.create({"name": "p"}).id]

    assert run() == run()


def test_list_pagination_newest_first(client: Any) -> None:
    ids = [client.v1.customers.create({"email": f"{i}@x.io"}).id for i in range(5)]
    page = client.v1.customers.list({"limit": 2})
    assert [c.id for c in page.data] == ids[::-1][:2] and page.has_more
    nxt = client.v1.customers.list({"limit": 2, "starting_after": page.data[-1].id})
    assert [c.id for c in nxt.data] == ids[::-1][2:4]
    assert [c.id for c in client.v1.customers.list().auto_paging_iter()] == ids[::-1]
