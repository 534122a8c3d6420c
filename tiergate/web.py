"""Registers every package's blueprints and the OpenAPI document."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
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
