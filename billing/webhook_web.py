"""`POST /webhooks/stripe`: verify the signature over the raw body, then store and process.

Answers 200 once the event is recorded (processed, a duplicate, or ignored), 400 when the
delivery is not a genuine well-formed event (nothing stored), 500 when a handler failed (the
event is stored with its error and Stripe retries), 503 while webhooks are not configured.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from billing import webhooks
from billing.sync_state import StripeSource
from tiergate.db import get_db
from tiergate.errors import error_response
from tiergate.extensions import get_billing, get_clock

bp = Blueprint("stripe_webhooks", __name__)


@bp.post("/webhooks/stripe")
def stripe_webhook() -> Response:
    """Receive one Stripe event delivery."""
    config = current_app.config
    try:
        event = webhooks.verify_event(
            request.get_data(),
            request.headers.get("Stripe-Signature"),
            config.get("STRIPE_WEBHOOK_SECRET"),
            int(config.get("STRIPE_WEBHOOK_TOLERANCE") or 300),
        )
    except webhooks.WebhooksNotConfigured as exc:
        return error_response(503, exc.code, exc.message)
    provider = get_billing()
    if not isinstance(provider, StripeSource):
        name = getattr(provider, "name", type(provider).__name__)
        return error_response(
            503,
            "webhooks_not_configured",
            f"The billing provider is {name!r}: Stripe events are processed with Stripe billing.",
        )
    outcome = webhooks.process(get_db(), get_clock(), provider, event)
    if outcome.status == "failed":
        return error_response(
            500,
            "webhook_failed",
            f"Event {outcome.event_id} is stored but could not be processed: {outcome.error}",
        )
    return jsonify({"received": True, "event": outcome.event_id, "status": outcome.status})


def init_app(app: Flask) -> None:
    """Register the endpoint; it is exempt from CSRF (Stripe signs it instead)."""
    app.register_blueprint(bp)
    csrf = app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(bp)
