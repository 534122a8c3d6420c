"""Entitlement resolution (pure): what an account may use now, from its tier, add-ons,
overrides and subscription status. No database, no Flask: the service passes plain values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tiers.model import Catalog, Feature, FeatureKind, Tier

FALLBACK_STATUSES = ("incomplete", "incomplete_expired", "unpaid", "paused")


@dataclass(frozen=True)
class SubscriptionView:
    tier_id: str
    interval: str
    currency: str
    status: str
    catalog_version: int
    period_start: datetime
    period_end: datetime
    trial_end: datetime | None = None
    cancel_at_period_end: bool = False
    past_due_since: datetime | None = None


@dataclass(frozen=True)
class OverrideView:
    kind: str  # limit | feature | trial_extension
    feature_id: str | None = None
    limit: int | None = None
    days: int | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class FeatureAccess:
    feature: Feature
    enabled: bool
    limit: int | None  # None: unlimited (metered) or not applicable (boolean)
    nudge_at: int | None
    overage: int
    source: str  # tier | addon:<id> | override

    @property
    def cap(self) -> int | None:
        """The hard cap: limit plus the overage allowance (None: no cap)."""
        return None if self.limit is None else self.limit + self.overage


@dataclass(frozen=True)
class Entitlements:
    tier: Tier | None  # None: no access at all (no subscription and no free tier)
    catalog: Catalog
    catalog_version: int
    status: str  # the subscription's status, or "free"
    interval: str | None
    currency: str
    billing_anchor: tuple[datetime, datetime, str] | None
    features: dict[str, FeatureAccess] = field(default_factory=dict)
    fallback_reason: str | None = None  # why a subscriber is on the free tier now


def effective_status(
    sub: SubscriptionView, overrides: list[OverrideView], now: datetime, grace_days: int
) -> str | None:
    """None when the subscription grants its tier now, else why it does not."""
    if sub.status == "trialing":
        extra = sum(o.days or 0 for o in overrides if o.kind == "trial_extension")
        trial_end = (sub.trial_end or sub.period_end) + timedelta(days=extra)
        return None if now < trial_end else "trial_ended"
    if sub.status == "past_due":
        since = sub.past_due_since or sub.period_end
        return None if now < since + timedelta(days=grace_days) else "past_due_grace_expired"
    if sub.status == "canceled":
        return None if now < sub.period_end else "canceled"
    if sub.status in FALLBACK_STATUSES:
        return sub.status
    if sub.cancel_at_period_end and now >= sub.period_end:
        return "canceled"
    return None


def resolve(
    *,
    newest: tuple[int, Catalog],
    pinned: tuple[int, Catalog] | None,
    subscription: SubscriptionView | None,
    addons: list[tuple[str, int]],
    overrides: list[OverrideView],
    now: datetime,
    grace_days: int,
) -> Entitlements:
    """Effective entitlements now. Expired overrides are ignored."""
    overrides = [o for o in overrides if o.expires_at is None or now < o.expires_at]
    reason = "no_subscription"
    if subscription is not None and pinned is not None:
        reason = effective_status(subscription, overrides, now, grace_days)
        tier = pinned[1].tier(subscription.tier_id)
        if reason is None and tier is not None:
            return _build(tier, pinned, subscription.status, subscription, addons, overrides, None)
    version, catalog = newest
    free = catalog.free_tier
    currency = subscription.currency if subscription else catalog.default_currency
    if free is None:
        return Entitlements(
            tier=None,
            catalog=catalog,
            catalog_version=version,
            status="none",
            interval=None,
            currency=currency,
            billing_anchor=None,
            features={
                fid: FeatureAccess(f, False, 0, None, 0, "none")
                for fid, f in catalog.features.items()
            },
            fallback_reason=reason,
        )
    return _build(
        free,
        newest,
        "free",
        None,
        [],
        overrides,
        None if reason == "no_subscription" else reason,
        currency,
    )


def _build(
    tier: Tier,
    published: tuple[int, Catalog],
    status: str,
    sub: SubscriptionView | None,
    addons: list[tuple[str, int]],
    overrides: list[OverrideView],
    fallback_reason: str | None,
    currency: str | None = None,
) -> Entitlements:
    version, catalog = published
    pct = catalog.offers.nudge_threshold_percent
    grants: dict[str, FeatureAccess] = {}
    for fid, feature in catalog.features.items():
        g = tier.grant(fid)
        limit = None if feature.kind is FeatureKind.BOOLEAN else g.limit
        grants[fid] = FeatureAccess(feature, g.enabled, limit, g.nudge_at, g.overage, "tier")
    owned = dict(addons)
    for addon in catalog.addons:
        quantity = 1 if tier.id in addon.included_in else owned.get(addon.id, 0)
        for fid, g in addon.grants.items() if quantity else ():
            grants[fid] = _add(grants[fid], g.enabled, g.limit, quantity, f"addon:{addon.id}")
    for o in overrides:
        current = grants.get(o.feature_id or "")
        if current is None:
            continue
        if o.kind == "limit" and current.feature.metered:
            enabled = o.limit is None or o.limit > 0
            grants[current.feature.id] = FeatureAccess(
                current.feature, enabled, o.limit, None, 0, "override"
            )
        elif o.kind == "feature":
            limit = None if not current.feature.metered else current.limit
            grants[current.feature.id] = FeatureAccess(
                current.feature, True, limit, current.nudge_at, current.overage, "override"
            )
    for fid, access in grants.items():
        if access.limit is not None and access.nudge_at is None and access.limit > 0:
            nudge = -(-access.limit * pct // 100)  # ceil without floats
            grants[fid] = FeatureAccess(
                access.feature, access.enabled, access.limit, nudge, access.overage, access.source
            )
    return Entitlements(
        tier=tier,
        catalog=catalog,
        catalog_version=version,
        status=status,
        interval=sub.interval if sub else None,
        currency=sub.currency if sub else (currency or catalog.default_currency),
        billing_anchor=(sub.period_start, sub.period_end, sub.interval) if sub else None,
        features=grants,
        fallback_reason=fallback_reason,
    )


def _add(
    access: FeatureAccess, enabled: bool, limit: int | None, quantity: int, source: str
) -> FeatureAccess:
    """An add-on grant on top of the tier: booleans enable, metered limits add up."""
    if not access.feature.metered:
        return FeatureAccess(access.feature, access.enabled or enabled, None, None, 0, source)
    new_limit = None if access.limit is None or limit is None else access.limit + limit * quantity
    return FeatureAccess(
        access.feature, new_limit is None or new_limit > 0, new_limit, None, access.overage, source
    )
