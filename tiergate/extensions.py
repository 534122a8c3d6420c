"""Per-app services kept in app.extensions: the clock (injectable) and the billing provider."""

from __future__ import annotations

from flask import Flask, current_app

from tiergate.clock import Clock, SystemClock


def init_app(app: Flask) -> None:
    app.extensions["tiergate.clock"] = app.config.get("CLOCK") or SystemClock()


def get_clock() -> Clock:
    return current_app.extensions["tiergate.clock"]
