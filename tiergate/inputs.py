"""Input no view should have to guess about, refused before any view runs, naming where (422):

- a NUL character: PostgreSQL text cannot store one, and no id, name, form value or header has
  a use for it;
- a query parameter given twice with different values (`since=...&since=garbage`): which one
  counts would be an accident of order (an offer's `account_id` check saw only the first).
  (A header sent twice reaches the app as one value joined with ", ", as WSGI servers pass it.)
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

import click
from flask import Flask, request

from tiergate.exceptions import InvalidRequest

NUL = "\x00"
# \u0000 inside a JSON string, not preceded by an escaped backslash (which would make it text)
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def init_app(app: Flask) -> None:
    """Check every request before its view (webhook bodies excepted: Stripe signs what it sends)."""
    app.before_request(refuse_nul)
    app.before_request(refuse_ambiguous)


def refuse_ambiguous() -> None:
    """A query parameter sent twice with different values."""
    if not request.environ.get("QUERY_STRING"):
        return  # (the gate's calls have none)
    for name, values in request.args.lists():
        if len(set(values)) > 1:
            raise InvalidRequest(
                f"Query parameter {name!r} was given {len(values)} times with different values:"
                " send it once.",
                details={"location": "query", "field": name},
            )


def refuse_nul() -> None:
    where = _nul_in_request()
    if where is not None:
        location, name = where
        if location == "json" and name.startswith(SURROGATE_MARK):
            name = name[len(SURROGATE_MARK) :]
            raise InvalidRequest(
                f"{name} must be valid Unicode text: it holds a lone surrogate (\\ud800 to "
                "\\udfff), which is half of a character.",
                details={"location": location, "field": name},
            )
        raise InvalidRequest(
            f"{name} must not contain the NUL character (\\u0000).",
            details={"location": location, "field": name},
        )


SURROGATE_MARK = "surrogate:"
# An escaped UTF-16 surrogate in a JSON string: a pair (an emoji) is fine, a lone one is not
# text (it cannot be stored); the walk below tells them apart.
_JSON_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _nul_in_request() -> tuple[str, str] | None:
    req = request._get_current_object()  # type: ignore[attr-defined]  # once: the gate is hot
    if NUL in req.path:
        return "path", "The URL path"
    environ = req.environ
    query = environ.get("QUERY_STRING", "")
    if "%00" in query or NUL in query:  # the only ways a parameter can hold one: then look
        for name, value in req.args.items(multi=True):
            if NUL in name or NUL in value:
                return "query", f"Query parameter {name!r}"
    if NUL in "".join([value for value in environ.values() if type(value) is str]):
        for name, value in req.headers.items():  # (the headers are among those values)
            if NUL in value and name != "Authorization":  # a key with a NUL is not valid: 401
                return "header", f"Header {name!r}"
    if req.mimetype in _FORMS:
        req.get_data(cache=True)  # so that the form is parsed from a copy and views still
        # see the body (the API answers 415 to a form body: it must find one to refuse)
        for name, value in req.form.items(multi=True):
            if NUL in name or NUL in value:
                return "form", f"Form field {name!r}"
    if req.is_json and not req.path.startswith("/webhooks/"):
        body = req.get_data(cache=True)
        if b"u0000" in body and _JSON_NUL.search(body):  # the cheap test first: the gate is hot
            return "json", _json_field(body)
        if b"\\u" in body and _JSON_SURROGATE.search(body):
            field = _json_field(body, _not_text)
            if field != "The JSON body":
                return "json", SURROGATE_MARK + field
    return None


def _not_text(value: str) -> bool:
    """A string that is not Unicode text: it holds a lone surrogate (no UTF-8 for it)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _json_field(body: bytes, bad: Any = None) -> str:
    """'JSON field 'metadata.note'' for the first string (or key) holding a NUL, or for which
    `bad` says so, else 'The JSON body'."""
    bad = bad or (lambda text: NUL in text)
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return "The JSON body"  # the parser answers for the rest

    def walk(node: Any, path: str) -> str | None:
        if isinstance(node, str):
            return path if bad(node) else None
        if not isinstance(node, dict | list):
            return None
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            here = f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]"
            if isinstance(key, str) and bad(key):
                return here.lstrip(".")
            found = walk(value, here)
            if found is not None:
                return found.lstrip(".")
        return None

    try:
        field = walk(document, "")
    except RecursionError:
        field = None
    return f"JSON field {field!r}" if field else "The JSON body"


class OneLine(click.ParamType):
    """A command-line text value kept in the database (a name, a note, an id): one line, no
    control character. A NUL cannot be stored by PostgreSQL, and a newline would break the
    one-row-per-item listings."""

    name = "text"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
            self.fail(
                f"must be one line of text without control characters (a NUL, a newline, a "
                f"tab), in UTF-8: {value!r}",
                param,
                ctx,
            )
        return value


ONE_LINE = OneLine()
