"""One JSON error shape at the edge: {"error": {"code", "message", "details"}}; no tracebacks."""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask, Response, current_app, jsonify, make_response, render_template, request
from flask_wtf.csrf import CSRFError
from marshmallow import ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException, UnprocessableEntity

from tiergate.exceptions import TiergateError, Unauthorized, http_status

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str, details: Any = None) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "details": details}})
    response.status_code = status
    return response


def wants_json() -> bool:
    path = request.path
    if path.startswith(("/v1/", "/webhooks/", "/openapi")):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json"


def _describe_validation(messages: Any) -> str:
    """'field: problem; other.field: problem' from marshmallow's nested messages."""
    parts: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "_schema":  # marshmallow's key for errors about the whole object
                    walk(value, path)
                else:
                    walk(value, f"{path}.{key}" if path else str(key))
        elif isinstance(node, list) and node and all(isinstance(m, str) for m in node):
            parts.append(f"{path}: {' '.join(node)}" if path else " ".join(node))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")
        else:
            parts.append(f"{path or 'body'}: {node}")

    walk(messages, "")
    return "; ".join(parts)


def _malformed_json_message(cause: Any) -> str:
    where = ""
    if isinstance(cause, json.JSONDecodeError):
        where = f" (line {cause.lineno}, column {cause.colno}: {cause.msg})"
    elif isinstance(cause, ValueError):  # a number too long, arrays nested too deeply
        where = f" ({cause})"
    return f"The request body is not valid JSON{where}."


def _way_back() -> dict[str, str]:
    """The customer's billing page and the app to go back to, when the request can tell."""
    if current_app.extensions.get("tiergate.billing") is None:
        return {}
    try:
        from billing import portal  # the billing pages: present in the full app

        return portal.way_back(current_app.config, request.values, request.view_args)
    except Exception:  # noqa: BLE001 - an error page must render whatever the request holds
        return {}


def init_app(app: Flask) -> None:
    @app.errorhandler(TiergateError)
    def _domain(exc: TiergateError) -> Any:
        status = http_status(exc)
        if wants_json():
            response = error_response(status, exc.code, exc.message, exc.details)
            if isinstance(exc, Unauthorized):
                response.headers["WWW-Authenticate"] = 'Bearer realm="tiergate"'
            return response
        page = render_template("error.html", status=status, message=exc.message, **_way_back())
        return page, status

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError) -> Any:
        messages = exc.normalized_messages()
        return error_response(422, "invalid_request", _describe_validation(messages), messages)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        status = exc.code or 500
        # flask-smorest / webargs raise 422 with the marshmallow messages attached.
        data = getattr(exc, "data", None)
        if isinstance(exc, UnprocessableEntity) and data and "messages" in data:
            messages = data["messages"]
            if isinstance(messages, dict) and len(messages) == 1:
                messages = next(iter(messages.values()))  # drop the "json"/"query" location level
            return error_response(422, "invalid_request", _describe_validation(messages), messages)
        code = (exc.name or "error").lower().replace(" ", "_")
        message = exc.description or exc.name
        cause = getattr(exc, "exc", None)  # webargs' abort keeps the JSONDecodeError here
        if status == 400 and ("JSON" in (message or "") or isinstance(cause, ValueError)):
            code, message = "malformed_json", _malformed_json_message(cause)
        if wants_json():
            return error_response(status, code, message)
        if isinstance(exc, CSRFError):  # a billing form's token missing or too old
            message = (
                "This page was open too long, or your browser did not keep its session, so "
                "the form was not sent and nothing was changed or charged. Go back, reload the "
                "page and try again."
            )
        page = render_template("error.html", status=status, message=message, **_way_back())
        return page, status

    @app.errorhandler(DBAPIError)
    def _database(exc: DBAPIError) -> Any:
        if not exc.connection_invalidated and not isinstance(exc, OperationalError):
            return _unexpected(exc)
        log.warning("database unavailable on %s %s: %s", request.method, request.path, exc.orig)
        message = "The database is unavailable for a moment; retry the request."
        if wants_json():
            response = error_response(503, "database_unavailable", message)
        else:
            response = make_response(render_template("error.html", status=503, message=message))
            response.status_code = 503
        response.headers["Retry-After"] = "1"
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.path)
        message = "Something went wrong on our side; it has been logged."
        if wants_json():
            return error_response(500, "internal_error", message)
        return render_template("error.html", status=500, message=message), 500
