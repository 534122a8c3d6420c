"""Registers every package's blueprints and the OpenAPI document."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from tiers import web as tiers_web

    tiers_web.init_app(app)
