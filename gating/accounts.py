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

ACCOUNT_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
UNSET: Any = object()


def check_account_id(account_id: str) -> str:
    if not isinstance(account_id, str) or not ACCOUNT_ID.match(account_id):
        raise InvalidRequest(
            f"account_id {account_id!r} is not valid: use 1 to 128 characters of "
            "letters, digits and _ . : @ -"
        )
    return account_id


def get_account(session: Session, account_id: str) -> Account:
    """The account, or NotFound saying how to create it."""
    account = session.get(Account, account_id)
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
    """Create the account or update the fields given; (account, created)."""
    check_account_id(account_id)
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
        account.metadata_ = dict(metadata or {})
    account.updated_at = now
    session.flush()
    return account, created


def account_json(account: Account) -> dict[str, Any]:
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
) -> Override:
    """Record a per-account exception; checks the fields its kind needs."""
    get_account(session, account_id)
    now = clock.now()
    try:
        kind_ = OverrideKind(kind)
    except ValueError:
        raise InvalidRequest(f"kind {kind!r} must be limit, feature or trial_extension") from None
    if not reason or not reason.strip():
        raise InvalidRequest("reason is required: say why this exception was made")
    if expires_at is not None and expires_at <= now:
        raise InvalidRequest("expires_at is in the past: an override must expire in the future")
    catalog = store.load(session).catalog
    if kind_ is OverrideKind.TRIAL_EXTENSION:
        if not days or days < 1:
            raise InvalidRequest("days is required for a trial_extension (1 or more)")
        if feature is not None or limit is not None:
            raise InvalidRequest("a trial_extension takes days only, not feature or limit")
    else:
        if feature is None:
            raise InvalidRequest(f"feature is required for a {kind_.value} override")
        spec = catalog.feature(feature)
        if spec is None:
            raise NotFound(
                f"Feature {feature!r} is not in the catalog"
                + did_you_mean(feature, list(catalog.features))
            )
        if kind_ is OverrideKind.LIMIT and not spec.metered:
            raise InvalidRequest(
                f"{feature!r} is a boolean feature: use kind 'feature' to grant it"
            )
        if kind_ is OverrideKind.FEATURE and spec.metered:
            raise InvalidRequest(
                f"{feature!r} is metered: use kind 'limit' to give it a custom limit"
            )
        if kind_ is OverrideKind.FEATURE and limit is not None:
            raise InvalidRequest("a feature override takes no limit")
        if days is not None:
            raise InvalidRequest("days only applies to a trial_extension")
    override = Override(
        account_id=account_id,
        kind=kind_,
        feature_id=feature,
        limit=limit,
        days=days,
        reason=reason.strip(),
        expires_at=expires_at,
        created_at=now,
    )
    session.add(override)
    session.flush()
    return override


def list_overrides(session: Session, account_id: str) -> list[Override]:
    get_account(session, account_id)
    return list(
        session.scalars(
            select(Override).where(Override.account_id == account_id).order_by(Override.id)
        )
    )


def remove_override(session: Session, clock: Clock, account_id: str, override_id: int) -> None:
    override = session.get(Override, override_id)
    if override is None or override.account_id != account_id:
        raise NotFound(f"Override {override_id} does not exist on account {account_id!r}")
    session.delete(override)
    session.flush()


def override_json(override: Override) -> dict[str, Any]:
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
