"""Request and response schemas of the HTTP API v1 (they also generate the OpenAPI document)."""

from __future__ import annotations

import numbers
from datetime import UTC, datetime
from typing import Any

from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields, post_dump, validate

from gating.accounts import ACCOUNT_ID

MAX_UNITS = 10**12
ACCOUNT_ID_LENGTH = 128
FEATURE_ID_LENGTH = 64


class StrictInteger(fields.Integer):
    """A JSON integer only: not "5", not true, not 5.0."""

    default_error_messages = {
        "invalid": "Must be a whole number (a JSON integer, not a string, boolean or decimal)."
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


def iso_utc(value: datetime) -> str:
    """ISO 8601 in UTC with a Z, like every time the API answers (offers too)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class UTCDateTime(fields.DateTime):
    """Dumps aware datetimes as ISO 8601 UTC with a Z."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else iso_utc(value)


class RequestSchema(Schema):
    """Unknown fields are rejected by name; a body that is not an object says so."""

    class Meta:
        unknown = RAISE

    error_messages = {
        "type": "The request body must be a JSON object.",
        "unknown": "Unknown field.",
    }


class ResponseSchema(Schema):
    """Documents the fields a client can rely on; extra keys of the service's JSON pass through."""

    class Meta:
        unknown = INCLUDE  # documented as additionalProperties: true

    @post_dump(pass_original=True)
    def _keep_undocumented(self, data: dict[str, Any], original: Any, **_: Any) -> dict[str, Any]:
        if isinstance(original, dict):
            extra = {k: _jsonable(v) for k, v in original.items() if k not in data}
            return {**extra, **data}
        return data


def _jsonable(value: Any) -> Any:
    """Undocumented extras still answer ISO 8601 times (Flask would write an HTTP date)."""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _id_field(what: str, length: int, **kwargs: Any) -> fields.String:
    metadata = {"description": f"The {what} (1 to {length} characters, no spaces)"}
    metadata.update(kwargs.pop("metadata", {}))
    return fields.String(
        validate=[
            validate.Length(min=1, max=length),
            validate.Regexp(r"^\S*$", error="Must not contain spaces."),
        ],
        metadata=metadata,
        **kwargs,
    )


def account_id_field(**kwargs: Any) -> fields.String:
    """The host app's account id, as used in paths."""
    metadata = {"description": "The host app's account id: 1 to 128 of A-Z a-z 0-9 _ . : @ -"}
    metadata.update(kwargs.pop("metadata", {}))
    return fields.String(
        validate=validate.Regexp(
            ACCOUNT_ID,
            error="Use 1 to 128 characters of letters, digits and _ . : @ -",
        ),
        metadata=metadata,
        **kwargs,
    )


def feature_field(**kwargs: Any) -> fields.String:
    """A feature id from the catalog."""
    return _id_field("feature id from the catalog", FEATURE_ID_LENGTH, **kwargs)


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def aware_datetime_field(description: str, **kwargs: Any) -> fields.AwareDateTime:
    """ISO 8601 with an offset, from 1970 to 9000 (times near year 1 or 9999 cannot be
    shifted to UTC or by a period without overflowing)."""
    return fields.AwareDateTime(
        validate=validate.Range(
            min=EARLIEST, max=LATEST, error="Must be between 1970-01-01 and 9000-01-01 (UTC)."
        ),
        metadata={"description": description},
        **kwargs,
    )


def units_field(minimum: int, description: str, **kwargs: Any) -> StrictInteger:
    return StrictInteger(
        validate=validate.Range(min=minimum, max=MAX_UNITS),
        metadata={"description": description},
        **kwargs,
    )


def validate_path_id(value: str, name: str, length: int) -> str:
    """Validate an id taken from the URL path with the same rules as the body field."""
    field = account_id_field() if name == "account_id" else _id_field(name, length)
    try:
        return field.deserialize(value)
    except ValidationError as exc:
        raise ValidationError({name: exc.messages}) from None


# ---- accounts ---------------------------------------------------------------------------


def _metadata_size(value: dict[str, Any]) -> None:
    if len(value) > 50:
        raise ValidationError("At most 50 keys.")


class AccountUpsertSchema(RequestSchema):
    email = fields.Email(
        allow_none=True,
        validate=validate.Length(max=320),
        metadata={"description": "Billing email, shown on invoices"},
    )
    name = fields.String(
        allow_none=True, validate=validate.Length(max=200), metadata={"description": "Display name"}
    )
    metadata = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=64)),
        values=fields.Raw(allow_none=True),
        validate=_metadata_size,
        metadata={"description": "Free-form key/value data of the host app (at most 50 keys)"},
    )


class BillingLinkCreateSchema(RequestSchema):
    return_url = fields.Url(
        require_tld=False,
        allow_none=True,
        load_default=None,
        validate=validate.Length(max=2000),
        metadata={
            "description": "Where the billing pages link back to: an address on BASE_URL's "
            "origin or on one of TIERGATE_BILLING_RETURN_ORIGINS"
        },
    )


class BillingLinkSchema(ResponseSchema):
    url = fields.String(
        required=True, metadata={"description": "Open it for the signed-in user; do not store it"}
    )
    expires_at = UTCDateTime(required=True)


class SubscriptionSummarySchema(ResponseSchema):
    tier = fields.String(required=True)
    interval = fields.String(metadata={"description": "month or year"})
    currency = fields.String()
    status = fields.String(metadata={"description": "Stripe's statuses: active, trialing, ..."})
    catalog_version = fields.Integer()
    current_period_end = UTCDateTime()
    trial_end = UTCDateTime(
        allow_none=True, metadata={"description": "when the trial ends (null: no trial)"}
    )
    cancel_at_period_end = fields.Boolean()


class AccountSchema(ResponseSchema):
    id = fields.String(required=True)
    email = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    metadata = fields.Dict()
    created_at = UTCDateTime()
    updated_at = UTCDateTime()
    subscription = fields.Nested(
        SubscriptionSummarySchema,
        allow_none=True,
        metadata={"description": "null: no subscription (the free tier)"},
    )


class OverrideSchema(ResponseSchema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    feature = fields.String(allow_none=True)
    limit = fields.Integer(allow_none=True)
    days = fields.Integer(allow_none=True)
    reason = fields.String()
    expires_at = UTCDateTime(allow_none=True)
    created_at = UTCDateTime()


class FeatureEntitlementSchema(ResponseSchema):
    type = fields.String(metadata={"description": "boolean, counter or gauge"})
    enabled = fields.Boolean()
    limit = fields.Integer(allow_none=True, metadata={"description": "null: unlimited"})
    used = fields.Integer(allow_none=True, metadata={"description": "null for boolean features"})
    remaining = fields.Integer(allow_none=True)
    resets_at = UTCDateTime(allow_none=True, metadata={"description": "Counters only"})
    nudge_at = fields.Integer(allow_none=True, metadata={"description": "Usage that nudges"})
    source = fields.String(allow_none=True, metadata={"description": "tier, addon or override"})


class TierRefSchema(ResponseSchema):
    id = fields.String()
    name = fields.String()


class EntitlementsSchema(ResponseSchema):
    account_id = fields.String(required=True)
    tier = fields.Nested(TierRefSchema, allow_none=True, metadata={"description": "null: none"})
    status = fields.String(metadata={"description": "The subscription's status, or free"})
    fallback_reason = fields.String(
        allow_none=True, metadata={"description": "Why a subscriber is on the free tier now"}
    )
    catalog_version = fields.Integer()
    interval = fields.String(allow_none=True)
    currency = fields.String()
    current_period_end = UTCDateTime(allow_none=True)
    features = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(FeatureEntitlementSchema),
        metadata={"description": "Per feature id"},
    )


class OverrideCreateSchema(RequestSchema):
    kind = fields.String(
        required=True,
        validate=validate.OneOf(["limit", "feature", "trial_extension"]),
        metadata={
            "description": "limit: a custom limit; feature: an extra feature; "
            "trial_extension: days added to the trial"
        },
    )
    feature = feature_field(load_default=None, allow_none=True)
    limit = StrictInteger(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=0, max=MAX_UNITS),
        metadata={"description": "kind=limit: the custom limit (null: unlimited)"},
    )
    days = StrictInteger(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=1, max=3650),
        metadata={"description": "kind=trial_extension: days added"},
    )
    reason = fields.String(
        required=True,
        validate=validate.Length(min=1, max=1000),
        metadata={"description": "Why the exception was made (kept for audit)"},
    )
    expires_at = aware_datetime_field(
        "When the override stops applying (ISO 8601 with offset)",
        load_default=None,
        allow_none=True,
    )


# ---- the gate -----------------------------------------------------------------------------


class CheckSchema(RequestSchema):
    account_id = account_id_field(required=True)
    feature = feature_field(required=True)
    quantity = units_field(1, "Units the account wants to use (default 1)", load_default=1)


class UsageSchema(RequestSchema):
    account_id = account_id_field(required=True)
    feature = feature_field(required=True)
    quantity = units_field(1, "Units to consume", required=True)
    idempotency_key = fields.String(
        validate=validate.Length(min=1, max=255),
        metadata={
            "description": "A retry with the same key returns the first answer "
            "(alternatively send the Idempotency-Key header)"
        },
    )


class UsageSetSchema(RequestSchema):
    account_id = account_id_field(required=True)
    feature = feature_field(required=True)
    value = units_field(0, "The gauge's new value (e.g. seats in use now)", required=True)


class UsageReleaseSchema(RequestSchema):
    account_id = account_id_field(required=True)
    feature = feature_field(required=True)
    quantity = units_field(1, "Units to give back (e.g. a project deleted)", required=True)


class DecisionSchema(ResponseSchema):
    allowed = fields.Boolean(required=True, metadata={"description": "May the account go ahead"})
    feature = fields.String(required=True)
    limit = fields.Integer(
        allow_none=True, metadata={"description": "null: unlimited, or a boolean feature"}
    )
    used = fields.Integer(allow_none=True, metadata={"description": "null for boolean features"})
    remaining = fields.Integer(
        allow_none=True, metadata={"description": "null: unlimited, or a boolean feature"}
    )
    reason = fields.String(
        allow_none=True,
        validate=validate.OneOf(["limit_reached", "feature_not_in_tier", "no_access"]),
        metadata={"description": "Why it was denied (null when allowed)"},
    )
    message = fields.String(
        allow_none=True, metadata={"description": "A denial explained for the customer"}
    )
    offer = fields.Nested(
        lambda: OfferSchema(),
        allow_none=True,
        metadata={"description": "The upgrade offer to show (see GET /v1/offers/{offer_id})"},
    )
    nudge = fields.Boolean(
        metadata={"description": "Allowed, but usage crossed the nudge threshold"}
    )


# ---- offers -------------------------------------------------------------------------------


def _nullable(field: type[fields.Field], description: str, **kwargs: Any) -> fields.Field:
    return field(allow_none=True, metadata={"description": description}, **kwargs)


class OfferSchema(ResponseSchema):
    """An upgrade offer: exact integer amounts (minor units) plus their display text."""

    id = fields.String(required=True, metadata={"description": "off_..."})
    status = fields.String(
        metadata={"description": "created, shown, clicked, dismissed, accepted, paid, expired"}
    )
    trigger = fields.String(metadata={"description": "limit_reached, nudge, post_purchase, ..."})
    prompt = fields.Boolean(
        metadata={"description": "false during the dismissal cooldown: explain, do not interrupt"}
    )
    feature = _nullable(fields.String, "The feature the offer unlocks")
    reason = _nullable(fields.String, "Why the offer was made")
    usage = _nullable(fields.Dict, "The account's usage of the feature, e.g. 10 of 10 projects")
    from_ = _nullable(fields.Dict, "The current tier", attribute="from", data_key="from")
    to = _nullable(fields.Dict, "The offered tier")
    interval = _nullable(fields.String, "month or year")
    currency = fields.String(metadata={"description": "Lower-case ISO 4217 code"})
    new_recurring_amount = _nullable(fields.Integer, "The new price per interval (minor units)")
    amount_due_today = _nullable(fields.Integer, "Charged now, after proration (minor units)")
    next_renewal_amount = _nullable(fields.Integer, "Charged at the next renewal (minor units)")
    next_renewal_at = _nullable(fields.String, "ISO 8601 UTC")
    trial_end = _nullable(fields.String, "ISO 8601 UTC")
    note = _nullable(fields.String, "A plain note, e.g. the price-jump warning")
    proration_date = _nullable(fields.String, "ISO 8601 UTC: the amounts are exact at this time")
    expires_at = _nullable(fields.String, "ISO 8601 UTC: the quote holds until then")
    price_jump = _nullable(fields.Raw, "Set when the upgrade costs more than the catalog's guard")
    credit = _nullable(
        fields.Dict,
        "Account credit in this quote (minor units): applied today, left after it, owed",
    )
    yearly_alternative = _nullable(
        fields.Dict,
        "The same tier paid yearly, with its saving (with a trial: `first_charge`, `trial_end`)",
    )
    promotion = _nullable(fields.Dict, "A promotion applied to the offer")
    addon = _nullable(fields.Dict, "At most one related add-on")
    contact_sales = fields.Boolean(metadata={"description": "The tier is sold by the sales team"})
    contact_sales_url = _nullable(fields.String, "Where to contact sales")
    accept_url = fields.String(metadata={"description": "The page where the customer accepts"})
    display = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        metadata={"description": "The amounts formatted for display (same amounts)"},
    )


class OfferQuerySchema(RequestSchema):
    account_id = account_id_field(
        metadata={"description": "When given, the offer must belong to this account"}
    )


class OfferEventSchema(RequestSchema):
    type = fields.String(
        required=True,
        validate=validate.OneOf(["shown", "clicked", "dismissed"]),
        metadata={"description": "What the customer did with the offer"},
    )
    account_id = account_id_field(
        metadata={"description": "When given, the offer must belong to this account"}
    )


# ---- funnel -------------------------------------------------------------------------------


class FunnelQuerySchema(RequestSchema):
    since = aware_datetime_field(
        "Offers created from (ISO 8601 with offset; default 30 days ago)", load_default=None
    )
    until = aware_datetime_field(
        "Offers created before (ISO 8601 with offset; default now)", load_default=None
    )


class FunnelSchema(ResponseSchema):
    since = UTCDateTime(required=True)
    until = UTCDateTime(required=True)
    total = fields.Dict(
        metadata={
            "description": "created, shown, clicked, dismissed, accepted, paid, conversion_bp "
            "(paid/shown in basis points) and mrr_added per currency (minor units per month)"
        }
    )
    by_trigger = fields.List(fields.Dict())
    by_feature = fields.List(fields.Dict())
    by_trigger_and_feature = fields.List(fields.Dict())
