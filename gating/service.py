"""The gate: may account A use feature F / consume N units of it? Entitlements, atomic usage,
idempotent consumes and, on a denial or a nudge, the upgrade offer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, joinedload

from gating import periods, usage
from gating.accounts import get_account
from gating.entitlements import Entitlements, FeatureAccess, OverrideView, SubscriptionView, resolve
from gating.models import Account, AccountAddOn, Override, UsageRequest
from tiergate.clock import Clock
from tiergate.exceptions import Conflict, InvalidRequest, NotFound
from tiers import store
from tiers.checks import did_you_mean
from tiers.model import FeatureKind

MAX_UNITS = 10**12


@dataclass(frozen=True)
class GateSettings:
    past_due_grace_days: int = 7
    base_url: str = "http://127.0.0.1:5000"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    feature: str
    limit: int | None
    used: int | None
    remaining: int | None
    reason: str | None = None
    offer: dict[str, Any] | None = None
    nudge: bool = False
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The HTTP body of /v1/check and /v1/usage."""
        return {
            "allowed": self.allowed,
            "feature": self.feature,
            "limit": self.limit,
            "used": self.used,
            "remaining": self.remaining,
            "reason": self.reason,
            "message": self.message,
            "nudge": self.nudge,
            "offer": self.offer,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Decision:
        return cls(
            **{k: body.get(k) for k in cls.__dataclass_fields__}
            | {"nudge": bool(body.get("nudge"))}
        )


def load_entitlements(
    session: Session, clock: Clock, account_id: str, settings: GateSettings
) -> tuple[Account, Entitlements]:
    """The account and its effective entitlements now (few, indexed queries)."""
    account = session.scalar(
        select(Account).options(joinedload(Account.subscription)).where(Account.id == account_id)
    )
    if account is None:
        get_account(session, account_id)  # raises the NotFound with its hint
    assert account is not None
    newest = store.load(session)
    sub = account.subscription
    pinned = store.load(session, sub.catalog_version) if sub is not None else None
    addons = session.execute(
        select(AccountAddOn.addon_id, AccountAddOn.quantity).where(
            AccountAddOn.account_id == account_id, AccountAddOn.active.is_(True)
        )
    ).all()
    overrides = [
        OverrideView(o.kind.value, o.feature_id, o.limit, o.days, o.expires_at)
        for o in session.scalars(select(Override).where(Override.account_id == account_id))
    ]
    view = None
    if sub is not None:
        view = SubscriptionView(
            tier_id=sub.tier_id,
            interval=sub.interval,
            currency=sub.currency,
            status=sub.status.value,
            catalog_version=sub.catalog_version,
            period_start=sub.current_period_start,
            period_end=sub.current_period_end,
            trial_end=sub.trial_end,
            cancel_at_period_end=sub.cancel_at_period_end,
            past_due_since=sub.past_due_since,
        )
    entitlements = resolve(
        newest=(newest.version, newest.catalog),
        pinned=(pinned.version, pinned.catalog) if pinned else None,
        subscription=view,
        addons=[(a, q) for a, q in addons],
        overrides=overrides,
        now=clock.now(),
        grace_days=settings.past_due_grace_days,
    )
    return account, entitlements


def _access(session: Session, ent: Entitlements, feature_id: str) -> FeatureAccess:
    access = ent.features.get(feature_id)
    if access is not None:
        return access
    newest = store.load(session).catalog
    feature = newest.feature(feature_id)
    if feature is None:
        known = list(dict.fromkeys([*ent.catalog.features, *newest.features]))
        raise NotFound(
            f"Feature {feature_id!r} is not in the catalog" + did_you_mean(feature_id, known)
        )
    # A feature added after the account's pinned catalog version: not in its tier.
    return FeatureAccess(feature, False, 0, None, 0, "tier")


def _units(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{name} must be a whole number, not {value!r}")
    if not minimum <= value <= MAX_UNITS:
        raise InvalidRequest(f"{name} must be between {minimum} and {MAX_UNITS}, not {value}")
    return value


def _period(access: FeatureAccess, ent: Entitlements, clock: Clock):  # noqa: ANN202
    return periods.current_period(access.feature, clock.now(), ent.billing_anchor)


def _usage_text(access: FeatureAccess, used: int) -> str:
    feature = access.feature
    if access.limit is None:
        return f"{used:,} {feature.units(used)} used"
    return f"{used:,} of {access.limit:,} {feature.units(access.limit)} used"


def _denial_message(ent: Entitlements, access: FeatureAccess, reason: str, used: int | None) -> str:
    if reason == "no_access":
        return "This account has no plan that gives access: choose a plan to continue."
    tier = ent.tier.name if ent.tier else "this plan"
    if reason == "feature_not_in_tier":
        return f"{access.feature.name} is not included in {tier}."
    return f"{_usage_text(access, used or 0)}: the {tier} limit is reached."


def _offer(
    session: Session,
    clock: Clock,
    account: Account,
    ent: Entitlements,
    feature_id: str,
    used: int | None,
    requested: int | None,
    trigger: str,
    settings: GateSettings,
) -> dict[str, Any] | None:
    if ent.tier is None:
        return None
    from gating import offers  # imported here: offers imports this module's neighbours

    offer = offers.offer_for(
        session,
        clock,
        account=account,
        entitlements=ent,
        feature_id=feature_id,
        used=used,
        requested=requested,
        trigger=trigger,
        settings=settings,
    )
    return None if offer is None else offers.offer_json(offer, settings.base_url)


def _decide(
    session: Session,
    clock: Clock,
    account: Account,
    ent: Entitlements,
    access: FeatureAccess,
    quantity: int,
    used: int | None,
    allowed: bool,
    settings: GateSettings,
) -> Decision:
    """The answer for a request of `quantity` given current `used` (after or before it)."""
    fid = access.feature.id
    limit = access.limit if access.feature.metered else None
    remaining = None if limit is None or used is None else max(limit - used, 0)
    if not allowed:
        reason = (
            "no_access"
            if ent.tier is None
            else (
                "limit_reached"
                if access.enabled and access.feature.metered
                else "feature_not_in_tier"
            )
        )
        offer = _offer(session, clock, account, ent, fid, used, quantity, "limit_reached", settings)
        return Decision(
            False,
            fid,
            limit,
            used,
            remaining,
            reason,
            offer,
            message=_denial_message(ent, access, reason, used),
        )
    nudge = (
        access.feature.metered
        and used is not None
        and access.nudge_at is not None
        and used >= access.nudge_at
    )
    offer = None
    message = None
    if nudge:
        offer = _offer(session, clock, account, ent, fid, used, 0, "nudge", settings)
        message = f"{_usage_text(access, used or 0)}."
    return Decision(True, fid, limit, used, remaining, None, offer, nudge, message)


def check(
    session: Session,
    clock: Clock,
    account_id: str,
    feature_id: str,
    quantity: int = 1,
    *,
    settings: GateSettings,
) -> Decision:
    """May the account use `quantity` units now? Records no usage."""
    quantity = _units(quantity, "quantity", 1)
    account, ent = load_entitlements(session, clock, account_id, settings)
    access = _access(session, ent, feature_id)
    if access.feature.kind is FeatureKind.BOOLEAN:
        return _decide(
            session, clock, account, ent, access, quantity, None, access.enabled, settings
        )
    start, _ = _period(access, ent, clock)
    used = usage.used(session, account_id, feature_id, start)
    cap = access.cap
    allowed = access.enabled and (cap is None or used + quantity <= cap)
    shown = used + quantity if allowed else used
    decision = _decide(session, clock, account, ent, access, quantity, shown, allowed, settings)
    # check answers about a prospective use: report the usage as it is now.
    return Decision(
        decision.allowed,
        decision.feature,
        decision.limit,
        used,
        None if decision.limit is None else max(decision.limit - used, 0),
        decision.reason,
        decision.offer,
        decision.nudge,
        decision.message,
    )


def consume(
    session: Session,
    clock: Clock,
    account_id: str,
    feature_id: str,
    quantity: int,
    idempotency_key: str | None = None,
    *,
    settings: GateSettings,
) -> Decision:
    """Atomically count `quantity` units if within the cap; a denial records nothing."""
    quantity = _units(quantity, "quantity", 1)
    account, ent = load_entitlements(session, clock, account_id, settings)
    access = _access(session, ent, feature_id)
    if access.feature.kind is FeatureKind.BOOLEAN:
        raise InvalidRequest(
            f"{feature_id!r} is a boolean feature: ask POST /v1/check, there is nothing to count"
        )
    request_hash = hashlib.sha256(f"{feature_id}\x00{quantity}".encode()).hexdigest()
    if idempotency_key is not None:
        first = _claim_key(session, clock, account_id, idempotency_key, request_hash)
        if first is not None:
            return first
    start, _ = _period(access, ent, clock)
    total = None
    if access.enabled:
        total = usage.add(session, account_id, feature_id, start, quantity, access.cap, clock.now())
    if total is None:
        used = usage.used(session, account_id, feature_id, start)
        decision = _decide(session, clock, account, ent, access, quantity, used, False, settings)
    else:
        decision = _decide(session, clock, account, ent, access, quantity, total, True, settings)
    if idempotency_key is not None:
        _store_answer(session, account_id, idempotency_key, decision)
    return decision


def _claim_key(
    session: Session, clock: Clock, account_id: str, key: str, request_hash: str
) -> Decision | None:
    """Claim an idempotency key (None: ours, go on) or return the first answer given for it."""
    if not 1 <= len(key) <= 255:
        raise InvalidRequest("idempotency_key must be 1 to 255 characters")
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    claimed = session.execute(
        dialect.insert(UsageRequest)
        .values(
            account_id=account_id,
            idempotency_key=key,
            request_hash=request_hash,
            status_code=0,
            response={},
            created_at=clock.now(),
        )
        .on_conflict_do_nothing(index_elements=["account_id", "idempotency_key"])
        .returning(UsageRequest.id)
    ).scalar_one_or_none()
    if claimed is not None:
        return None
    first = session.execute(
        select(UsageRequest.request_hash, UsageRequest.response).where(
            UsageRequest.account_id == account_id, UsageRequest.idempotency_key == key
        )
    ).one()
    if first.request_hash != request_hash:
        raise Conflict(
            f"idempotency key {key!r} was already used with a different request "
            "(another feature or quantity): use a new key for a new request"
        )
    return Decision.from_json(first.response)


def _store_answer(session: Session, account_id: str, key: str, decision: Decision) -> None:
    row = session.scalar(
        select(UsageRequest).where(
            UsageRequest.account_id == account_id, UsageRequest.idempotency_key == key
        )
    )
    assert row is not None
    row.status_code = 200 if decision.allowed else 402
    row.response = decision.to_json()
    session.flush()


def set_gauge(
    session: Session,
    clock: Clock,
    account_id: str,
    feature_id: str,
    value: int,
    *,
    settings: GateSettings,
) -> Decision:
    """Set a gauge to an absolute value: lowering always works, raising within the cap."""
    value = _units(value, "value", 0)
    account, ent = load_entitlements(session, clock, account_id, settings)
    access = _access(session, ent, feature_id)
    if access.feature.kind is not FeatureKind.GAUGE:
        raise InvalidRequest(
            f"{feature_id!r} is a {access.feature.kind.value} feature: only gauges can be set"
        )
    cap = access.cap if access.enabled else 0
    result = usage.set_value(
        session, account_id, feature_id, periods.GAUGE_PERIOD, value, cap, clock.now()
    )
    if result is None:
        used = usage.used(session, account_id, feature_id, periods.GAUGE_PERIOD)
        if used >= value:  # lowering to a value already reached: nothing to do, allowed
            return _decide(session, clock, account, ent, access, 0, used, True, settings)
        return _decide(session, clock, account, ent, access, value - used, used, False, settings)
    return _decide(session, clock, account, ent, access, 0, result, True, settings)


def release(
    session: Session,
    clock: Clock,
    account_id: str,
    feature_id: str,
    quantity: int,
    *,
    settings: GateSettings,
) -> Decision:
    """Give units back (a deleted project frees a gauge unit); never below zero."""
    quantity = _units(quantity, "quantity", 1)
    account, ent = load_entitlements(session, clock, account_id, settings)
    access = _access(session, ent, feature_id)
    if access.feature.kind is FeatureKind.BOOLEAN:
        raise InvalidRequest(f"{feature_id!r} is a boolean feature: there is nothing to release")
    start, _ = _period(access, ent, clock)
    total = usage.release(session, account_id, feature_id, start, quantity, clock.now())
    limit = access.limit
    remaining = None if limit is None else max(limit - total, 0)
    return Decision(True, feature_id, limit, total, remaining)


def entitlements(
    session: Session, clock: Clock, account_id: str, *, settings: GateSettings
) -> dict[str, Any]:
    """Tier, status, catalog version and, per feature, limit, usage and reset time."""
    _, ent = load_entitlements(session, clock, account_id, settings)
    now = clock.now()
    bounds = {
        fid: periods.current_period(a.feature, now, ent.billing_anchor)
        for fid, a in ent.features.items()
        if a.feature.metered
    }
    used = usage.used_many(session, account_id, {fid: b[0] for fid, b in bounds.items()})
    features: dict[str, Any] = {}
    for fid, access in ent.features.items():
        metered = access.feature.metered
        n = used.get(fid) if metered else None
        limit = access.limit if metered else None
        features[fid] = {
            "type": access.feature.kind.value,
            "enabled": access.enabled,
            "limit": limit,
            "used": n,
            "remaining": None if limit is None or n is None else max(limit - n, 0),
            "resets_at": bounds[fid][1] if metered else None,
            "nudge_at": access.nudge_at,
            "source": access.source,
        }
    return {
        "account_id": account_id,
        "tier": None if ent.tier is None else {"id": ent.tier.id, "name": ent.tier.name},
        "status": ent.status,
        "fallback_reason": ent.fallback_reason,
        "catalog_version": ent.catalog_version,
        "interval": ent.interval,
        "currency": ent.currency,
        "current_period_end": ent.billing_anchor[1] if ent.billing_anchor else None,
        "features": features,
    }
