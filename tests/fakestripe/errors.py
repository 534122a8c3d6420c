"""Stripe-shaped API errors raised by the fake's handlers and turned into HTTP responses."""

from __future__ import annotations

from typing import Any

DOC_BASE = "https://stripe.com/docs/error-codes"


class StripeError(Exception):
    """An error the fake returns as ``{"error": {...}}`` with an HTTP status.

    ``commit=True`` means the state changes made before the error are kept (Stripe keeps an
    invoice's failed payment attempt and its ``invoice.payment_failed`` event even though the
    request answers 402); otherwise the request's changes are rolled back.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        commit: bool = False,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.commit = commit
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        err: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            err["code"] = self.code
            err["doc_url"] = f"{DOC_BASE}/{self.code.replace('_', '-')}"
        if self.param:
            err["param"] = self.param
        if self.decline_code:
            err["decline_code"] = self.decline_code
        if request_id:
            err["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        err.update(self.extra)
        return {"error": err}


def invalid(message: str, param: str | None = None, code: str | None = None) -> StripeError:
    return StripeError(400, message, param=param, code=code)


def missing_param(param: str) -> StripeError:
    return StripeError(400, f"Missing required param: {param}.", param=param,
                       code="parameter_missing")


def no_such(kind: str, obj_id: str, param: str | None = None) -> StripeError:
    """Unknown id: 404 when it is the URL's object, 400 when it is referenced by a parameter."""
    status = 400 if param else 404
    return StripeError(status, f"No such {kind}: '{obj_id}'", param=param or "id",
                       code="resource_missing")


# Declines Stripe reports under an error code of their own, without a decline_code:
# code -> (message, param).
CARD_ERROR_CODES: dict[str, tuple[str, str | None]] = {
    "expired_card": ("Your card has expired.", "exp_month"),
    "incorrect_cvc": ("Your card's security code is incorrect.", "cvc"),
    "incorrect_number": ("Your card number is incorrect.", "number"),
    "processing_error": ("An error occurred while processing your card. Try again in a "
                         "little bit.", None),
}
# Stripe's message for a card_declined with this decline_code (else "Your card was declined.").
DECLINE_MESSAGES: dict[str, str] = {
    "insufficient_funds": "Your card has insufficient funds.",
    "card_velocity_exceeded": "Your card has exceeded its limit.",
    "currency_not_supported": "Your card does not support this currency.",
    "card_not_supported": "Your card does not support this type of purchase.",
    "authentication_required": "Your card was declined. This transaction requires "
                               "authentication.",
}


def card_declined(*, decline_code: str = "generic_decline", commit: bool = True,
                  extra: dict[str, Any] | None = None) -> StripeError:
    """A 402 card_error as Stripe shapes it: ``code`` card_declined with the ``decline_code``,
    or, for the declines with an error code of their own (expired_card, incorrect_cvc, ...),
    that code and its ``param`` without a decline_code."""
    if decline_code in CARD_ERROR_CODES:
        message, param = CARD_ERROR_CODES[decline_code]
        return StripeError(402, message, type="card_error", code=decline_code, param=param,
                           commit=commit, extra=extra)
    message = DECLINE_MESSAGES.get(decline_code, "Your card was declined.")
    return StripeError(402, message, type="card_error", code="card_declined",
                       decline_code=decline_code, commit=commit, extra=extra)
