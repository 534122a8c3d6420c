"""Registers every package's blueprints and the OpenAPI document."""

from __future__ import annotations

from typing import Any

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
    # The session cookie holds the billing forms' CSRF token only. Secure over HTTPS, Lax
    # always, unless the configuration says otherwise (Flask's own defaults are False, None).
    if app.config.get("SESSION_COOKIE_SECURE") is False:
        app.config["SESSION_COOKIE_SECURE"] = https
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
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
