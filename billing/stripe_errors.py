"""Stripe's exceptions in tiergate's terms: one place decides what a failed Stripe call means.

The SDK already retries connection errors, timeouts, 409s and 5xx with backoff (the client's
`max_network_retries`), reusing our idempotency key, so a retry never charges twice. What is
still failing after those retries becomes ProviderUnavailable; a card error becomes
PaymentDeclined with a customer-facing message (`decline_message`: the reason in plain words
and what to do next, by Stripe's decline code); a request Stripe refuses (a bug or a state we
did not expect) becomes StripeRejected with Stripe's own message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import stripe

from billing.provider import PaymentDeclined
from tiergate.exceptions import Conflict, ProviderUnavailable

log = logging.getLogger(__name__)

DECLINED = "Your card was declined. Nothing was charged and your plan is unchanged."
UNCHANGED = "Nothing was charged and your plan is unchanged."

# What the customer is told about a declined card, by Stripe's decline code or error code
# (docs.stripe.com/declines/codes, docs.stripe.com/error-codes): the reason in plain words and
# the next step. The codes are never shown; a code not listed here gets DECLINED.
_CHECK = "check the card's details or use another card."
_LIMIT = "Your card has reached its spending limit: use another card or ask your bank about it."
_CVC = f"Your card's security code (CVC) was not accepted: {_CHECK}"
_NUMBER = f"Your card number was not accepted: {_CHECK}"
_EXPIRY = f"Your card's expiry date was not accepted: {_CHECK}"
DECLINE_REASONS: Mapping[str, str] = {
    "insufficient_funds": (
        "Your card has insufficient funds: use another card or contact your bank."
    ),
    "card_velocity_exceeded": _LIMIT,
    "withdrawal_count_limit_exceeded": _LIMIT,
    "expired_card": "Your card has expired: use a card that is still valid.",
    "incorrect_cvc": _CVC,
    "invalid_cvc": _CVC,
    "incorrect_number": _NUMBER,
    "invalid_number": _NUMBER,
    "invalid_expiry_month": _EXPIRY,
    "invalid_expiry_year": _EXPIRY,
    "processing_error": (
        "Your card could not be processed just now: please try again in a few minutes."
    ),
    "authentication_required": (
        "Your bank asks you to confirm this payment (3-D Secure): try again and approve it when "
        "your bank asks, in its app or with the code it sends you; if no request comes, contact "
        "your bank or use another card."
    ),
    "currency_not_supported": (
        "Your card cannot pay in this currency: use another card or ask your bank whether it can."
    ),
    "card_not_supported": (
        "Your card does not support this kind of purchase: use another card or ask your bank to "
        "allow it."
    ),
}

# Declines the customer is told only that the card was declined (DECLINED): the issuer gives
# no reason, or suspects fraud, which Stripe advises never to tell the customer (present them
# as a generic decline). Listed so a more telling error code cannot override them.
GENERIC_DECLINES = frozenset(
    {
        "generic_decline",
        "do_not_honor",
        "do_not_try_again",
        "call_issuer",
        "fraudulent",
        "lost_card",
        "stolen_card",
        "pickup_card",
        "restricted_card",
        "security_violation",
        "merchant_blacklist",
    }
)


def decline_message(code: str | None, decline_code: str | None = None) -> str:
    """The customer's message for a declined card: by Stripe's `decline_code` (the issuer's
    reason) first, else by the error `code` (expired_card, incorrect_cvc, ... come without a
    decline code); DECLINED for a generic or fraud-related decline and for any other code."""
    for key in (decline_code, code):
        if key is None:
            continue
        if key in GENERIC_DECLINES:
            return DECLINED
        if key in DECLINE_REASONS:
            return f"{DECLINE_REASONS[key]} {UNCHANGED}"
    return DECLINED


class StripeRejected(Conflict):
    """Stripe refused a request as invalid: nothing was changed by it."""

    code = "stripe_rejected"


@contextmanager
def stripe_errors(doing: str) -> Iterator[None]:
    """Translate the Stripe exceptions raised while `doing` (e.g. "upgrading sub_123")."""
    try:
        yield
    except stripe.CardError as exc:
        # The codes and Stripe's own text are the operator's (details, log); the customer
        # reads decline_message only.
        decline_code = exc.error.decline_code if exc.error is not None else None
        code = exc.code or "card_declined"
        log.info(
            "card declined while %s: code %s, decline_code %s, request %s: %s",
            doing,
            code,
            decline_code,
            exc.request_id,
            exc.user_message,
        )
        raise PaymentDeclined(
            decline_message(code, decline_code),
            details={"code": code, "decline_code": decline_code},
        ) from None
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
        raise ProviderUnavailable(
            f"Stripe could not be reached while {doing} ({_summary(exc)}), even after "
            "retries. Nothing was changed in tiergate; retrying is safe: every request "
            "carries its idempotency key.",
            details={"request_id": exc.request_id},
        ) from None
    except (stripe.AuthenticationError, stripe.PermissionError) as exc:
        raise ProviderUnavailable(
            f"Stripe refused our API key while {doing}: {exc.user_message or exc}. "
            "Check TIERGATE_STRIPE_SECRET_KEY."
        ) from None
    except stripe.StripeError as exc:  # InvalidRequestError, IdempotencyError, ...
        raise StripeRejected(
            f"Stripe refused the request while {doing}: {exc.user_message or exc}",
            details={"request_id": exc.request_id, "stripe_code": exc.code},
        ) from None


def _summary(exc: stripe.StripeError) -> str:
    if isinstance(exc, stripe.APIConnectionError):
        return "no answer: network error or timeout"
    status = f"HTTP {exc.http_status}" if exc.http_status else type(exc).__name__
    return f"{status}: {exc.user_message or 'server error'}"
