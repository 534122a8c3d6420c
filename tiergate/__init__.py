"""tiergate: the application factory and its wiring."""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask

from tiergate.config import PROJECT_ROOT, defaults, text_from_env, validate

__all__ = ["create_app"]


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then TIERGATE_* environment variables, then `test_config`."""
    app = Flask(
        __name__,
        instance_path=str(PROJECT_ROOT / "instance"),
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "templates" / "static"),
    )
    app.config.from_mapping(defaults(app.instance_path))
    app.config.from_prefixed_env("TIERGATE")
    text_from_env(app.config, os.environ)
    if test_config:
        app.config.update(test_config)
    validate(app.config)
    app.json.sort_keys = False  # answers keep the order their schemas give
    os.makedirs(app.instance_path, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    from tiergate import db, errors, extensions, inputs, web

    db.init_app(app)
    extensions.init_app(app)
    inputs.init_app(app)  # before any blueprint's own checks: no NUL reaches a view
    web.init_app(app)
    errors.init_app(app)  # last: our JSON error shape wins over any extension's handler
    return app
