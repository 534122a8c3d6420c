"""Registers every package's blueprints and the OpenAPI document."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Request, Response, current_app, request
from flask.sessions import SecureCookieSessionInterface, SessionMixin

API_PREFIXES = ("/v1/", "/webhooks/")


class PagesOnlySessions(SecureCookieSessionInterface):
    """Cookie sessions for the pages only (CSRF tokens of the billing forms).

    Server-to-server calls (the API, Stripe's webhooks) carry no cookies and never use a
    session, so they skip decoding one: measurable on the gate's hot path.
    """

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        if request.path.startswith(API_PREFIXES):
            return self.null_session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: Any, response: Any) -> None:
        if self.is_null_session(session):
            return
        super().save_session(app, session, response)


def init_app(app: Flask) -> None:
    app.session_interface = PagesOnlySessions()
    https = str(app.config.get("BASE_URL", "")).startswith("https://")
    # The session cookie holds the billing forms' CSRF token only. Secure over HTTPS, and
    # SameSite as framing needs, unless the configuration says otherwise (Flask's own
    # defaults are False, None).
    if app.config.get("SESSION_COOKIE_SECURE") is False:
        app.config["SESSION_COOKIE_SECURE"] = https
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        _session_cookie_for_framing(app.config, https)
    app.after_request(_page_headers)
    from billing import web as billing_web
    from tiergate import api
    from tiers import web as tiers_web

    api.init_app(app)  # first: packages register their flask-smorest blueprints on it
    tiers_web.init_app(app)
    from gating import api as gating_api

    gating_api.init_app(app)
    from billing import webhook_web  # POST /webhooks/stripe

    webhook_web.init_app(app)
    billing_web.init_app(app)


def _session_cookie_for_framing(config: Any, https: bool) -> None:
    """Lax, unless another site may frame the pages: inside its frame a browser sends no
    Lax cookie, so every form there would be refused as a lost session. Then, over HTTPS
    only (browsers drop SameSite=None without Secure), the cookie is `SameSite=None; Secure;
    Partitioned`: usable in a frame, and kept apart for each site that frames it (Chrome's
    CHIPS, which stays allowed where third-party cookies are blocked)."""
    from billing.portal import allowed_origins

    own = str(config["BASE_URL"])
    framed_elsewhere = any(not _same_site(own, o) for o in allowed_origins(config))
    if https and config.get("SESSION_COOKIE_SECURE") and framed_elsewhere:
        config["SESSION_COOKIE_SAMESITE"] = "None"
        config["SESSION_COOKIE_PARTITIONED"] = True  # Flask 3.1+; older ones leave it out
    else:
        config["SESSION_COOKIE_SAMESITE"] = "Lax"


def _same_site(a: str, b: str) -> bool:
    """Whether a browser surely takes two origins for one site: the same scheme, and the
    same host or one under the other (`example.com`, `billing.example.com`). Siblings such
    as `app.example.com` and `billing.example.com` are one site only when `example.com` is
    not a public suffix (as `github.io` is), which needs the public suffix list: they count
    as two sites, whose cookie then works in a frame all the same."""
    one, other = urlsplit(a), urlsplit(b)
    host, other_host = (one.hostname or "").rstrip("."), (other.hostname or "").rstrip(".")
    if one.scheme.lower() != other.scheme.lower() or not host or not other_host:
        return False
    if host == other_host:
        return True
    if _is_ip(host) or _is_ip(other_host):
        return False
    return host.endswith("." + other_host) or other_host.endswith("." + host)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


PRIVATE_PAGES = ("/billing", "/offers/")  # carry a customer's signed link and account data


def _page_headers(response: Response) -> Response:
    """Pages may be framed only by this service and the host app's allowed origins (no
    clickjacking of a one-click payment); customer pages are never cached and never send
    their signed link to another site in a Referer."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.mimetype != "text/html":
        return response
    from billing.portal import allowed_origins

    framers = sorted(allowed_origins(current_app.config))
    response.headers.setdefault(
        "Content-Security-Policy", "frame-ancestors 'self' " + " ".join(framers)
    )
    if len(framers) <= 1:  # browsers without CSP: only this origin may frame it
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    private = request.path.startswith(PRIVATE_PAGES) or request.args.get("t")
    if private and request.method == "GET":  # (a POST's page: Back must still show it)
        response.headers["Cache-Control"] = "no-store"
    if private:
        # Not "no-referrer": over HTTPS the forms' CSRF check needs a same-origin Referer.
        response.headers.setdefault("Referrer-Policy", "same-origin")
    return response
