"""Accounts (the host app's customers) and the product team's per-account overrides."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gating.models import Account, Override, OverrideKind
from tiergate.clock import Clock
from tiergate.exceptions import InvalidRequest, NotFound
from tiers import store
from tiers.checks import did_you_mean

# Not "." or "..": a URL path segment that browsers, proxies and HTTP clients resolve away.
ACCOUNT_ID = re.compile(r"^(?!\.{1,2}\Z)[A-Za-z0-9_.:@-]{1,128}\Z")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+\Z")
MAX_EMAIL, MAX_NAME, MAX_REASON = 320, 200, 1000
MAX_METADATA_KEYS, MAX_METADATA_KEY, MAX_METADATA_TEXT = 50, 64, 500
MAX_LIMIT, MAX_DAYS = 10**12, 3650
UNSET: Any = object()


def check_account_id(account_id: Any) -> str:
    """The id, if it is 1 to 128 characters of letters, digits and _ . : @ -."""
    if not isinstance(account_id, str) or not ACCOUNT_ID.match(account_id):
        raise InvalidRequest(
            f"account_id {account_id!r} is not valid: use 1 to 128 characters of "
            "letters, digits and _ . : @ - (not '.' or '..' alone)"
        )
    return account_id


def get_account(session: Session, account_id: str) -> Account:
    """The account, or NotFound saying how to create it."""
    account = session.get(Account, account_id) if isinstance(account_id, str) else None
    if account is None:
        raise NotFound(
            f"Account {account_id!r} does not exist: create it with PUT /v1/accounts/{account_id}"
        )
    return account


def upsert_account(
    session: Session,
    clock: Clock,
    account_id: str,
    *,
    email: str | None = UNSET,
    name: str | None = UNSET,
    metadata: dict[str, Any] | None = UNSET,
) -> tuple[Account, bool]:
    """Create the account or update the fields given (None clears); (account, created)."""
    check_account_id(account_id)
    if email is not UNSET:
        email = _check_email(email)
    if name is not UNSET:
        name = _check_name(name)
    if metadata is not UNSET:
        metadata = _check_metadata(metadata)
    now = clock.now()
    account = session.get(Account, account_id)
    created = account is None
    if account is None:
        account = Account(id=account_id, metadata_={}, created_at=now, updated_at=now)
        session.add(account)
    if email is not UNSET:
        account.email = email
    if name is not UNSET:
        account.name = name
    if metadata is not UNSET:
        account.metadata_ = metadata
    account.updated_at = now
    session.flush()
    return account, created


def _check_email(email: Any) -> str | None:
    if email is None:
        return None
    if not isinstance(email, str) or len(email) > MAX_EMAIL or not EMAIL.match(email.strip()):
        raise InvalidRequest(f"email {email!r} is not a valid email address")
    return email.strip()


def _check_name(name: Any) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str) or len(name) > MAX_NAME:
        raise InvalidRequest(f"name must be a string of at most {MAX_NAME} characters")
    return name


def _check_metadata(metadata: Any) -> dict[str, Any]:
    """A flat JSON object: at most 50 string keys, each value a string, number, bool or null."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidRequest(f"metadata must be a JSON object, not {type(metadata).__name__}")
    if len(metadata) > MAX_METADATA_KEYS:
        raise InvalidRequest(
            f"metadata has {len(metadata)} keys: at most {MAX_METADATA_KEYS} are allowed"
        )
    for key, value in metadata.items():
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_METADATA_KEY:
            raise InvalidRequest(
                f"metadata key {key!r} must be a string of 1 to {MAX_METADATA_KEY} characters"
            )
        if value is not None and not isinstance(value, str | int | float | bool):
            raise InvalidRequest(
                f"metadata[{key!r}] must be a string, number, boolean or null, "
                f"not {type(value).__name__}: metadata is flat"
            )
        if isinstance(value, str) and len(value) > MAX_METADATA_TEXT:
            raise InvalidRequest(
                f"metadata[{key!r}] is {len(value)} characters: at most {MAX_METADATA_TEXT}"
            )
    return dict(metadata)


def account_json(account: Account) -> dict[str, Any]:
    """The account as the API shows it; `subscription` None means the free tier."""
    sub = account.subscription
    return {
        "id": account.id,
        "email": account.email,
        "name": account.name,
        "metadata": account.metadata_ or {},
        "created_at": account.created_at,
        "updated_at": account.updated_at,
        "subscription": None
        if sub is None
        else {
            "tier": sub.tier_id,
            "interval": sub.interval,
            "currency": sub.currency,
            "status": sub.status.value,
            "catalog_version": sub.catalog_version,
            "current_period_end": sub.current_period_end,
            "trial_end": sub.trial_end,
            "cancel_at_period_end": sub.cancel_at_period_end,
        },
    }


def add_override(
    session: Session,
    clock: Clock,
    account_id: str,
    *,
    kind: str,
    reason: str,
    feature: str | None = None,
    limit: int | None = None,
    days: int | None = None,
    expires_at: datetime | None = None,
    created_by: str | None = None,
) -> Override:
    """Record a per-account exception after checking the fields its kind needs."""
    get_account(session, account_id)
    now = clock.now()
    try:
        kind_ = OverrideKind(kind)
    except ValueError:
        raise InvalidRequest(f"kind {kind!r} must be limit, feature or trial_extension") from None
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise InvalidRequest(
            f"reason is required (1 to {MAX_REASON} characters): say why this exception was made"
        )
    if expires_at is not None:
        if not isinstance(expires_at, datetime) or expires_at.tzinfo is None:
            raise InvalidRequest("expires_at must be a datetime with a time zone")
        if expires_at <= now:
            raise InvalidRequest("expires_at is in the past: an override must expire in the future")
    if kind_ is OverrideKind.TRIAL_EXTENSION:
        _check_trial_extension(feature, limit, days)
        if expires_at is not None:
            raise InvalidRequest(
                "a trial_extension has no expires_at: it moves the trial's end (and the first "
                "charge) for good"
            )
    else:
        _check_feature_override(session, kind_, feature, limit, days)
    override = Override(
        account_id=account_id,
        kind=kind_,
        feature_id=feature,
        limit=limit,
        days=days,
        reason=reason.strip(),
        expires_at=expires_at,
        created_by=created_by,
        created_at=now,
    )
    session.add(override)
    session.flush()
    return override


def _check_trial_extension(feature: Any, limit: Any, days: Any) -> None:
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise InvalidRequest(f"days is required for a trial_extension: 1 to {MAX_DAYS}")
    if feature is not None or limit is not None:
        raise InvalidRequest("a trial_extension takes days only, not feature or limit")


def _check_feature_override(
    session: Session, kind: OverrideKind, feature: Any, limit: Any, days: Any
) -> None:
    if not isinstance(feature, str) or not feature:
        raise InvalidRequest(f"feature is required for a {kind.value} override")
    catalog = store.load(session).catalog
    spec = catalog.feature(feature)
    if spec is None:
        raise NotFound(
            f"Feature {feature!r} is not in the catalog" + did_you_mean(feature, catalog.features)
        )
    if days is not None:
        raise InvalidRequest("days only applies to a trial_extension")
    if kind is OverrideKind.LIMIT:
        if not spec.metered:
            raise InvalidRequest(
                f"{feature!r} is a boolean feature: use kind 'feature' to grant it"
            )
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_LIMIT
        ):
            raise InvalidRequest(
                f"limit must be a whole number from 0 to {MAX_LIMIT:,} (or null: unlimited)"
            )
        return
    if spec.metered:
        raise InvalidRequest(f"{feature!r} is metered: use kind 'limit' to give it a custom limit")
    if limit is not None:
        raise InvalidRequest("a feature override takes no limit")


def list_overrides(session: Session, account_id: str) -> list[Override]:
    """The account's overrides, active and expired, oldest first."""
    get_account(session, account_id)
    return list(
        session.scalars(
            select(Override).where(Override.account_id == account_id).order_by(Override.id)
        )
    )


def remove_override(session: Session, clock: Clock, account_id: str, override_id: int) -> None:
    """Delete one of the account's overrides (NotFound when it is another account's)."""
    override = session.get(Override, override_id) if isinstance(override_id, int) else None
    if override is None or override.account_id != account_id:
        raise NotFound(f"Override {override_id} does not exist on account {account_id!r}")
    session.delete(override)
    session.flush()


def override_json(override: Override) -> dict[str, Any]:
    """An override as the API shows it."""
    return {
        "id": override.id,
        "kind": override.kind.value,
        "feature": override.feature_id,
        "limit": override.limit,
        "days": override.days,
        "reason": override.reason,
        "expires_at": override.expires_at,
        "created_at": override.created_at,
    }
