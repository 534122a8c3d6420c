"""HTTP API v1: accounts, the gate (check / usage) and offers. Thin: parse, call, commit, dump."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from flask import Flask, Response, current_app, jsonify, request
from marshmallow import ValidationError

from billing import portal, records
from billing.provider import BillingProvider
from billing.records import FlowStatus
from gating import accounts, funnel, offers, service
from gating import schemas as s
from gating.apikeys import require_scope
from gating.cache import GateCache
from gating.models import OverrideKind
from tiergate.api import Blueprint, ErrorSchema, get_api
from tiergate.db import get_db, get_session
from tiergate.exceptions import NotFound, ProviderUnavailable
from tiergate.extensions import get_billing, get_clock

accounts_bp = Blueprint(
    "accounts", __name__, url_prefix="/v1/accounts", description="The host app's accounts."
)
gate_bp = Blueprint(
    "gate", __name__, url_prefix="/v1", description="May this account do this? Record usage."
)
offers_bp = Blueprint(
    "offers", __name__, url_prefix="/v1/offers", description="Upgrade offers and their funnel."
)
funnel_bp = Blueprint(
    "funnel", __name__, url_prefix="/v1/funnel", description="The upsell funnel (product team)."
)

OFFER_ID_LENGTH = 40
_ERROR_TEXT = {
    400: "Malformed JSON",
    401: "Missing, malformed, unknown or revoked API key",
    403: "The key lacks the scope this endpoint needs",
    404: "Unknown account, feature, offer or override (the message names it)",
    409: "Conflicts with the current state (e.g. idempotency key reused for another request)",
    415: "The body is not application/json",
    422: "Invalid field: the message names the field and the problem",
    503: "Not available for a moment (no catalog published yet, the database or the payment "
    "processor unreachable, the account busy): nothing changed; retry (see Retry-After)",
}


def _errors(bp: Blueprint, *statuses: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Document the error answers of an endpoint (all share ErrorSchema)."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        for status in (401, 403, *statuses, 503):
            documented = bp.alt_response(
                status, schema=ErrorSchema, description=_ERROR_TEXT[status]
            )(view)
            # Keep the documentation, not the wrapper: it only calls the view again (through
            # Flask's ensure_sync), one more frame per status on every request of the gate.
            view.__dict__["_apidoc"] = documented._apidoc  # type: ignore[attr-defined]
        return view

    return decorator


def gate_settings() -> service.GateSettings:
    """The gate's settings from the app's config (for the API and the billing pages)."""
    config = current_app.config
    return service.GateSettings(
        past_due_grace_days=config["PAST_DUE_GRACE_DAYS"],
        base_url=config["BASE_URL"],
        offer_link=lambda account_id, offer_id: portal.offer_link(config, account_id, offer_id),
        cache=current_app.extensions["tiergate.gate_cache"],
    )


def _offer_body(offer: Any) -> dict[str, Any]:
    """The offer as the host app sees it, with the customer's signed link to accept it."""
    config = current_app.config
    body = offers.offer_json(offer, config["BASE_URL"])
    body["accept_url"] = portal.offer_link(config, offer.account_id, offer.id)
    return body


def _path_id(value: str, name: str, length: int = s.ACCOUNT_ID_LENGTH) -> str:
    try:
        return s.validate_path_id(value, name, length)
    except ValidationError:
        raise NotFound(f"{name.replace('_', ' ').capitalize()} {value!r} does not exist") from None


# ---- accounts -----------------------------------------------------------------------------


@accounts_bp.route("/<account_id>", methods=["PUT"])
@require_scope("accounts")
@accounts_bp.arguments(s.AccountUpsertSchema)
@accounts_bp.response(200, s.AccountSchema, description="Updated")
@accounts_bp.alt_response(201, schema=s.AccountSchema, description="Created")
@_errors(accounts_bp, 400, 415, 422)
def put_account(args: dict[str, Any], account_id: str) -> Any:
    """Create or update an account

    Fields left out keep their current value; send null to clear email or name.
    """
    account_id = s.validate_path_id(account_id, "account_id", s.ACCOUNT_ID_LENGTH)
    session = get_session()
    account, created = accounts.upsert_account(session, get_clock(), account_id, **args)
    session.commit()
    return accounts.account_json(account), 201 if created else 200


@accounts_bp.route("/<account_id>", methods=["GET"])
@require_scope("gate", "accounts")
@accounts_bp.response(200, s.AccountSchema)
@_errors(accounts_bp, 404, 422)
def get_account(account_id: str) -> Any:
    """Read an account"""
    account = accounts.get_account(get_session(), _path_id(account_id, "account_id"))
    return accounts.account_json(account)


@accounts_bp.route("/<account_id>/entitlements", methods=["GET"])
@require_scope("gate", "accounts")
@accounts_bp.response(200, s.EntitlementsSchema)
@_errors(accounts_bp, 404, 422)
def get_entitlements(account_id: str) -> Any:
    """What the account may use now: tier, features, limits and usage"""
    return service.entitlements(
        get_session(), get_clock(), _path_id(account_id, "account_id"), settings=gate_settings()
    )


@accounts_bp.route("/<account_id>/billing_link", methods=["POST"])
@require_scope("accounts")
@accounts_bp.arguments(s.BillingLinkCreateSchema)
@accounts_bp.response(201, s.BillingLinkSchema)
@_errors(accounts_bp, 400, 404, 415, 422)
def post_billing_link(args: dict[str, Any], account_id: str) -> Any:
    """A signed link to the account's billing pages (plan, cancel, add-ons, invoices)

    For the host app's "Billing" or "Manage plan" button: create it when the signed-in user
    clicks, then redirect them to it. Whoever holds the link acts for the account until it
    expires (TIERGATE_BILLING_LINK_MAX_AGE seconds), so never store or email it.
    """
    config = current_app.config
    account = accounts.get_account(get_session(), _path_id(account_id, "account_id"))
    return_url = args["return_url"]
    if return_url is not None and portal.safe_return_url(config, return_url) is None:
        origin = config["BASE_URL"].rstrip("/")
        raise ValidationError(
            {
                "return_url": [
                    f"Must be an address on {origin} or on an origin listed in "
                    "TIERGATE_BILLING_RETURN_ORIGINS."
                ]
            }
        )
    # The signature carries the wall-clock time it was made, whatever the app's clock says.
    expires_at = datetime.now(UTC) + timedelta(seconds=portal.max_age(config))
    url = portal.account_link(config, account.id, return_url)
    return {"url": url, "expires_at": expires_at}, 201


@accounts_bp.route("/<account_id>/overrides", methods=["POST"])
@require_scope("accounts")
@accounts_bp.arguments(s.OverrideCreateSchema)
@accounts_bp.response(201, s.OverrideSchema)
@_errors(accounts_bp, 400, 404, 409, 415, 422)
def post_override(args: dict[str, Any], account_id: str) -> Any:
    """Add a per-account exception (custom limit, extra feature, longer trial)

    A trial extension moves the running trial's end through billing (the first charge moves
    with it); it is refused when the account is not in a trial."""
    session = get_session()
    clock = get_clock()
    account_id = _path_id(account_id, "account_id")
    override = accounts.add_override(session, clock, account_id, **args)
    if override.kind is OverrideKind.TRIAL_EXTENSION:
        provider = cast(BillingProvider, get_billing())
        result = records.extend_trial(session, clock, provider, account_id, override.days or 0)
        if result.status is not FlowStatus.DONE:  # busy, or the processor unreachable
            session.rollback()
            raise ProviderUnavailable(result.message)
    session.commit()
    return accounts.override_json(override)


@accounts_bp.route("/<account_id>/overrides", methods=["GET"])
@require_scope("accounts")
@accounts_bp.response(200, s.OverrideSchema(many=True))
@_errors(accounts_bp, 404, 422)
def list_overrides(account_id: str) -> Any:
    """The account's overrides, active and expired"""
    session = get_session()
    found = accounts.list_overrides(session, _path_id(account_id, "account_id"))
    return [accounts.override_json(o) for o in found]


@accounts_bp.route("/<account_id>/overrides/<override_id>", methods=["DELETE"])
@require_scope("accounts")
@accounts_bp.response(204, description="Removed")
@_errors(accounts_bp, 404, 422)
def delete_override(account_id: str, override_id: str) -> Any:
    """Remove an override"""
    if not (override_id.isascii() and override_id.isdigit()) or len(override_id) > 18:
        raise NotFound(f"Override {override_id!r} does not exist on account {account_id!r}")
    session = get_session()
    accounts.remove_override(
        session, get_clock(), _path_id(account_id, "account_id"), int(override_id)
    )
    session.commit()
    return None


# ---- the gate -----------------------------------------------------------------------------


@gate_bp.route("/check", methods=["POST"])
@require_scope("gate")
@gate_bp.arguments(s.CheckSchema())  # an instance: not rebuilt per request
@gate_bp.response(200, s.DecisionSchema)
@_errors(gate_bp, 400, 404, 415, 422)
def check(args: dict[str, Any]) -> Any:
    """May the account use `quantity` units of the feature now? (records nothing)

    Always 200: `allowed` says yes or no; a denial carries `reason` and, when an upgrade
    unlocks it, an `offer` to show.
    """
    session = get_session()
    decision = service.check(
        session,
        get_clock(),
        args["account_id"],
        args["feature"],
        args["quantity"],
        settings=gate_settings(),
    )
    if session.in_transaction():
        session.commit()  # a denial may have recorded an offer
    return _decision_response(decision)


_IDEMPOTENCY_HEADER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "Same as the body's idempotency_key (give one or the other, or both equal)",
}


@gate_bp.route("/usage", methods=["POST"])
@require_scope("gate")
@gate_bp.arguments(s.UsageSchema())
@gate_bp.response(200, s.DecisionSchema, description="Allowed and recorded")
@gate_bp.alt_response(402, schema=s.DecisionSchema, description="Denied; nothing recorded")
@gate_bp.doc(parameters=[_IDEMPOTENCY_HEADER])
@_errors(gate_bp, 400, 404, 409, 415, 422)
def usage(args: dict[str, Any]) -> Any:
    """Consume units of a metered feature, atomically within the limit

    200 with the new usage when allowed; 402 with `reason` and `offer` when the limit would be
    exceeded, and then nothing is recorded. A retry with the same idempotency key returns the
    first answer.
    """
    key = _idempotency_key(args.get("idempotency_key"))
    session = get_session()
    decision = service.consume(
        session,
        get_clock(),
        args["account_id"],
        args["feature"],
        args["quantity"],
        key,
        settings=gate_settings(),
    )
    if session.in_transaction():  # (a count committed on its own leaves nothing to commit)
        session.commit()
    return _decision_response(decision, 200 if decision.allowed else 402)


def _decision_response(decision: service.Decision, status: int = 200) -> Response:
    """The decision as JSON, built directly: Decision.to_json() already has DecisionSchema's
    shape (tests/gating/test_api.py checks it against the schema), and the gate's hot path
    skips a second serialization pass."""
    response = jsonify(decision.to_json())
    response.status_code = status
    return response


def _idempotency_key(from_body: str | None) -> str | None:
    header = request.headers.get("Idempotency-Key")
    if header is None:
        return from_body
    header = header.strip()
    if not header or len(header) > 255:
        raise ValidationError({"Idempotency-Key": ["Must be 1 to 255 characters."]})
    if from_body is not None and from_body != header:
        raise ValidationError(
            {"idempotency_key": ["Differs from the Idempotency-Key header: send one or the other."]}
        )
    return header


@gate_bp.route("/usage/set", methods=["POST"])
@require_scope("gate")
@gate_bp.arguments(s.UsageSetSchema)
@gate_bp.response(200, s.DecisionSchema, description="Set")
@gate_bp.alt_response(402, schema=s.DecisionSchema, description="Over the limit; not changed")
@_errors(gate_bp, 400, 404, 415, 422)
def usage_set(args: dict[str, Any]) -> Any:
    """Set a gauge (e.g. seats in use) to an absolute value"""
    session = get_session()
    decision = service.set_gauge(
        session,
        get_clock(),
        args["account_id"],
        args["feature"],
        args["value"],
        settings=gate_settings(),
    )
    session.commit()
    return _decision_response(decision, 200 if decision.allowed else 402)


@gate_bp.route("/usage/release", methods=["POST"])
@require_scope("gate")
@gate_bp.arguments(s.UsageReleaseSchema)
@gate_bp.response(200, s.DecisionSchema)
@_errors(gate_bp, 400, 404, 415, 422)
def usage_release(args: dict[str, Any]) -> Any:
    """Give units back (e.g. a project deleted); usage never goes below zero"""
    session = get_session()
    decision = service.release(
        session,
        get_clock(),
        args["account_id"],
        args["feature"],
        args["quantity"],
        settings=gate_settings(),
    )
    session.commit()
    return _decision_response(decision)


# ---- offers -------------------------------------------------------------------------------


@offers_bp.route("/<offer_id>", methods=["GET"])
@require_scope("gate")
@offers_bp.arguments(s.OfferQuerySchema, location="query")
@offers_bp.response(200, s.OfferSchema)
@_errors(offers_bp, 404, 422)
def get_offer(args: dict[str, Any], offer_id: str) -> Any:
    """Read an offer (pass account_id to make sure it is that account's)"""
    offer_id = _path_id(offer_id, "offer_id", OFFER_ID_LENGTH)
    offer = offers.get_offer(get_session(), offer_id, args.get("account_id"))
    return _offer_body(offer)


@offers_bp.route("/<offer_id>/events", methods=["POST"])
@require_scope("gate")
@offers_bp.arguments(s.OfferEventSchema)
@offers_bp.response(200, s.OfferSchema)
@_errors(offers_bp, 400, 404, 409, 415, 422)
def post_offer_event(args: dict[str, Any], offer_id: str) -> Any:
    """Record that the customer saw, clicked or dismissed the offer

    Dismissing starts the cooldown: the same offer is not prompted again for a while.
    """
    session = get_session()
    offer = offers.record_event(
        session,
        get_clock(),
        _path_id(offer_id, "offer_id", OFFER_ID_LENGTH),
        args["type"],
        account_id=args.get("account_id"),
    )
    session.commit()
    return _offer_body(offer)


# ---- funnel -------------------------------------------------------------------------------


@funnel_bp.route("", methods=["GET"])
@require_scope("admin")
@funnel_bp.arguments(s.FunnelQuerySchema, location="query")
@funnel_bp.response(200, s.FunnelSchema)
@_errors(funnel_bp, 422)
def get_funnel(args: dict[str, Any]) -> Any:
    """Offers shown, clicked, dismissed, accepted and paid, per trigger and feature

    Conversion is paid / shown in basis points; mrr_added is the monthly recurring revenue the
    paid offers added, per currency, in minor units.
    """
    return funnel.funnel_json(
        funnel.funnel_window(get_session(), get_clock(), args["since"], args["until"])
    )


def init_app(app: Flask) -> None:
    """Register the v1 blueprints on the app's Api (and so in the OpenAPI document)."""
    cache = GateCache(app.config["GATE_CACHE_SECONDS"])
    cache.watch(get_db(app).sessionmaker)
    app.extensions["tiergate.gate_cache"] = cache
    api = get_api(app)
    for blueprint in (accounts_bp, gate_bp, offers_bp, funnel_bp):
        api.register_blueprint(blueprint)
