"""Pricing page and catalog JSON (PLACEHOLDER: filled in by the pricing-table work)."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    return None
