"""The customer pages framed by the host app on another site, in headless Chromium.

tiergate is served over HTTPS on https://127.0.0.1:<port> (a throwaway certificate); the host
app's page on https://localhost:<another port> (an allowed origin, and another site) frames
the offer page. The forms' CSRF token lives in tiergate's session cookie, which the browser
sends from inside the frame only when the cookie allows cross-site use.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from html import escape
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from billing import portal
from gating.models import OfferEvent, Subscription
from tests.billing.conftest import quote_offer, set_gauge, subscribe
from tests.conftest import DEMO_CATALOG, wipe
from tiergate import create_app
from tiergate.db import get_db
from tiers import store
from tiers.loader import load_catalog_file

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (the browser is told to accept it)."""
    if shutil.which("openssl") is None:
        pytest.fail("the framed-page tests need the openssl command (apt-get install openssl)")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


@pytest.fixture
def https_app(schema, database_url, clock, certificate, host_app) -> Iterator[tuple[Any, str]]:
    """tiergate configured as deployed (an https:// TIERGATE_BASE_URL, the host app's origin
    in TIERGATE_BILLING_RETURN_ORIGINS), served over TLS on a free port."""
    wipe(schema)
    holder: dict[str, Any] = {}
    server = make_server(
        "127.0.0.1",
        0,
        lambda environ, start: holder["app"](environ, start_response=start),
        threaded=True,
        ssl_context=certificate,
    )
    base = f"https://127.0.0.1:{server.server_port}"
    app = holder["app"] = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test-secret-key-not-for-production",
            "CLOCK": clock,
            "BASE_URL": base,
            "BILLING_RETURN_ORIGINS": host_app[0],
        }
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, base
    finally:
        server.shutdown()
        thread.join(timeout=5)
        get_db(app).engine.dispose()


@pytest.fixture
def host_app(certificate) -> Iterator[tuple[str, dict[str, str]]]:
    """The host app's billing settings page, framing `framing["url"]`; served on
    https://localhost:<port>: another site than 127.0.0.1, and on this machine as the
    browser's local network checks want. Yields (its origin, framing)."""
    framing: dict[str, str] = {}

    def page(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        html = f'<!doctype html><title>Trackly</title><iframe src="{escape(framing["url"])}"'
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [(html + ' width="900" height="900"></iframe>').encode()]

    server = make_server("127.0.0.1", 0, page, threaded=True, ssl_context=certificate)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{server.server_port}", framing
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def framed(browser, host_app) -> Iterator[Callable[[str], Any]]:
    """`framed(url)`: the host app's page framing `url`, open in the browser."""
    origin, framing = host_app
    context = browser.new_context(ignore_https_errors=True)

    def open_framed(url: str) -> Any:
        framing["url"] = url
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(f"{origin}/settings/billing")
        return page

    yield open_framed
    context.close()


def _offer_link(app: Any, clock: Any) -> tuple[str, str]:
    """A Starter subscriber over its projects limit, and the signed link of its Pro offer."""
    catalog, source = load_catalog_file(DEMO_CATALOG)
    with get_db(app).session() as s:
        published = store.publish(
            s, catalog, source=source, author="test", note="demo", now=clock.now()
        )
        version = published.version.version
        subscribe(s, "acme", clock, version)
        set_gauge(s, "acme", "projects", 10, clock)
        offer = quote_offer(s, "acme", clock, version, amount_due_today=1000, new_recurring=2900)
        offer_id = offer.id
    return offer_id, portal.offer_link(app.config, "acme", offer_id)


def test_upgrade_now_in_the_host_apps_frame_on_another_site_upgrades_the_plan(
    https_app, clock, framed
) -> None:
    """The host app frames the offer page from another site; "Upgrade now" inside the frame
    upgrades the plan: the form's session cookie reaches tiergate from the frame, and the
    form's Referer (checked over HTTPS) is the offer page itself, not the host app."""
    app, base = https_app
    offer_id, link = _offer_link(app, clock)
    page = framed(link)
    posts: list[Any] = []
    page.on("request", lambda request: posts.append(request) if request.method == "POST" else 0)
    frame = page.frame_locator("iframe")
    frame.locator("button[data-pay]").first.click()
    frame.locator("h1").filter(has_not_text="Upgrade").first.wait_for()
    shown = frame.locator("main").inner_text()
    assert "did not keep its session" not in shown, shown
    with get_db(app).sessionmaker() as s:
        assert s.scalar(select(Subscription.tier_id)) == "pro"
    assert [p.url for p in posts] == [f"{base}/offers/{offer_id}/accept"]
    assert posts[0].all_headers()["referer"].startswith(f"{base}/offers/{offer_id}?t=")


def test_not_now_in_the_host_apps_frame_on_another_site_records_the_dismissal(
    https_app, clock, framed
) -> None:
    """ "Not now" inside the host app's frame (another site) is recorded: the offer is not
    brought up again within the cooldown."""
    app, _ = https_app
    offer_id, link = _offer_link(app, clock)
    page = framed(link)
    frame = page.frame_locator("iframe")
    frame.get_by_role("button", name="Not now").click()
    frame.get_by_role("heading", name="No problem").wait_for()
    with get_db(app).sessionmaker() as s:
        kinds = s.scalars(select(OfferEvent.type).where(OfferEvent.offer_id == offer_id)).all()
    assert "dismissed" in kinds
