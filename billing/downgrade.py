"""Downgrade, cancel and resume: at the period end, with the loss spelled out before confirming.

No usage data is ever deleted: usage above a new limit stays, and the gate blocks new
consumption until the account is under the limit again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from billing.provider import (
    BillingProvider,
)
from billing.records import (
    FlowResult,
    active_addons,
    addon_price,
    catalog_addon,
    live_or_conflict,
    schedule_change,
    state_of,
    tier_price,
    usage_of,
)
from tiergate.clock import Clock
from tiergate.exceptions import (
    Conflict,
    InvalidRequest,
    NotFound,
)
from tiers import store
from tiers.model import AddOnBilling, FeatureKind, Tier


@dataclass(frozen=True)
class OverLimit:
    feature: str
    used: int
    new_limit: int
    message: str


@dataclass(frozen=True)
class DowngradePreview:
    """Everything the customer loses, shown BEFORE the confirm button."""

    from_tier: str
    to_tier: str  # the tier name after the change ("Free" when canceling)
    to_tier_id: str | None
    interval: str
    effective_at: datetime
    lost_features: tuple[str, ...]
    over_limits: tuple[OverLimit, ...]
    lowered_limits: tuple[str, ...]
    lost_addons: tuple[str, ...]
    new_recurring_amount: int  # 0 when canceling
    currency: str
    cancel: bool


def downgrade_preview(
    session: Session,
    clock: Clock,
    account_id: str,
    tier_id: str | None,
    interval: str | None = None,
) -> DowngradePreview:
    """What moving to `tier_id` (None: cancel to the free tier) at the period end takes away."""
    _, sub = live_or_conflict(session, account_id)
    published = store.load(session)
    catalog = published.catalog
    current = store.load(session, sub.catalog_version).catalog.tier(sub.tier_id) or catalog.tier(
        sub.tier_id
    )
    if current is None:
        raise InvalidRequest(f"The current tier {sub.tier_id!r} is not in the catalog.")
    cancel = tier_id is None
    target: Tier | None
    if cancel:
        target = catalog.free_tier
        amount = 0
        interval = sub.interval
    else:
        target = catalog.tier(str(tier_id))
        if target is None or not target.self_serve:
            raise NotFound(f"Tier {tier_id!r} cannot be chosen online.")
        interval = interval or sub.interval
        if target.free:
            raise InvalidRequest("To move to the free tier, cancel the subscription.")
        amount = tier_price(catalog, target.id, interval, sub.currency).amount
        if target.id == current.id and interval == sub.interval:
            raise Conflict(f"You are already on {current.name} billed per {interval}.")
        if target.order > current.order or (interval == "year" and sub.interval == "month"):
            raise InvalidRequest(
                f"{target.name} per {interval} is an upgrade: upgrades apply at once from the "
                "upgrade page, not at the period end."
            )
    lost, over, lowered = [], [], []
    addons_kept = {r.addon_id for r in active_addons(session, account_id) if r.ended_at is None}
    for feature in catalog.features.values():
        before, after = current.grant(feature.id), (target.grant(feature.id) if target else None)
        if after is None or not after.enabled:
            if before.enabled:
                lost.append(feature.name)
            if not feature.metered or after is None:
                continue
        if not feature.metered or after.limit is None:
            continue
        extra = sum(
            (a.grants[feature.id].limit or 0)
            for a in catalog.addons
            if a.id in addons_kept and feature.id in a.grants and not cancel
        )
        limit = after.limit + extra
        if before.limit is not None and limit >= before.limit:
            continue
        lowered.append(
            f"{feature.name}: {_count(before.limit, feature)} -> {_count(limit, feature)}"
        )
        # Counters restart with the next period, when the change applies: only gauges carry over.
        used = usage_of(session, account_id, feature.id, feature.kind)
        if feature.kind is FeatureKind.GAUGE and used > limit:
            over.append(OverLimit(feature.name, used, limit, _over_message(feature, used, limit)))
    lost_addons = tuple(
        a.name
        for a in catalog.addons
        if a.id in addons_kept
        and a.billing is AddOnBilling.RECURRING
        and (cancel or (target is not None and not a.purchasable_by(target)))
    )
    return DowngradePreview(
        from_tier=current.name,
        to_tier=target.name if target else "no plan",
        to_tier_id=target.id if target and not cancel else None,
        interval=interval,
        effective_at=sub.current_period_end,
        lost_features=tuple(lost),
        over_limits=tuple(over),
        lowered_limits=tuple(lowered),
        lost_addons=lost_addons,
        new_recurring_amount=amount,
        currency=sub.currency,
        cancel=cancel,
    )


def _count(limit: int | None, feature: Any) -> str:
    return "unlimited" if limit is None else f"{limit} {feature.units(limit)}"


def _over_message(feature: Any, used: int, limit: int) -> str:
    units = feature.units(used)
    return (
        f"{used} {units}, new limit {limit}: existing {units} stay; creating new ones is "
        "blocked until you are under the limit."
    )


def confirm_downgrade(
    session: Session,
    clock: Clock,
    provider: BillingProvider,
    account_id: str,
    tier_id: str,
    interval: str | None = None,
) -> FlowResult:
    """Schedule the downgrade (or yearly -> monthly switch) for the period end."""
    preview = downgrade_preview(session, clock, account_id, tier_id, interval)
    _, sub = live_or_conflict(session, account_id)
    catalog = store.load(session).catalog
    next_plan = tier_price(catalog, tier_id, preview.interval, sub.currency)
    state = state_of(session, sub)
    target = catalog.tier(tier_id)
    kept = tuple(
        a
        for a in (state.next_addons if state.next_addons is not None else state.addons)
        if target is not None
        and (spec := catalog.addon(a.item_id)) is not None
        and spec.purchasable_by(target)
    )
    kept = tuple(
        addon_price(catalog, catalog_addon(catalog, a.item_id), preview.interval, sub.currency)
        if a.interval != preview.interval
        else a
        for a in kept
    )
    result = schedule_change(
        session,
        clock,
        provider,
        account_id,
        "downgrade",
        next_plan=next_plan,
        next_addons=kept,
        cancel=False,
    )
    when = preview.effective_at.strftime("%B %-d, %Y")
    return FlowResult(
        result.status,
        result.change,
        f"You move to {preview.to_tier} per {preview.interval} on {when}.",
    )


def cancel(
    session: Session, clock: Clock, provider: BillingProvider, account_id: str
) -> FlowResult:
    """Cancel at the period end: everything stays until then; resume undoes it."""
    _, sub = live_or_conflict(session, account_id)
    when = sub.current_period_end.strftime("%B %-d, %Y")
    result = schedule_change(
        session,
        clock,
        provider,
        account_id,
        "cancel",
        next_plan=None,
        next_addons=None,
        cancel=True,
    )
    return FlowResult(
        result.status,
        result.change,
        f"Your subscription ends on {when}. You keep everything until then.",
    )


def resume(
    session: Session, clock: Clock, provider: BillingProvider, account_id: str
) -> FlowResult:
    """Before the period ends: clear a scheduled downgrade, interval change or cancellation."""
    _, sub = live_or_conflict(session, account_id)
    if clock.now() >= sub.current_period_end:
        raise Conflict("The period has already ended: the scheduled change was applied.")
    result = schedule_change(
        session,
        clock,
        provider,
        account_id,
        "resume",
        next_plan=None,
        next_addons=None,
        cancel=False,
    )
    return FlowResult(
        result.status,
        result.change,
        f"Your {sub.tier_id.replace('_', ' ').title()} subscription continues.",
    )
