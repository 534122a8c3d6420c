"""Security: framing, caching and cookies of the customer pages, signed links, signatures,
and settings that would make customer links forgeable."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import select

from billing import portal
from gating.models import Subscription
from tests.billing.conftest import form_fields, quote_offer, set_gauge, subscribe
from tests.billing.test_webhooks import (  # noqa: F401 - fixtures
    URL,
    acme,
    event,
    stripe_double,
    subscription_obj,
)
from tests.fakestripe import event_payload
from tiergate import create_app
from tiergate.config import ConfigError
from tiergate.db import get_db

pytest_plugins = ["tests.gating.api_fixtures"]


def _offer(app: Any, clock: Any, version: int) -> tuple[str, str]:
    with get_db(app).session() as s:
        subscribe(s, "acme", clock, version)
        set_gauge(s, "acme", "projects", 10, clock)
        offer = quote_offer(s, "acme", clock, version, amount_due_today=1000, new_recurring=2900)
        offer_id = offer.id
    base = app.config["BASE_URL"]
    return offer_id, portal.offer_link(app.config, "acme", offer_id).replace(base, "")


# ---- pages: framing, caching, sniffing ------------------------------------------------------


def test_the_one_click_offer_page_cannot_be_framed_by_another_site(
    app, client, clock, demo_catalog
) -> None:
    _, link = _offer(app, clock, demo_catalog.version)
    response = client.get(link)
    assert response.status_code == 200 and "Upgrade now" in response.get_data(as_text=True)
    assert response.headers["Content-Security-Policy"] == "frame-ancestors 'self' http://localhost"
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    # It carries the customer's signed link: never cached, never sent to another site.
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_the_billing_page_may_be_framed_by_the_host_apps_allowed_origins_only(
    app, client, clock, demo_catalog
) -> None:
    app.config["BILLING_RETURN_ORIGINS"] = "https://app.example.com"
    with get_db(app).session() as s:
        subscribe(s, "acme", clock, demo_catalog.version)
    response = client.get(portal.account_link(app.config, "acme").replace("http://localhost", ""))
    assert response.status_code == 200 and "Cancel subscription" in response.get_data(as_text=True)
    assert response.headers["Content-Security-Policy"] == (
        "frame-ancestors 'self' http://localhost https://app.example.com"
    )
    assert "X-Frame-Options" not in response.headers  # it cannot name two origins


def test_the_public_pricing_page_stays_cacheable(app, client, demo_catalog) -> None:
    response = client.get("/pricing")
    assert response.status_code == 200
    assert response.headers.get("Cache-Control") != "no-store"
    assert "frame-ancestors" in response.headers["Content-Security-Policy"]


def test_over_https_the_offer_form_posted_with_its_same_origin_referer_is_accepted(
    database_url, schema, clock, demo_catalog
) -> None:
    """Over HTTPS, Flask-WTF wants a same-origin Referer on every form: the pages' policy
    keeps it for this origin (with "no-referrer", every billing form answered 400)."""
    base = "https://billing.example.com"
    https = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test-secret-key-not-for-production",
            "CLOCK": clock,
            "BASE_URL": base,
        }
    )
    try:
        offer_id, link = _offer(https, clock, demo_catalog.version)
        client = https.test_client()
        page = client.get(link, base_url=base)
        assert page.headers["Referrer-Policy"] == "same-origin"
        fields = form_fields(page.get_data(as_text=True), f"/offers/{offer_id}/accept")
        url = f"/offers/{offer_id}/accept"
        refused = client.post(url, data=fields, base_url=base)  # no Referer: refused
        assert refused.status_code == 400
        accepted = client.post(url, data=fields, base_url=base, headers={"Referer": base + link})
        assert accepted.status_code == 302, accepted.get_data(as_text=True)[-300:]
    finally:
        get_db(https).engine.dispose()


def test_the_csrf_session_cookie_is_secure_and_same_site_over_https(
    database_url, schema, clock, demo_catalog
) -> None:
    https = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test-secret-key-not-for-production",
            "CLOCK": clock,
            "BASE_URL": "https://billing.example.com",
        }
    )
    try:
        _, link = _offer(https, clock, demo_catalog.version)
        response = https.test_client().get(link, base_url="https://billing.example.com")
        assert response.status_code == 200
        cookie = response.headers["Set-Cookie"]
        assert "session=" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie, cookie
    finally:
        get_db(https).engine.dispose()


def _session_cookie(database_url: str, clock: Any, version: int, **config: Any) -> set[str]:
    """The attributes of the session cookie (its forms' CSRF token) the offer page sets, for
    a service set up with `config` (BASE_URL and BILLING_RETURN_ORIGINS at least)."""
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test-secret-key-not-for-production",
            "CLOCK": clock,
            **config,
        }
    )
    try:
        _, link = _offer(app, clock, version)
        response = app.test_client().get(link, base_url=config["BASE_URL"])
        assert response.status_code == 200
        value, *attributes = (part.strip() for part in response.headers["Set-Cookie"].split(";"))
        assert value.startswith("session=")
        return set(attributes)
    finally:
        get_db(app).engine.dispose()


def test_framed_by_another_site_over_https_the_session_cookie_goes_with_the_frames_forms(
    database_url, schema, clock, demo_catalog
) -> None:
    """The host app (https://app.example.com) frames the billing pages of another site: a
    browser sends a Lax cookie in no such frame, and every form there ("Upgrade now", "Not
    now") was refused as a lost session. The cookie is SameSite=None, Secure, and
    Partitioned (kept apart for each site that frames it)."""
    cookie = _session_cookie(
        database_url,
        clock,
        demo_catalog.version,
        BASE_URL="https://billing.example.net",
        BILLING_RETURN_ORIGINS="https://app.example.com",
    )
    assert cookie == {"SameSite=None", "Secure", "Partitioned", "HttpOnly", "Path=/"}


@pytest.mark.parametrize(
    ("base", "framers"),
    [
        ("https://billing.example.com", ""),  # no other origin may frame the pages
        ("https://billing.example.com", "https://example.com"),  # the app on the parent domain
        ("https://billing.example.com", "https://billing.example.com:8443"),  # another port
        ("https://example.com", "https://app.example.com"),
    ],
)
def test_framed_by_its_own_site_only_the_session_cookie_stays_lax(
    database_url, schema, clock, demo_catalog, base, framers
) -> None:
    cookie = _session_cookie(
        database_url, clock, demo_catalog.version, BASE_URL=base, BILLING_RETURN_ORIGINS=framers
    )
    assert cookie == {"SameSite=Lax", "Secure", "HttpOnly", "Path=/"}


def test_over_plain_http_the_session_cookie_stays_lax_whoever_frames_the_pages(
    database_url, schema, clock, demo_catalog
) -> None:
    """Browsers drop a SameSite=None cookie that is not Secure: over plain HTTP (a local
    service) the cookie stays Lax, even with another site among the framing origins."""
    cookie = _session_cookie(
        database_url,
        clock,
        demo_catalog.version,
        BASE_URL="http://127.0.0.1:5000",
        BILLING_RETURN_ORIGINS="http://localhost:3000,https://app.example.com",
    )
    assert cookie == {"SameSite=Lax", "HttpOnly", "Path=/"}


def test_the_operators_samesite_setting_wins_over_the_framing_origins(
    database_url, schema, clock, demo_catalog
) -> None:
    cookie = _session_cookie(
        database_url,
        clock,
        demo_catalog.version,
        BASE_URL="https://billing.example.net",
        BILLING_RETURN_ORIGINS="https://app.example.com",
        SESSION_COOKIE_SAMESITE="Strict",
    )
    assert cookie == {"SameSite=Strict", "Secure", "HttpOnly", "Path=/"}


# ---- return URLs -------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["http://localhost/\r\nSet-Cookie: x=1", "http://localhost/\nx"])
def test_not_now_with_a_line_break_in_return_url_is_not_followed(
    app, client, clock, demo_catalog, target
) -> None:
    offer_id, link = _offer(app, clock, demo_catalog.version)
    page = client.get(link).get_data(as_text=True)
    fields = form_fields(page, f"/offers/{offer_id}/dismiss")
    response = client.post(f"/offers/{offer_id}/dismiss", data={**fields, "return_url": target})
    assert response.status_code == 200  # the "no problem" page, not a redirect (it was a 500)
    assert "Location" not in response.headers


@pytest.mark.parametrize("control", ["\r\n", "\t", "\x00", "\x7f", " "])
def test_a_return_url_with_control_characters_is_refused(control: str) -> None:
    config = {"SECRET_KEY": "s" * 32, "BASE_URL": "https://billing.example.com"}
    assert portal.safe_return_url(config, f"https://billing.example.com/{control}x") is None
    assert portal.safe_return_url(config, "https://billing.example.com/x") is not None


# ---- signatures ----------------------------------------------------------------------------


def test_a_forged_stripe_signature_with_a_non_ascii_character_is_a_400(
    client,
    app,
    stripe_double,  # noqa: F811
    acme,  # noqa: F811
) -> None:
    body = event_payload(event("customer.subscription.updated", subscription_obj()))
    header = f"t={int(time.time())},v1=\u00e9"  # sent as latin-1, as WSGI decodes headers
    response = client.post(
        URL, data=body, headers={"Stripe-Signature": header, "Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "invalid_signature"


def test_verify_notification_refuses_a_non_ascii_signature_as_invalid() -> None:
    from tiergate_client import InvalidNotification, verify_notification

    with pytest.raises(InvalidNotification, match="does not match"):
        verify_notification(b"{}", f"t={int(time.time())},v1=\u00e9", "s" * 32)


# ---- settings --------------------------------------------------------------------------------


def _start(monkeypatch, database_url: str, **env: str) -> Any:
    for name in ("TIERGATE_SECRET_KEY", "TIERGATE_ENV", "TIERGATE_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TIERGATE_DATABASE_URL", database_url)
    for name, value in env.items():
        monkeypatch.setenv(f"TIERGATE_{name}", value)
    app = create_app()
    get_db(app).engine.dispose()
    return app


def test_a_public_deployment_refuses_the_published_development_secret(
    database_url, schema, monkeypatch
) -> None:
    """Started as the README's production line without TIERGATE_ENV: the development secret
    is in the source, so anyone could sign a billing link for any account."""
    with pytest.raises(ConfigError, match="TIERGATE_SECRET_KEY must be set.*public"):
        _start(monkeypatch, database_url, BASE_URL="https://billing.example.com")
    with pytest.raises(ConfigError, match="too short"):
        _start(monkeypatch, database_url, BASE_URL="https://b.example.com", SECRET_KEY="short")
    public = _start(
        monkeypatch, database_url, BASE_URL="https://b.example.com", SECRET_KEY="r" * 32
    )
    assert public.config["SECRET_KEY"] == "r" * 32
    local = _start(monkeypatch, database_url, BASE_URL="http://127.0.0.1:8000")
    assert local.config["ENV"] == "development"  # the demo: this machine only


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ENV", "prod", "TIERGATE_ENV must be 'development' or 'production', not 'prod'"),
        ("PAST_DUE_GRACE_DAYS", "x", "TIERGATE_PAST_DUE_GRACE_DAYS must be whole days"),
        ("PAST_DUE_GRACE_DAYS", "-3", "TIERGATE_PAST_DUE_GRACE_DAYS must be whole days"),
        ("PAST_DUE_GRACE_DAYS", "7.5", "TIERGATE_PAST_DUE_GRACE_DAYS must be whole days"),
        (
            "SESSION_COOKIE_SAMESITE",
            "Nonee",
            "TIERGATE_SESSION_COOKIE_SAMESITE must be Strict, Lax or None .*not 'Nonee'",
        ),
        ("SESSION_COOKIE_SAMESITE", "None", "TIERGATE_SESSION_COOKIE_SAMESITE=None needs HTTPS"),
    ],
)
def test_a_misspelt_setting_fails_at_start_in_one_line(
    database_url, schema, monkeypatch, name, value, message
) -> None:
    with pytest.raises(ConfigError, match=message):
        _start(monkeypatch, database_url, **{name: value})


def test_a_gate_keys_offer_link_cannot_cancel_the_plan(
    app, client, clock, demo_catalog, make_api_client
) -> None:
    """A gate key gets any offer's link from /v1/check; "Not now" on it used to hand out the
    account's billing link, from which the plan could be cancelled."""
    with get_db(app).session() as s:
        subscribe(s, "acme", clock, demo_catalog.version)
        set_gauge(s, "acme", "projects", 10, clock)
    gate = make_api_client("gate")
    assert gate.post("/v1/accounts/acme/billing_link").status_code == 403
    offer = gate.post("/v1/check", json={"account_id": "acme", "feature": "projects"}).get_json()[
        "offer"
    ]
    link = offer["accept_url"].replace("http://localhost", "")
    page = client.get(link).get_data(as_text=True)
    assert "/billing?" not in page
    fields = form_fields(page, f"/offers/{offer['id']}/dismiss")
    dismissed = client.post(f"/offers/{offer['id']}/dismiss", data=fields).get_data(as_text=True)
    assert "/billing?" not in dismissed
    error = client.get(f"/offers/{offer['id']}/done?t=bad").get_data(as_text=True)
    assert "/billing?" not in error
    with get_db(app).session() as s:
        assert s.scalar(select(Subscription)).cancel_at_period_end is False


def test_a_page_answering_a_form_stays_in_history_for_back(
    app, client, clock, demo_catalog
) -> None:
    """A page rendered for a POST (a cancel's confirmation) is not `no-store`: the browser's
    Back would otherwise land on "Confirm Form Resubmission" with no way on. GET pages are."""
    with get_db(app).session() as s:
        subscribe(s, "acme", clock, demo_catalog.version)
    token = portal.account_token(app.config, "acme")
    page = client.get(f"/billing/cancel?t={token}&return_url=http://localhost/app")
    assert page.headers["Cache-Control"] == "no-store"
    fields = form_fields(page.get_data(as_text=True), 'method="post"')
    done = client.post("/billing/cancel", data=fields)
    assert done.status_code == 200 and "ends on" in done.get_data(as_text=True)
    assert done.headers.get("Cache-Control") != "no-store"
    assert done.headers["Referrer-Policy"] == "same-origin"


def test_the_cross_sell_addon_page_has_a_way_back_to_the_app(
    app, client, clock, demo_catalog
) -> None:
    with get_db(app).session() as s:
        subscribe(s, "acme", clock, demo_catalog.version)
    token = portal.account_token(app.config, "acme", only="extended_support")
    page = client.get(
        f"/billing/addons/extended_support?t={token}&return_url=http://localhost/app"
    ).get_data(as_text=True)
    assert '<a class="button button-secondary" href="http://localhost/app">Not now' in page
