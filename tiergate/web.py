"""Registers every package's blueprints and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from flask import Flask, Request
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
