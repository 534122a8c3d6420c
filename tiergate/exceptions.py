"""Domain exceptions shared by every package. Plain Python: no Flask, no Stripe.

Each carries a stable machine `code`, a human `message` saying what was wrong and where, and
optional `details`. The HTTP edge maps them to statuses with `HTTP_STATUS` (tiergate/errors.py).
"""

from __future__ import annotations

from typing import Any


class TiergateError(Exception):
    code = "error"

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code


class InvalidRequest(TiergateError):
    """The request is well-formed JSON but says something impossible (bad quantity, wrong type)."""

    code = "invalid_request"


class NotFound(TiergateError):
    code = "not_found"


class Conflict(TiergateError):
    """The request contradicts current state (idempotency key reuse, offer already accepted)."""

    code = "conflict"


class Unauthorized(TiergateError):
    code = "unauthorized"


class Forbidden(TiergateError):
    code = "forbidden"


class PaymentFailed(TiergateError):
    """The payment processor refused the charge; message is customer-facing."""

    code = "payment_failed"


class ProviderUnavailable(TiergateError):
    """The payment processor could not be reached or answered with an error; nothing was changed."""

    code = "provider_unavailable"


class NoCatalog(TiergateError):
    """No catalog version has been published yet."""

    code = "no_catalog"


HTTP_STATUS: dict[type[TiergateError], int] = {
    InvalidRequest: 422,
    NotFound: 404,
    Conflict: 409,
    Unauthorized: 401,
    Forbidden: 403,
    PaymentFailed: 402,
    ProviderUnavailable: 503,
    NoCatalog: 503,
}


def http_status(exc: TiergateError) -> int:
    """The HTTP status for a domain exception (nearest class in the table, else 400)."""
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 400
