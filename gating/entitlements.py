"""Entitlement resolution (pure): what an account may use now, from its tier, add-ons,
overrides and subscription status. No database, no Flask: the service passes plain values."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from tiers.model import AddOn, Catalog, Feature, Grant, Tier

# Statuses that never grant the paid tier (Stripe: the first payment failed, or gave up).
FALLBACK_STATUSES = ("incomplete", "incomplete_expired", "unpaid", "paused")
# A trial past its end keeps its tier this long while billing turns it into the first paid
# period (Stripe within the hour; `tiergate billing renew`, run daily, for manual billing);
# then, still not converted, the account falls back to the free tier.
TRIAL_CONVERSION_WINDOW = timedelta(days=1)
NO_ACCESS = "no_access"


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
    nudge_at: int | None  # usage at which the account is nudged (metered, limited only)
    overage: int  # units allowed beyond the limit (the hard cap is limit + overage)
    source: str  # tier | addon:<id> | override | no_access

    @property
    def cap(self) -> int | None:
        """The hard cap: limit plus the overage allowance (None: no cap)."""
        return None if self.limit is None else self.limit + self.overage


@dataclass(frozen=True)
class Entitlements:
    tier: Tier | None  # None: no access at all (no subscription and no free tier)
    catalog: Catalog
    catalog_version: int
    status: str  # the subscription's status, "free", or "no_access"
    interval: str | None
    currency: str
    # the subscription's stored period: start, end, interval, and its trial's end (or None)
    billing_anchor: tuple[datetime, datetime, str, datetime | None] | None
    features: dict[str, FeatureAccess] = field(default_factory=dict)
    fallback_reason: str | None = None  # why a subscriber is on the free tier now
    newer: Catalog | None = None  # the newest catalog, when the plan is pinned to an older one


def fallback_reason(sub: SubscriptionView, now: datetime, grace_days: int) -> str | None:
    """None when the subscription grants its tier now, else why it does not."""
    if sub.status == "trialing":  # a trial extension moved trial_end (billing.records)
        return None if now < trial_ends(sub) else "trial_ended"
    if sub.status == "past_due":
        since = sub.past_due_since or sub.period_end
        return None if now < since + timedelta(days=grace_days) else "past_due_grace_expired"
    if sub.status == "canceled":  # ended (a cancellation at the period end stays active
        return "canceled"  # with cancel_at_period_end until then)
    if sub.status in FALLBACK_STATUSES:
        return sub.status
    if sub.cancel_at_period_end and now >= sub.period_end:
        return "canceled"
    return None


def trial_ends(sub: SubscriptionView) -> datetime:
    """When a trialing subscription stops granting its tier if billing has not converted it."""
    return (sub.trial_end or sub.period_end) + TRIAL_CONVERSION_WINDOW


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
    """Effective entitlements now: the pinned tier while the status grants it, else the newest
    catalog's free tier, else no access. Expired overrides are ignored."""
    overrides = [o for o in overrides if o.expires_at is None or now < o.expires_at]
    reason: str | None = None
    if subscription is not None and pinned is not None:
        reason = fallback_reason(subscription, now, grace_days)
        tier = pinned[1].tier(subscription.tier_id)
        if reason is None and tier is not None:
            extra = newest[1] if newest[0] != pinned[0] else None
            return _build(tier, pinned, subscription, addons, overrides, extra)
        reason = reason or "unknown_tier"
    version, catalog = newest
    currency = subscription.currency if subscription else catalog.default_currency
    free = catalog.free_tier
    if free is None:
        return Entitlements(
            tier=None,
            catalog=catalog,
            catalog_version=version,
            status=NO_ACCESS,
            interval=None,
            currency=currency,
            billing_anchor=None,
            features=_overridden(
                {
                    fid: FeatureAccess(f, False, 0 if f.metered else None, None, 0, NO_ACCESS)
                    for fid, f in catalog.features.items()
                },
                overrides,
                None,
            ),
            fallback_reason=reason,
        )
    ent = _build(free, newest, None, [], overrides, None)
    anchor = None  # a subscriber fallen back keeps counting in its period until it ends
    if subscription is not None and now < subscription.period_end:
        anchor = (
            subscription.period_start,
            subscription.period_end,
            subscription.interval,
            subscription.trial_end,
        )
    return replace(ent, currency=currency, fallback_reason=reason, billing_anchor=anchor)


def _build(
    tier: Tier,
    published: tuple[int, Catalog],
    sub: SubscriptionView | None,
    addons: list[tuple[str, int]],
    overrides: list[OverrideView],
    newer: Catalog | None,
) -> Entitlements:
    version, catalog = published
    grants = {
        fid: FeatureAccess(
            feature,
            tier.grant(fid).enabled,
            tier.grant(fid).limit if feature.metered else None,
            tier.grant(fid).nudge_at,
            tier.grant(fid).overage,
            "tier",
        )
        for fid, feature in catalog.features.items()
    }
    for addon, quantity in _owned_addons(tier, catalog, newer, addons):
        for fid, grant in addon.grants.items():
            if _ensure(grants, fid, newer):
                grants[fid] = _add(grants[fid], grant, quantity, f"addon:{addon.id}")
    grants = _overridden(grants, overrides, newer)
    pct = catalog.offers.nudge_threshold_percent
    for fid, access in grants.items():
        if access.limit is not None and access.limit > 0 and access.nudge_at is None:
            nudge = -(-access.limit * pct // 100)  # ceil without floats
            grants[fid] = replace(access, nudge_at=nudge)
    return Entitlements(
        tier=tier,
        catalog=catalog,
        catalog_version=version,
        status=sub.status if sub else "free",
        interval=sub.interval if sub else None,
        currency=sub.currency if sub else catalog.default_currency,
        billing_anchor=(sub.period_start, sub.period_end, sub.interval, sub.trial_end)
        if sub
        else None,
        features=grants,
        newer=newer,
    )


def _overridden(
    grants: dict[str, FeatureAccess], overrides: list[OverrideView], newer: Catalog | None
) -> dict[str, FeatureAccess]:
    """The grants with the account's overrides applied (a custom limit, an extra feature),
    whatever the plan, or with no plan at all."""
    for o in overrides:
        if not _ensure(grants, o.feature_id or "", newer):
            continue
        current = grants[o.feature_id or ""]
        if o.kind == "limit" and current.feature.metered:
            enabled = o.limit is None or o.limit > 0
            grants[current.feature.id] = FeatureAccess(
                current.feature, enabled, o.limit, None, 0, "override"
            )
        elif o.kind == "feature" and not current.feature.metered:
            grants[current.feature.id] = replace(current, enabled=True, source="override")
    return grants


def _ensure(grants: dict[str, FeatureAccess], feature_id: str, newer: Catalog | None) -> bool:
    """Is `feature_id` in `grants`? A feature introduced after the pinned catalog version is
    added from the newest one, not included (as the tier does not name it), so that an add-on
    or override granting it applies."""
    if feature_id in grants:
        return True
    feature = newer.feature(feature_id) if newer is not None else None
    if feature is None:
        return False
    grants[feature_id] = not_in_plan(feature)
    return True


def not_in_plan(feature: Feature) -> FeatureAccess:
    """A feature the plan does not include (one added to the catalog after its version)."""
    return FeatureAccess(feature, False, 0 if feature.metered else None, None, 0, "tier")


def _owned_addons(
    tier: Tier, catalog: Catalog, newer: Catalog | None, owned: list[tuple[str, int]]
) -> list[tuple[AddOn, int]]:
    """Add-ons the tier includes (quantity 1) plus those bought; an add-on introduced after
    the pinned catalog version is read from the newest one."""
    quantities: dict[str, int] = {}
    for addon_id, quantity in owned:
        quantities[addon_id] = quantities.get(addon_id, 0) + max(quantity, 0)
    for addon in catalog.addons:
        if tier.id in addon.included_in:
            quantities[addon.id] = max(quantities.get(addon.id, 0), 1)
    found = []
    for addon_id, quantity in quantities.items():
        addon = catalog.addon(addon_id) or (newer.addon(addon_id) if newer else None)
        if addon is not None and quantity > 0:
            found.append((addon, quantity))
    return found


def _add(access: FeatureAccess, grant: Grant, quantity: int, source: str) -> FeatureAccess:
    """An add-on grant on top of the tier: booleans enable, metered limits add up."""
    if not access.feature.metered:
        enabled = access.enabled or grant.enabled
        return replace(access, enabled=enabled, source=source if grant.enabled else access.source)
    if access.limit is None and access.enabled:
        return access  # already unlimited
    if grant.limit is None:
        return replace(access, enabled=True, limit=None, nudge_at=None, source=source)
    limit = (access.limit or 0) + grant.limit * quantity
    return replace(access, enabled=limit > 0, limit=limit, nudge_at=None, source=source)
