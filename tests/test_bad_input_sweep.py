"""Robustness sweep: every route of the app, a battery of bad input, never a 500.

Each route in `app.url_map` must be listed in ROUTES (so a new route joins the sweep). Bad input
(malformed or mistyped JSON, unknown or foreign ids, huge or negative numbers, control and
non-ASCII characters, very long strings, wrong methods and content types, bad query parameters,
tampered links and forms, forged or replayed webhooks) must get a 4xx that says what was wrong:
the JSON error shape on /v1/* and the webhook, the error page on HTML routes. A rejected request
changes no row. Invalid catalog files get the `tiergate catalog` commands' report, not a
traceback. Hypothesis runs a bounded number of examples so the module stays fast.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import func, select

from billing import portal
from billing.models import BillingChange, ChangeStatus
from gating.models import Subscription, UsageCounter
from tests.billing.conftest import add_account, quote_offer, set_gauge, subscribe
from tests.conftest import DEMO_CATALOG
from tests.fakestripe import event_payload, sign_payload
from tiergate.db import Base, get_db
from tiers.cli import catalog_group

pytest_plugins = ["tests.gating.api_fixtures"]

# Hypothesis runs inside one function-scoped app; every example is a rejected (or harmless)
# request, so sharing the fixtures between examples is what we want.
SWEEP = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

HTTP_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
WEBHOOK_SECRET = "whsec_sweep"
PUBLIC_V1 = ("/v1/catalog",)  # no API key needed
JSON_ROUTES = ("/v1/", "/webhooks/", "/openapi")  # errors in the JSON shape; others: the page

# Every (rule, method) of the app and a concrete path for it (placeholders filled in by `world`).
ROUTES: dict[tuple[str, str], str] = {
    ("/billing", "GET"): "/billing",
    ("/billing/addons/<addon_id>", "GET"): "/billing/addons/{addon}",
    ("/billing/addons/<addon_id>", "POST"): "/billing/addons/{addon}",
    ("/billing/addons/<addon_id>/remove", "POST"): "/billing/addons/{addon}/remove",
    ("/billing/addons/<addon_id>/keep", "POST"): "/billing/addons/{addon}/keep",
    ("/billing/cancel", "GET"): "/billing/cancel",
    ("/billing/cancel", "POST"): "/billing/cancel",
    ("/billing/changes/<change_id>", "GET"): "/billing/changes/{change}",
    ("/billing/checkout", "GET"): "/billing/checkout",
    ("/billing/checkout", "POST"): "/billing/checkout",
    ("/billing/downgrade", "GET"): "/billing/downgrade",
    ("/billing/downgrade", "POST"): "/billing/downgrade",
    ("/billing/resume", "POST"): "/billing/resume",
    ("/billing/upgrade", "GET"): "/billing/upgrade",
    ("/billing/yearly", "GET"): "/billing/yearly",
    ("/billing/yearly", "POST"): "/billing/yearly",
    ("/docs", "GET"): "/docs",
    ("/offers/<offer_id>", "GET"): "/offers/{offer}",
    ("/offers/<offer_id>/accept", "POST"): "/offers/{offer}/accept",
    ("/offers/<offer_id>/dismiss", "POST"): "/offers/{offer}/dismiss",
    ("/offers/<offer_id>/done", "GET"): "/offers/{offer}/done",
    ("/openapi.json", "GET"): "/openapi.json",
    ("/pricing", "GET"): "/pricing",
    ("/static/<path:filename>", "GET"): "/static/{static}",
    ("/v1/accounts/<account_id>", "PUT"): "/v1/accounts/acme",
    ("/v1/accounts/<account_id>", "GET"): "/v1/accounts/acme",
    ("/v1/accounts/<account_id>/billing_link", "POST"): "/v1/accounts/acme/billing_link",
    ("/v1/accounts/<account_id>/entitlements", "GET"): "/v1/accounts/acme/entitlements",
    ("/v1/accounts/<account_id>/overrides", "POST"): "/v1/accounts/acme/overrides",
    ("/v1/accounts/<account_id>/overrides", "GET"): "/v1/accounts/acme/overrides",
    (
        "/v1/accounts/<account_id>/overrides/<override_id>",
        "DELETE",
    ): "/v1/accounts/acme/overrides/{override}",
    ("/v1/catalog", "GET"): "/v1/catalog",
    ("/v1/catalog/versions/<int:version>", "GET"): "/v1/catalog/versions/{version}",
    ("/v1/check", "POST"): "/v1/check",
    ("/v1/funnel", "GET"): "/v1/funnel",
    ("/v1/offers/<offer_id>", "GET"): "/v1/offers/{offer}",
    ("/v1/offers/<offer_id>/events", "POST"): "/v1/offers/{offer}/events",
    ("/v1/usage", "POST"): "/v1/usage",
    ("/v1/usage/release", "POST"): "/v1/usage/release",
    ("/v1/usage/set", "POST"): "/v1/usage/set",
    ("/webhooks/stripe", "POST"): "/webhooks/stripe",
}

# The fields each JSON body takes, for the body fuzzing.
BODY_FIELDS: dict[str, tuple[str, ...]] = {
    "/v1/accounts/acme": ("email", "name", "metadata"),
    "/v1/accounts/acme/billing_link": ("return_url",),
    "/v1/accounts/acme/overrides": ("kind", "feature", "limit", "days", "reason", "expires_at"),
    "/v1/check": ("account_id", "feature", "quantity"),
    "/v1/usage": ("account_id", "feature", "quantity", "idempotency_key"),
    "/v1/usage/release": ("account_id", "feature", "quantity"),
    "/v1/usage/set": ("account_id", "feature", "value"),
    "/v1/offers/{offer}/events": ("type", "account_id"),
}

NASTY_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\n\r\t",
    "\u202e\u200b",
    "é\u0301",
    "\U0001f4a9",
    "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
    "x" * 5000,
    "../../etc/passwd",
    "%00",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "${jndi:x}",
    "acme\n",
    "ACME",
    "１２３",
    "²",
    "٣",
    "-1",
    "1e309",
    "NaN",
    "9" * 40,
]
NASTY_NUMBERS: list[Any] = [
    -1,
    0,
    -(10**20),
    10**12 + 1,
    10**40,
    2**63,
    -(2**63) - 1,
    1.5,
    1e308,
    -0.0,
    True,
    False,
    None,
    "5",
    "",
    [],
    {},
    [1],
    {"$gt": 0},
]
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(NASTY_TEXT + NASTY_NUMBERS),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
PATH_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/?#"), min_size=0, max_size=300
) | st.sampled_from(NASTY_TEXT)


# ---- the world every request is thrown at ----------------------------------------------------


class World:
    """acme (Starter, halfway through its period) and other (Pro), each with an open offer;
    newco without a subscription."""

    def __init__(self, app: Any, clock: Any, version: int) -> None:
        self.app = app
        db = get_db(app).session
        with db() as s:
            subscribe(s, "acme", clock, version)
            set_gauge(s, "acme", "projects", 10, clock)
            subscribe(s, "other", clock, version, tier="pro")
            add_account(s, "newco", clock)  # no subscription: the free tier
            self.offer = quote_offer(
                s, "acme", clock, version, amount_due_today=1000, new_recurring=2900
            ).id
            self.other_offer = quote_offer(
                s, "other", clock, version, amount_due_today=1000, new_recurring=2900
            ).id
            change = BillingChange(
                id="chg_other",
                account_id="other",
                kind="upgrade",
                status=ChangeStatus.APPLIED,
                created_at=clock.now(),
                updated_at=clock.now(),
            )
            s.add(change)
        self.values = {
            "addon": "extended_support",
            "change": "chg_other",
            "offer": self.offer,
            "override": "1",
            "version": str(version),
            "static": "none.css",
        }

    def path(self, template: str) -> str:
        return template.format(**self.values)

    def account_token(self, account_id: str = "acme") -> str:
        return portal.account_token(self.app.config, account_id)

    def offer_token(self, offer_id: str | None = None, account_id: str = "acme") -> str:
        return portal.offer_token(self.app.config, account_id, offer_id or self.offer)


@pytest.fixture
def world(app, clock, demo_catalog) -> World:
    return World(app, clock, int(demo_catalog.version))


@pytest.fixture
def admin(api_client):
    return api_client


def snapshot(app: Any) -> dict[str, Any]:
    """Row counts of every table, usage values and subscription state: what must not change."""
    tables = Base.metadata.sorted_tables
    one_query = select(
        *(select(func.count()).select_from(t).scalar_subquery().label(t.name) for t in tables)
    )
    with get_db(app).sessionmaker() as s:
        counts = dict(s.execute(one_query).one()._mapping)
        used = sorted(s.execute(select(UsageCounter.account_id, UsageCounter.used)).all())
        subs = sorted(
            s.execute(
                select(
                    Subscription.account_id,
                    Subscription.tier_id,
                    Subscription.interval,
                    Subscription.cancel_at_period_end,
                )
            ).all()
        )
    return {"counts": counts, "used": used, "subscriptions": subs}


def assert_clear_error(response: Any, path: str) -> None:
    """A 4xx: the JSON error shape on JSON routes, the error page elsewhere; never a traceback."""
    text = response.get_data(as_text=True)
    assert response.status_code < 500, f"{response.status_code} on {path}: {text[:500]}"
    assert "Traceback" not in text
    if response.status_code < 400:
        return
    if path.startswith(JSON_ROUTES):
        body = response.get_json(silent=True)
        if response.status_code == 402 and isinstance(body, dict) and "allowed" in body:
            assert body["allowed"] is False and body["reason"], body  # the gate's denial
            return
        assert isinstance(body, dict) and set(body) == {"error"}, f"{path}: {text[:300]}"
        error = body["error"]
        assert set(error) == {"code", "message", "details"}, error
        assert isinstance(error["code"], str) and error["code"]
        assert isinstance(error["message"], str) and error["message"].strip()
    else:
        assert response.mimetype == "text/html", f"{path}: {response.mimetype}"
        assert "Something went wrong on our side" not in text


def expect_rejected(app: Any, send: Callable[[], Any], path: str, before: Any = None) -> Any:
    """Send; the answer is a clear 4xx and nothing changed."""
    before = snapshot(app) if before is None else before
    response = send()
    assert_clear_error(response, path)
    assert response.status_code >= 400, f"{path} accepted: {response.get_data(as_text=True)[:300]}"
    assert snapshot(app) == before, f"{path} changed the database"
    return response


def expect_no_500(app: Any, send: Callable[[], Any], path: str) -> Any:
    """Send; never a 5xx, and a rejection changed nothing."""
    before = snapshot(app)
    response = send()
    assert_clear_error(response, path)
    if response.status_code >= 400:
        assert snapshot(app) == before, f"{path} rejected but changed the database"
    return response


# ---- the inventory ---------------------------------------------------------------------------


def test_every_route_of_the_app_is_in_the_sweep(app) -> None:
    served = {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert served == set(ROUTES), "add new routes to ROUTES (and their bad input to this module)"


def test_an_unknown_route_is_a_404_in_the_shape_of_its_area(app, client) -> None:
    for path in ("/v1/nope", "/v1/", "/webhooks/nope", "/nope", "/billing/nope", "/%00"):
        response = client.get(path)
        assert_clear_error(response, path)
        assert response.status_code in (404, 422), (path, response.status_code)


# ---- every route --------------------------------------------------------------------------------


def _rules() -> dict[str, set[str]]:
    rules: dict[str, set[str]] = {}
    for (_, method), template in ROUTES.items():
        rules.setdefault(template, set()).add(method)
    return rules


def test_a_wrong_method_is_405_and_changes_nothing(app, world, admin) -> None:
    before = snapshot(app)  # one app for every route: each request is cheap, a fixture is not
    for template, allowed in sorted(_rules().items()):
        path = world.path(template)
        for method in HTTP_METHODS:
            if method in allowed:
                continue
            response = expect_rejected(
                app, lambda m=method, p=path: admin.open(m, p, json={"x": 1}), path, before
            )
            assert response.status_code == 405, (method, path)


V1_PRIVATE = sorted(
    (template, method)
    for (_, method), template in ROUTES.items()
    if template.startswith("/v1/") and not template.startswith(PUBLIC_V1)
)
BAD_AUTH = [
    None,
    "",
    "Bearer",
    "Bearer ",
    "Basic dXNlcjpwYXNz",
    "Bearer tg_abcdefgh_" + "x" * 32,
    "Bearer tg_" + "é" * 40,
    "Bearer " + "x" * 10_000,
    "Bearer tg_abcdefgh_\x00\x01" + "a" * 30,
    "bearer\ttg_x",
]


def test_a_missing_or_bad_api_key_is_401_and_changes_nothing(app, client, world) -> None:
    before = snapshot(app)
    for template, method in V1_PRIVATE:
        path = world.path(template)
        for header in BAD_AUTH:
            headers = {} if header is None else {"Authorization": header}
            response = expect_rejected(
                app,
                lambda h=headers, p=path, m=method: client.open(p, method=m, headers=h, json={}),
                path,
                before,
            )
            assert response.status_code == 401, (method, path, header, response.get_json())


def test_a_key_without_the_scope_is_403(app, world, make_api_client) -> None:
    gate = make_api_client("gate")
    for path in ("/v1/funnel", "/v1/accounts/acme/overrides"):
        response = expect_rejected(app, lambda p=path: gate.get(p), path)
        assert response.status_code == 403


V1_WITH_BODY = sorted(
    (template, method)
    for (_, method), template in ROUTES.items()
    if template.startswith("/v1/") and method in ("POST", "PUT")
)
RAW_BODIES: list[tuple[bytes, str]] = [
    (b"{", "application/json"),
    (b'{"account_id": "acme",', "application/json"),
    (b"[]", "application/json"),
    (b"null", "application/json"),
    (b'"acme"', "application/json"),
    (b"1", "application/json"),
    (b"\xff\xfe\x00{", "application/json"),
    (b"\xef\xbb\xbf{}", "application/json"),
    (b'{"quantity": NaN}', "application/json"),
    (b'{"quantity": Infinity}', "application/json"),
    (b'{"quantity": 1e400}', "application/json"),
    (b'{"quantity": 1' + b"0" * 5000 + b"}", "application/json"),
    (b"[" * 5000 + b"]" * 5000, "application/json"),
    (b'{"a": ' * 3000 + b"1" + b"}" * 3000, "application/json"),
    (b'{"account_id": "acme", "account_id": 5}', "application/json"),
    (b'{"type": "shown"}', "text/plain"),
    (b"account_id=acme&feature=projects", "application/x-www-form-urlencoded"),
    (b'{"type": "shown"}', "application/xml"),
    (b'{"type": "shown"}', ""),
    (b'{"k": "\\ud800"}', "application/json"),
    (b'{"k": "\\u0000"}', "application/json"),
    (b"\x00" * 100, "application/json"),
]


@pytest.mark.parametrize(("template", "method"), V1_WITH_BODY)
def test_a_malformed_or_mistyped_body_is_a_clear_4xx_and_changes_nothing(
    app, world, admin, template, method
) -> None:
    path = world.path(template)
    before = snapshot(app)
    for body, content_type in RAW_BODIES:
        headers = {"Content-Type": content_type} if content_type else {}
        expect_rejected(
            app,
            lambda b=body, h=headers: admin.open(method, path, data=b, headers=h),
            path,
            before,
        )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"quantity": 1' + b"0" * 5000 + b"}", "(a number has more than 4300 digits)"),
        (b"[" * 5000 + b"]" * 5000, "(nested too deeply)"),
        (b'{"account_id": "acme",', "(line 1, column 23: Expecting property name"),
    ],
)
def test_json_that_python_cannot_read_is_malformed_json_saying_why(admin, body, reason) -> None:
    response = admin.post("/v1/check", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "malformed_json"
    assert error["message"].startswith("The request body is not valid JSON " + reason), error


@pytest.mark.parametrize(("template", "method"), V1_WITH_BODY)
def test_every_body_field_rejects_nasty_values(app, world, admin, template, method) -> None:
    path = world.path(template)
    valid = _valid_body(world, template)
    for name in BODY_FIELDS[template]:
        special = {"expires_at": BAD_DATES, "return_url": BAD_URLS}.get(name, [])
        for value in NASTY_TEXT + NASTY_NUMBERS + special:
            body = {**valid, name: value}
            expect_no_500(app, lambda b=body: admin.open(method, path, json=b), path)


def _valid_body(world: World, template: str) -> dict[str, Any]:
    return {
        "/v1/accounts/acme": {"name": "Acme"},
        "/v1/accounts/acme/billing_link": {"return_url": "http://localhost/settings"},
        "/v1/accounts/acme/overrides": {"kind": "limit", "feature": "projects", "reason": "r"},
        "/v1/check": {"account_id": "acme", "feature": "projects"},
        "/v1/usage": {"account_id": "acme", "feature": "api_calls", "quantity": 1},
        "/v1/usage/release": {"account_id": "acme", "feature": "projects", "quantity": 1},
        "/v1/usage/set": {"account_id": "acme", "feature": "projects", "value": 1},
        "/v1/offers/{offer}/events": {"type": "shown"},
    }[template]


@pytest.mark.parametrize(("template", "method"), V1_WITH_BODY)
def test_fuzzed_json_bodies_never_fail_with_a_500(app, world, admin, template, method) -> None:
    path = world.path(template)
    names = st.sampled_from(BODY_FIELDS[template]) | st.text(max_size=10)

    @SWEEP
    @given(body=st.dictionaries(names, JSON_VALUES, max_size=5) | JSON_VALUES)
    def run(body: Any) -> None:
        expect_no_500(app, lambda: admin.open(method, path, json=body), path)

    run()


GATE_PATHS = {"/v1/check": "quantity", "/v1/usage": "quantity", "/v1/usage/set": "value"}
GATE_PATHS["/v1/usage/release"] = "quantity"
FEATURES = [
    "projects",
    "seats",
    "api_calls",
    "automation_runs",
    "pdf_export",
    "sso",
    "nope",
    "PROJECTS",
]


def test_the_gate_with_real_ids_and_any_quantity_never_fails_with_a_500(app, world, admin) -> None:
    @SWEEP
    @given(
        path=st.sampled_from(sorted(GATE_PATHS)),
        account_id=st.sampled_from(["acme", "other", "newco", "ghost", "Acme"]),
        feature=st.sampled_from(FEATURES),
        amount=st.integers(min_value=-5, max_value=10**13)
        | st.sampled_from([0, 1, 10**12, 10**12 + 1]),
    )
    def run(path: str, account_id: str, feature: str, amount: int) -> None:
        body = {"account_id": account_id, "feature": feature, GATE_PATHS[path]: amount}
        before = snapshot(app)
        response = admin.post(path, json=body)
        assert_clear_error(response, path)
        if response.status_code >= 400 and response.status_code != 402:  # a denial may offer
            assert snapshot(app) == before, f"{path} {body} rejected but changed the database"

    run()


def test_a_denial_of_more_units_than_remain_says_how_many_remain(app, world, admin) -> None:
    release = {"account_id": "acme", "feature": "projects", "quantity": 3}
    assert admin.post("/v1/usage/release", json=release).status_code == 200  # 7 of 10 used
    body = {"account_id": "acme", "feature": "projects", "quantity": 4}
    decision = admin.post("/v1/check", json=body).get_json()
    assert decision["allowed"] is False and decision["remaining"] == 3
    assert decision["message"] == (
        "7 of 10 projects used: 3 projects left on Starter, 4 asked for."
    ), decision["message"]


PATH_ROUTES = sorted(
    (template, method) for (rule, method), template in ROUTES.items() if "<" in rule
)


@pytest.mark.parametrize(("template", "method"), PATH_ROUTES)
def test_fuzzed_path_ids_are_a_clear_4xx(app, world, admin, template, method) -> None:
    # the same query string for every page: signed links for acme, so only the path id is bad
    query = f"?t={world.account_token()}" if template.startswith("/billing") else ""

    def send(value: str) -> Any:
        if template.startswith("/v1/accounts/"):
            path = template.replace("acme", quote(value, safe=""), 1).format(**world.values)
        else:
            values = {k: quote(value, safe="") for k in world.values}
            path = template.format(**values)
        query_ = "?t=" + world.offer_token(value) if template.startswith("/offers/") else query
        headers = {"Authorization": f"Bearer {admin.key}"}
        if method in ("POST", "PUT") and template.startswith("/v1/"):
            body = _valid_body(world, template) if template in BODY_FIELDS else None
            return admin.client.open(path + query_, method=method, headers=headers, json=body)
        return admin.client.open(path + query_, method=method, headers=headers)

    for value in NASTY_TEXT:
        expect_no_500(app, lambda v=value: send(v), template)

    @SWEEP
    @given(value=PATH_TEXT)
    def run(value: str) -> None:
        expect_no_500(app, lambda: send(value), template)

    run()


NUL_MESSAGE = " must not contain the NUL character (\\u0000)."


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "where"),
    [
        ("PUT", "/v1/accounts/acme", {"json": {"name": "a\x00b"}}, "JSON field 'name'"),
        (
            "PUT",
            "/v1/accounts/acme",
            {"json": {"metadata": {"note": "\x00"}}},
            "JSON field 'metadata.note'",
        ),
        (
            "PUT",
            "/v1/accounts/acme",
            {"json": {"metadata": {"a\x00": 1}}},
            "JSON field 'metadata.a\\x00'",
        ),
        (
            "POST",
            "/v1/usage",
            {
                "json": {
                    "account_id": "acme",
                    "feature": "api_calls",
                    "quantity": 1,
                    "idempotency_key": "k\x00",
                }
            },
            "JSON field 'idempotency_key'",
        ),
        (
            "POST",
            "/v1/accounts/acme/overrides",
            {"json": {"kind": "limit", "feature": "projects", "reason": ["r", "\x00"]}},
            "JSON field 'reason[1]'",
        ),
        ("GET", "/v1/offers/off_%00", {}, "The URL path"),
        ("POST", "/v1/offers/off_%00/events", {"json": {"type": "shown"}}, "The URL path"),
        ("GET", "/v1/funnel", {"query_string": {"since": "\x00"}}, "Query parameter 'since'"),
    ],
)
def test_a_nul_character_anywhere_in_an_api_request_is_a_422_naming_where(
    app, world, admin, method, path, kwargs, where
):
    # PostgreSQL cannot store or even compare text holding a NUL: it used to answer 500 there
    response = expect_rejected(app, lambda: admin.open(method, path, **kwargs), path)
    assert response.status_code == 422
    assert response.get_json()["error"]["message"] == where + NUL_MESSAGE


def test_a_nul_character_in_a_page_or_its_form_is_a_422_page(app, client, world, csrf):
    token = world.account_token()
    cases = [
        ("/billing/changes/%00", lambda p: client.get(p, query_string={"t": token})),
        ("/offers/%00", lambda p: client.get(p, query_string={"t": world.offer_token("\x00")})),
        ("/billing/checkout", lambda p: client.get(p, query_string={"t": token, "tier": "\x00"})),
        (
            "/billing/addons/extended_support",
            lambda p: client.post(
                p, data={"t": token, "csrf_token": csrf, "amount": "0", "offer": "off_\x00"}
            ),
        ),
    ]
    for path, send in cases:
        response = expect_rejected(app, lambda p=path, s=send: s(p), path)
        assert response.status_code == 422
        assert "must not contain the NUL character" in response.get_data(as_text=True)


def test_an_escaped_backslash_before_u0000_is_text_not_a_nul(app, admin, world):
    response = admin.put("/v1/accounts/acme", json={"name": "C:\\u0000"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["name"] == "C:\\u0000"


def test_a_signed_link_carrying_a_nul_account_id_is_refused(app, client, world):
    for path, token in (
        ("/billing", world.account_token("a\x00")),
        (f"/offers/{world.offer}", world.offer_token(account_id="a\x00")),
    ):
        response = expect_rejected(
            app, lambda p=path, t=token: client.get(p, query_string={"t": t}), path
        )
        assert response.status_code == 403


# ---- query parameters -----------------------------------------------------------------------

QUERIES: dict[str, tuple[str, ...]] = {
    "/v1/funnel": ("since", "until"),
    "/v1/offers/{offer}": ("account_id",),
    "/v1/catalog": ("interval", "currency", "current", "recommended"),
    "/v1/catalog/versions/{version}": ("interval", "currency", "current", "recommended"),
    "/v1/accounts/acme": ("x",),
    "/pricing": ("interval", "currency", "current", "recommended"),
    "/billing": ("t", "session_id", "return_url"),
    "/billing/checkout": ("tier", "interval", "currency", "return_url"),
    "/billing/upgrade": ("tier", "interval", "currency", "return_url"),
    "/billing/downgrade": ("tier", "interval"),
    "/billing/addons/{addon}": ("offer",),
    "/offers/{offer}": ("t", "return_url"),
    "/docs": ("x",),
}
BAD_URLS = [
    "http://[",
    "http://[::1",
    "http://local\u2100host/",
    "javascript:alert(1)",
    "//evil.example/",
    "http://localhost\\@evil.example/",
    "http://evil.example/",
    "http://localhost:99999/",
    "http://" + "a" * 5000,
]
BAD_DATES = [
    "yesterday",
    "2026-13-01T00:00:00Z",
    "2026-11-15T12:00:00",
    "0001-01-01T00:00:00+00:00",
    "9999-12-31T23:59:59+00:00",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59",
    "2026-11-15T12:00:00+99:00",
    "1e10",
    "",
]


@pytest.mark.parametrize("template", sorted(QUERIES))
def test_bad_query_parameters_are_a_clear_4xx_or_ignored(app, world, admin, template) -> None:
    path = world.path(template)
    base = {"t": world.account_token()} if template.startswith("/billing") else {}
    if template.startswith("/offers/"):
        base = {"t": world.offer_token()}

    def send(params: dict[str, str]) -> Any:
        return admin.get(path, query_string={**base, **params})

    for name in QUERIES[template]:
        for value in NASTY_TEXT + BAD_DATES + (BAD_URLS if name == "return_url" else []):
            expect_no_500(app, lambda n=name, v=value: send({n: v}), path)
    expect_no_500(
        app, lambda: send({"since": "2027-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}), path
    )

    @SWEEP
    @given(params=st.dictionaries(st.sampled_from(QUERIES[template]), PATH_TEXT, max_size=3))
    def run(params: dict[str, str]) -> None:
        expect_no_500(app, lambda: send(params), path)

    run()


@pytest.mark.parametrize("template", sorted(QUERIES))
def test_a_query_parameter_given_twice_with_different_values_is_refused_naming_it(
    app, world, admin, template
) -> None:
    """Which of two values counts must not be an accident of order: an offer's ownership check
    once saw only the first `account_id`, and a bad second date was ignored."""
    path = world.path(template)
    token = world.offer_token() if template.startswith("/offers/") else world.account_token()
    base = [("t", token)] if template.startswith(("/billing", "/offers/")) else []
    for name in QUERIES[template]:
        if name == "t":
            continue
        query = [*base, (name, "a"), (name, "b")]
        response = expect_rejected(app, lambda q=query: admin.get(path, query_string=q), path)
        assert response.status_code == 422, (path, name)
        text = html.unescape(response.get_data(as_text=True))
        assert f"Query parameter '{name}' was given 2 times with different values" in text
    same = [*base, ("x", "1"), ("x", "1")]  # the same value twice is not ambiguous
    assert admin.get(path, query_string=same).status_code < 500


def test_an_offer_is_not_shown_for_a_second_account_id(app, world, admin) -> None:
    assert admin.get(f"/v1/offers/{world.offer}?account_id=other").status_code == 404
    response = admin.get(f"/v1/offers/{world.offer}?account_id=acme&account_id=other")
    assert response.status_code == 422
    assert response.get_json()["error"]["details"] == {"location": "query", "field": "account_id"}


def test_a_failed_if_match_on_the_catalog_is_a_412_in_the_error_shape(app, world) -> None:
    response = app.test_client().get("/v1/catalog", headers={"If-Match": '"not-the-etag"'})
    assert response.status_code == 412
    error = response.get_json()["error"]
    assert error["code"] == "precondition_failed" and "If-Match" in error["message"]


@pytest.mark.parametrize("value", BAD_DATES + ["2026-11-15T12:00:00Z"])
def test_funnel_dates_are_validated_by_name(app, admin, value) -> None:
    for name in ("since", "until"):
        response = expect_no_500(
            app, lambda n=name: admin.get("/v1/funnel", query_string={n: value}), "/v1/funnel"
        )
        if response.status_code >= 400:
            assert name in response.get_json()["error"]["message"]


# ---- the HTML pages: signed links and forms --------------------------------------------------

ACCOUNT_PAGES = sorted(
    (template, method)
    for (_, method), template in ROUTES.items()
    if template.startswith("/billing")
)
OFFER_PAGES = sorted(
    (template, method)
    for (_, method), template in ROUTES.items()
    if template.startswith("/offers/")
)


def _forged_tokens(world: World, salt: str, valid: str) -> list[str]:
    signer = URLSafeTimedSerializer(str(world.app.config["SECRET_KEY"]), salt=salt)
    wrong_key = URLSafeTimedSerializer("not-the-secret-key-of-this-app", salt=salt)
    other_salt = "offer" if salt == "account" else "account"
    payload: dict[str, Any] = {"a": "acme", "o": world.offer}
    return [
        "",
        "forged",
        valid[:-3],
        valid + "x",
        valid.upper(),
        valid.replace(".", "", 1),
        "." * 200,
        valid * 50,
        "\x00",
        "é",
        wrong_key.dumps(payload),
        URLSafeTimedSerializer(str(world.app.config["SECRET_KEY"]), salt=other_salt).dumps(payload),
        signer.dumps(["acme"]),
        signer.dumps("acme"),
        signer.dumps(None),
        signer.dumps({"a": 5, "o": world.offer}),
        signer.dumps({"a": None, "o": world.offer}),
        signer.dumps({"o": world.offer}),
        signer.dumps({"a": ["acme"], "o": world.offer}),
    ]


@pytest.mark.parametrize(("template", "method"), ACCOUNT_PAGES)
def test_account_pages_refuse_tampered_links(app, client, world, template, method) -> None:
    path = world.path(template)
    before = snapshot(app)
    for token in _forged_tokens(world, "account", world.account_token()):
        response = expect_rejected(
            app,
            lambda t=token: client.open(path, method=method, query_string={"t": t}),
            path,
            before,
        )
        if method == "GET":
            expected = 422 if "\x00" in token else 403  # a NUL is refused before the link
            assert response.status_code == expected, (token, response.status_code)


@pytest.mark.parametrize(("template", "method"), OFFER_PAGES)
def test_offer_pages_refuse_tampered_links_and_foreign_offers(
    app, client, world, template, method
) -> None:
    path = world.path(template)
    before = snapshot(app)
    tokens = _forged_tokens(world, "offer", world.offer_token())
    tokens += [
        world.offer_token(world.other_offer),  # another offer of another account
        world.offer_token(account_id="other"),  # acme's offer, signed for another account
        world.offer_token(account_id="ghost"),  # an account that does not exist
        world.account_token(),  # an account link, not an offer link
    ]
    for token in tokens:
        response = expect_rejected(
            app,
            lambda t=token: client.open(path, method=method, query_string={"t": t}),
            path,
            before,
        )
        if method == "GET":
            expected = (422,) if "\x00" in token else (403, 404)
            assert response.status_code in expected, (token, response.status_code)


def test_an_account_link_for_an_unknown_account_is_a_clear_4xx(app, client, world) -> None:
    for template, method in ACCOUNT_PAGES:
        path = world.path(template)
        for account_id in ("ghost", "", "é" * 300, "\x00"):
            token = world.account_token(account_id)
            expect_no_500(
                app,
                lambda t=token, p=path, m=method: client.open(p, method=m, query_string={"t": t}),
                path,
            )


def test_another_accounts_change_is_not_shown(app, client, world) -> None:
    path = "/billing/changes/chg_other"
    response = expect_rejected(
        app, lambda: client.get(path, query_string={"t": world.account_token()}), path
    )
    assert response.status_code == 404


@pytest.fixture
def csrf(app, client, world) -> str:
    """A valid CSRF token for the test client's session (CSRF is on for the billing pages)."""
    page = client.get("/billing/cancel", query_string={"t": world.account_token()})
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert match, page.get_data(as_text=True)[:500]
    return match.group(1)


FORM_POSTS = [(t, m) for t, m in ACCOUNT_PAGES + OFFER_PAGES if m == "POST"]


@pytest.mark.parametrize(("template", "method"), FORM_POSTS)
def test_a_form_without_a_valid_csrf_token_is_refused(
    app, client, world, csrf, template, method
) -> None:
    path = world.path(template)
    token = world.offer_token() if template.startswith("/offers/") else world.account_token()
    before = snapshot(app)
    for bad in (None, "", "forged", csrf[:-2], csrf + "x", "é" * 100):
        data = {"t": token, "amount": "1000", "at": "2026-11-15T12:00:00+00:00"}
        if bad is not None:
            data["csrf_token"] = bad
        response = expect_rejected(app, lambda d=data: client.post(path, data=d), path, before)
        assert response.status_code == 400
        assert "the form was not sent" in response.get_data(as_text=True)


BAD_AMOUNTS = [
    "",
    "abc",
    "-5",
    "1.5",
    "1e3",
    "0x10",
    " 10",
    "²",
    "٣",
    "１２３",
    "9" * 16,
    "9" * 400,
]
BAD_ATS = BAD_DATES + ["2026-11-15T12:00:00+00:00\x00", "２０２６-11-15"]


@pytest.mark.parametrize(
    "template",
    ["/billing/yearly", "/billing/addons/{addon}", "/billing/checkout"],
)
def test_bad_amounts_and_quote_times_in_forms_change_nothing(
    app, client, world, csrf, template
) -> None:
    path = world.path(template)
    token = world.account_token()
    for amount in BAD_AMOUNTS:
        data = {"t": token, "csrf_token": csrf, "amount": amount, "at": "2026-11-15T12:00:00+00:00"}
        expect_no_500(app, lambda d=data: client.post(path, data=d), path)
    for at in BAD_ATS:
        data = {"t": token, "csrf_token": csrf, "amount": "1000", "at": at}
        expect_no_500(app, lambda d=data: client.post(path, data=d), path)

    @SWEEP
    @given(
        form=st.dictionaries(
            st.sampled_from(
                ["amount", "at", "tier", "interval", "currency", "offer", "addon", "return_url"]
            ),
            PATH_TEXT,
            max_size=4,
        )
    )
    def run(form: dict[str, str]) -> None:
        data = {
            "t": token,
            "csrf_token": csrf,
            "amount": "1000",
            "at": "2026-11-15T12:00:00+00:00",
            **form,
        }
        expect_no_500(app, lambda: client.post(path, data=data), path)

    run()


@pytest.mark.parametrize(
    ("template", "field"),
    [
        ("/billing/checkout", "tier"),
        ("/billing/checkout", "interval"),
        ("/billing/checkout", "currency"),
        ("/billing/upgrade", "tier"),
        ("/billing/downgrade", "tier"),
        ("/billing/downgrade", "interval"),
        ("/billing/downgrade", "shown"),
        ("/billing/cancel", "shown"),
        ("/billing/addons/{addon}", "offer"),
        ("/offers/{offer}/accept", "addon"),
    ],
)
def test_bad_form_choices_are_a_clear_4xx(app, client, world, csrf, template, field) -> None:
    path = world.path(template)
    token = world.offer_token() if template.startswith("/offers/") else world.account_token()
    for value in NASTY_TEXT + ["enterprise", "free", "year", "month", world.other_offer]:
        data = {"t": token, "csrf_token": csrf, "amount": "1000", field: value}
        expect_no_500(app, lambda d=data: client.post(path, data=d), path)
        expect_no_500(
            app, lambda v=value: client.get(path, query_string={"t": token, field: v}), path
        )


def test_a_bad_return_url_is_ignored_on_every_page(app, client, world, csrf) -> None:
    for template, method in ACCOUNT_PAGES + OFFER_PAGES:
        path = world.path(template)
        token = world.offer_token() if template.startswith("/offers/") else world.account_token()
        for url in BAD_URLS:
            if method == "GET":
                response = expect_no_500(
                    app,
                    lambda p=path, q={"t": token, "return_url": url}: client.get(p, query_string=q),
                    path,
                )
            else:
                data = {"t": token, "csrf_token": csrf, "return_url": url, "amount": "x"}
                response = expect_no_500(app, lambda p=path, d=data: client.post(p, data=d), path)
            assert "evil.example" not in response.headers.get("Location", "")
            assert "evil.example" not in response.get_data(as_text=True)


@pytest.mark.parametrize("account_id", ["acme", "other", "newco"])
def test_every_account_page_and_form_answers_each_kind_of_account_clearly(
    app, client, world, csrf, account_id
) -> None:
    token = world.account_token(account_id)
    form = {"t": token, "csrf_token": csrf, "amount": "0", "at": "2026-11-15T12:00:00+00:00"}
    choices = [{}, {"tier": "pro"}, {"tier": "free"}, {"tier": "starter", "interval": "year"}]
    for template, method in ACCOUNT_PAGES:
        path = world.path(template)
        for extra in choices:
            if method == "GET":
                query = {"t": token, **extra}
                expect_no_500(app, lambda p=path, q=query: client.get(p, query_string=q), path)
            else:
                data = {**form, **extra}
                expect_no_500(app, lambda p=path, d=data: client.post(p, data=d), path)


@pytest.mark.parametrize("key", ["", " ", "k" * 256, "\t", "\u00e9t\u00e9", "a\x7fb", "key-1"])
def test_a_bad_idempotency_key_header_is_a_clear_4xx(app, world, admin, key) -> None:
    body = {"account_id": "acme", "feature": "api_calls", "quantity": 1, "idempotency_key": "other"}
    response = expect_no_500(
        app,
        lambda: admin.post("/v1/usage", json=body, headers={"Idempotency-Key": key}),
        "/v1/usage",
    )
    assert response.status_code == 422, response.get_json()
    assert "dempotency" in response.get_json()["error"]["message"]


# ---- the Stripe webhook ------------------------------------------------------------------------


class _StripeDouble:
    """Stripe as the webhook handlers see it: knows no subscription, no change."""

    name = "stripe"

    def fetch_subscription(self, external_id: str) -> None:
        return None

    def find_change(self, idempotency_key: str) -> None:
        return None

    def subscriptions_of(self, customer_external_id: str, account_id: str) -> list[Any]:
        return []

    def customer_balance(self, customer_external_id: str) -> None:
        return None


@pytest.fixture
def webhooks_on(app) -> None:
    app.config["STRIPE_WEBHOOK_SECRET"] = WEBHOOK_SECRET
    app.extensions["tiergate.billing"] = _StripeDouble()


def _event(**overrides: Any) -> dict[str, Any]:
    event = {
        "id": "evt_sweep_1",
        "object": "event",
        "created": 1_790_000_000,
        "type": "customer.subscription.updated",
        "data": {"object": {"id": "sub_x", "object": "subscription", "metadata": {}}},
    }
    event.update(overrides)
    return event


def _sign_bytes(body: bytes, timestamp: int = 1_790_000_000) -> str:
    """A Stripe-Signature over any bytes (sign_payload wants UTF-8 text)."""
    signed = str(timestamp).encode() + b"." + body
    digest = hmac.new(WEBHOOK_SECRET.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _post_webhook(
    client: Any, body: bytes, signature: str | None, content_type: str = "application/json"
) -> Any:
    headers = {"Content-Type": content_type}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return client.post("/webhooks/stripe", data=body, headers=headers)


def test_unsigned_or_forged_webhooks_are_400_and_store_nothing(
    app, client, world, webhooks_on
) -> None:
    body = event_payload(_event())
    good = sign_payload(body, WEBHOOK_SECRET)
    timestamp = good.split(",")[0]
    cases: list[tuple[bytes, str | None]] = [
        (body, None),
        (body, ""),
        (body, "garbage"),
        (body, "t=,v1="),
        (body, "t=abc,v1=def"),
        (body, f"{timestamp},v1=" + "0" * 64),
        (body, sign_payload(body, "whsec_someone_else")),
        (body, sign_payload(body, WEBHOOK_SECRET, timestamp=1)),  # replayed long after
        (body + b" ", good),  # body changed after signing
        (body, good.replace("v1=", "v0=")),
        (body, "é" * 100),
        (body, "t=" + "9" * 5000 + ",v1=" + "a" * 64),
        (b"", good),
        (b"\xff\xfe", _sign_bytes(b"\xff\xfe")),
    ]
    before = snapshot(app)
    for payload, signature in cases:
        response = expect_rejected(
            app, lambda p=payload, s=signature: _post_webhook(client, p, s), "/webhooks/", before
        )
        assert response.status_code == 400, (signature, response.get_json())


GARBAGE_EVENTS: list[Any] = [
    b"not json",
    b"{",
    b"[]",
    b"null",
    b'"evt_1"',
    b"1",
    {},
    _event(id=None),
    _event(id=5),
    _event(id="in_1"),
    _event(id="evt_" + "x" * 100),
    _event(type=""),
    _event(type=None),
    _event(created="yesterday"),
    _event(created=True),
    _event(created=None),
    _event(data=None),
    _event(data={"object": None}),
    _event(data={"object": "sub_1"}),
    _event(data=[]),
    _event(object="v2.core.event"),
]


def test_signed_but_malformed_events_are_400_and_store_nothing(
    app, client, world, webhooks_on
) -> None:
    before = snapshot(app)
    for event in GARBAGE_EVENTS:
        body = event if isinstance(event, bytes) else event_payload(event)
        response = expect_rejected(
            app,
            lambda b=body: _post_webhook(client, b, sign_payload(b, WEBHOOK_SECRET)),
            "/webhooks/",
            before,
        )
        assert response.status_code == 400, (event, response.get_json())


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ({"id": "sub_1", "metadata": []}, "data.object.metadata"),
        ({"id": "sub_1", "metadata": "tiergate=1"}, "data.object.metadata"),
        ({"id": "sub_1", "metadata": {"tiergate": 1}}, "data.object.metadata"),
        ({"id": "in_1", "parent": ["subscription_details"]}, "data.object.parent"),
        (
            {"id": "in_1", "parent": {"subscription_details": {"metadata": ["tiergate"]}}},
            "data.object.parent.subscription_details.metadata",
        ),
        (
            {"id": "in_1", "subscription_details": {"metadata": 1}},
            "data.object.subscription_details.metadata",
        ),
    ],
)
@pytest.mark.parametrize("type_", ["customer.subscription.updated", "invoice.paid"])
def test_a_signed_event_with_odd_metadata_is_400_naming_the_field(
    app, client, world, webhooks_on, obj, field, type_
) -> None:
    body = event_payload(_event(id="evt_odd", type=type_, data={"object": obj}))
    response = expect_rejected(
        app,
        lambda: _post_webhook(client, body, sign_payload(body, WEBHOOK_SECRET)),
        "/webhooks/",
    )
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "malformed_event" and f"'{field}'" in error["message"]


def test_signed_events_with_odd_objects_never_fail_with_a_500(
    app, client, world, webhooks_on
) -> None:
    types = [
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.created",
        "invoice.paid",
        "invoice.payment_failed",
        "invoice.voided",
        "checkout.session.completed",
        "payment_intent.succeeded",
        "unknown.event",
    ]

    @SWEEP
    @given(
        type_=st.sampled_from(types),
        obj=st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "object",
                    "metadata",
                    "customer",
                    "status",
                    "subscription",
                    "lines",
                    "parent",
                    "amount_paid",
                    "currency",
                    "created",
                    "status_transitions",
                    "mode",
                    "client_reference_id",
                ]
            ),
            JSON_VALUES,
            max_size=6,
        ),
        n=st.integers(min_value=0, max_value=10**9),
    )
    def run(type_: str, obj: dict[str, Any], n: int) -> None:
        event = _event(id=f"evt_fuzz_{n}", type=type_, data={"object": obj})
        body = event_payload(event)
        expect_no_500(
            app,
            lambda: _post_webhook(client, body, sign_payload(body, WEBHOOK_SECRET)),
            "/webhooks/",
        )

    run()


def test_a_replayed_webhook_changes_nothing_the_second_time(
    app, client, world, webhooks_on
) -> None:
    body = event_payload(_event(id="evt_replayed"))
    first = _post_webhook(client, body, sign_payload(body, WEBHOOK_SECRET))
    assert first.status_code == 200, first.get_json()
    before = snapshot(app)
    again = _post_webhook(client, body, sign_payload(body, WEBHOOK_SECRET))
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    assert snapshot(app) == before


def test_webhooks_without_a_secret_say_how_to_configure_them(app, client, world) -> None:
    body = event_payload(_event())
    response = _post_webhook(client, body, "garbage")
    assert response.status_code == 503
    assert "TIERGATE_STRIPE_WEBHOOK_SECRET" in response.get_json()["error"]["message"]


# ---- catalog files ---------------------------------------------------------------------------


def _alias_bomb() -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


DEMO_TEXT = DEMO_CATALOG.read_text(encoding="utf-8")
BAD_CATALOGS: dict[str, tuple[bytes, str]] = {
    "binary": (b"\x00\xff\xfe\x89PNG", "cannot read the file"),
    "utf-16": (DEMO_TEXT.encode("utf-16"), "cannot read the file"),
    "alias bomb": (_alias_bomb().encode(), "more than 100,000 values"),
    "nested lists": (b"x: " + b"[" * 5000 + b"]" * 5000, "nested too deeply"),
    "nested mappings": (
        ("x:\n" + "".join(" " * i + "a:\n" for i in range(1, 3000))).encode(),
        "nested too deeply",
    ),
    "5000-digit price": (
        DEMO_TEXT.replace("month: {usd: 4900", "month: {usd: 4" + "9" * 5000, 1).encode(),
        "(4300 digits) for integer string conversion",
    ),
    "infinite price": (
        DEMO_TEXT.replace("month: {usd: 4900", "month: {usd: .inf", 1).encode(),
        "prices are integer minor units (1999 for 19.99), not inf",
    ),
    "year 0 date": (DEMO_TEXT.replace("format: 1", "format: 1\nx: 0000-00-00").encode(), "year 0"),
    "not a mapping": (b"- tiers\n- features\n", "a list"),
}


@pytest.mark.parametrize("name", sorted(BAD_CATALOGS))
def test_an_invalid_catalog_file_is_reported_never_a_traceback(app, tmp_path, name) -> None:
    content, expected = BAD_CATALOGS[name]
    path = tmp_path / "catalog.yaml"
    path.write_bytes(content)
    before = snapshot(app)
    for command in (["validate", str(path)], ["publish", str(path), "--note", "sweep"]):
        result = app.test_cli_runner().invoke(catalog_group, command)
        assert result.exit_code not in (0, None), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(
            result.exception
        )
        assert "Traceback" not in result.output
        assert expected in result.output, result.output
    assert snapshot(app) == before
