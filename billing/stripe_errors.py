"""Stripe's exceptions in tiergate's terms: one place decides what a failed Stripe call means.

The SDK already retries connection errors, timeouts, 409s and 5xx with backoff (the client's
`max_network_retries`), reusing our idempotency key, so a retry never charges twice. What is
still failing after those retries becomes ProviderUnavailable; a card error becomes
PaymentDeclined with a customer-facing message; a request Stripe refuses (a bug or a state we
did not expect) becomes StripeRejected with Stripe's own message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import stripe

from billing.provider import PaymentDeclined
from tiergate.exceptions import Conflict, ProviderUnavailable

DECLINED = "Your card was declined. Nothing was charged and your plan is unchanged."


class StripeRejected(Conflict):
    """Stripe refused a request as invalid: nothing was changed by it."""

    code = "stripe_rejected"


@contextmanager
def stripe_errors(doing: str) -> Iterator[None]:
    """Translate the Stripe exceptions raised while `doing` (e.g. "upgrading sub_123")."""
    try:
        yield
    except stripe.CardError as exc:
        raise PaymentDeclined(
            DECLINED, details={"decline_code": exc.code or "card_declined"}
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
