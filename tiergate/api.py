"""The HTTP API's OpenAPI document (flask-smorest) and a self-contained docs page at /docs."""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

import flask_smorest
import marshmallow as ma
from flask import Flask, current_app, render_template
from flask_smorest import Api
from webargs.flaskparser import FlaskParser

API_DESCRIPTION = (
    "Server-to-server API of tiergate: ask whether an account may use a feature, record usage, "
    "manage accounts and overrides, and follow upgrade offers. Authenticate every request with "
    "an API key (`tiergate apikey create`) sent as `Authorization: Bearer tg_...`. Each key has "
    "scopes: `gate` (check, usage, entitlements, offers), `accounts` (accounts and overrides), "
    "`admin` (everything). Errors always have the shape "
    '`{"error": {"code", "message", "details"}}`.'
)


class ErrorBodySchema(ma.Schema):
    code = ma.fields.String(
        required=True,
        metadata={"description": "Stable machine code, e.g. invalid_request, not_found"},
    )
    message = ma.fields.String(
        required=True, metadata={"description": "What was wrong and where, for humans"}
    )
    details = ma.fields.Raw(
        allow_none=True, metadata={"description": "Structured details (per-field messages...)"}
    )


class ErrorSchema(ma.Schema):
    """Every error answer: {"error": {"code", "message", "details"}}."""

    error = ma.fields.Nested(ErrorBodySchema, required=True)


class JsonBodyParser(FlaskParser):
    """webargs' parser, also answering 400 malformed_json for JSON that Python cannot read.

    webargs turns only JSONDecodeError into a 400; json.loads also raises ValueError for a
    number of more than 4300 digits and RecursionError for arrays nested thousands deep.
    Unknown query parameters are refused by name, as unknown body fields are (webargs drops
    them by default: a misspelt `account_id` would silently skip an ownership check).
    """

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": None}

    def _raw_load_json(self, req: Any) -> Any:
        try:
            document = super()._raw_load_json(req)
            body = req.get_data(cache=True)
            if _MAYBE_NOT_FINITE.search(body) and not _finite(document):
                # Python reads NaN, Infinity and 1e400 (as inf); JSON has no such numbers, and
                # no field may keep one (an account's metadata could no longer be answered).
                raise _NotJson("NaN, Infinity and numbers too large for a float are not JSON")
            return document
        except json.JSONDecodeError:
            raise  # webargs answers it (and treats an empty body as no body)
        except RecursionError:
            self._handle_invalid_json_error(ValueError("nested too deeply"), req)  # type: ignore[arg-type]
        except _NotJson as exc:
            self._handle_invalid_json_error(exc, req)  # type: ignore[arg-type]
        except ValueError:  # int()'s limit on digits
            too_long = ValueError(f"a number has more than {sys.get_int_max_str_digits()} digits")
            self._handle_invalid_json_error(too_long, req)  # type: ignore[arg-type]


class _NotJson(ValueError):
    """A body Python's json module reads but JSON does not allow."""


# NaN, Infinity, a large exponent, or a number of 300+ digits (floats end near 1.8e308)
_MAYBE_NOT_FINITE = re.compile(rb"NaN|Infinity|\d[eE][+]?\d{3}|\d{300}")


def _finite(node: Any) -> bool:
    """No float in the document is NaN or infinite."""
    if isinstance(node, float):
        return math.isfinite(node)
    if isinstance(node, dict):
        return all(_finite(v) for v in node.values())
    if isinstance(node, list):
        return all(_finite(v) for v in node)
    return True


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint with the JsonBodyParser: every v1 blueprint uses this one."""

    ARGUMENTS_PARSER = JsonBodyParser()


class TiergateApi(Api):
    """flask-smorest's Api documenting our error shape and leaving error handling to us."""

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        # tiergate/errors.py owns every error answer, so the JSON shape is the same everywhere.
        return None


def init_app(app: Flask) -> TiergateApi:
    """Create the app's Api: /openapi.json, the bearer security scheme and /docs."""
    app.config.setdefault("API_TITLE", "tiergate")
    app.config.setdefault("API_VERSION", "v1")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", "/")
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    api = TiergateApi(
        app,
        spec_kwargs={
            "info": {"description": API_DESCRIPTION},
            "servers": [{"url": app.config["BASE_URL"]}],
        },
    )
    api.spec.components.security_scheme(
        "bearerAuth",
        {"type": "http", "scheme": "bearer", "description": "An API key: tg_<prefix>_<secret>"},
    )
    app.extensions["tiergate.api"] = api
    app.add_url_rule("/docs", "api_docs", _docs_page)
    return api


def get_api(app: Flask | None = None) -> TiergateApi:
    """The app's Api; other packages register their flask-smorest blueprints on it."""
    return (app or current_app).extensions["tiergate.api"]


def _docs_page() -> str:
    spec = get_api().spec.to_dict()
    return render_template("api_docs.html", doc=docs_view(spec))


_METHODS = ("get", "put", "post", "patch", "delete")


def docs_view(spec: dict[str, Any]) -> dict[str, Any]:
    """A view model of the OpenAPI document for the HTML docs page."""
    components = spec.get("components", {})
    operations = []
    for path, item in spec.get("paths", {}).items():
        shared = item.get("parameters", [])
        for method in _METHODS:
            if method not in item:
                continue
            op = item[method]
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            operations.append(
                {
                    "anchor": f"{method}-{path}".replace("/", "-")
                    .replace("{", "")
                    .replace("}", ""),
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "tags": op.get("tags", []),
                    "scopes": op.get("x-required-scopes", []),
                    "parameters": [
                        _resolve(p, components) for p in shared + op.get("parameters", [])
                    ],
                    "body": _schema_name(body.get("schema")),
                    "responses": [
                        {
                            "status": status,
                            "description": resp.get("description", ""),
                            "schema": _schema_name(
                                resp.get("content", {}).get("application/json", {}).get("schema")
                            ),
                        }
                        for status, resp in sorted(
                            ((s, _resolve(r, components)) for s, r in op["responses"].items()),
                            key=lambda pair: (not pair[0].isdigit(), pair[0]),
                        )
                    ],
                }
            )
    schemas = [
        {"name": name, "description": schema.get("description", ""), "fields": _fields(schema)}
        for name, schema in components.get("schemas", {}).items()
    ]
    return {
        "info": spec.get("info", {}),
        "openapi": spec.get("openapi", ""),
        "operations": operations,
        "schemas": schemas,
        "security": components.get("securitySchemes", {}),
    }


def _resolve(obj: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    ref = obj.get("$ref")
    if not ref:
        return obj
    _, _, kind, name = ref.split("/", 3)
    return components.get(kind, {}).get(name, {})


def _schema_name(schema: dict[str, Any] | None) -> str | None:
    if not schema:
        return None
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if schema.get("allOf"):
        return _schema_name(schema["allOf"][0])
    if schema.get("type") == "array" and "items" in schema:
        inner = _schema_name(schema["items"])
        return f"list of {inner}" if inner else "array"
    return schema.get("type", "object")


def _fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        limits = []
        for key, label in (
            ("minimum", "min"),
            ("maximum", "max"),
            ("minLength", "min length"),
            ("maxLength", "max length"),
        ):
            if key in prop:
                limits.append(f"{label} {prop[key]}")
        if "enum" in prop:
            limits.append("one of " + ", ".join(str(v) for v in prop["enum"] if v is not None))
        rows.append(
            {
                "name": name,
                "type": _schema_name(prop) or "any",
                "required": name in required,
                "nullable": bool(prop.get("nullable")),
                "limits": "; ".join(limits),
                "description": prop.get("description", ""),
            }
        )
    return rows
