"""Downgrade, cancel and resume: at the period end, with the loss spelled out before confirming.

No usage data is ever deleted: usage above a new limit stays, and the gate blocks new
consumption until the account is under the limit again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from billing.manual import running_at_renewal
from billing.provider import BillingProvider, Discount, Price, SubscriptionState
from billing.quotes import renewal_quote
from billing.records import (
    FlowResult,
    FlowStatus,
    QuoteExpired,
    active_addons,
    live_or_conflict,
    lock_account,
    reprice,
    schedule_change,
    state_of,
    tier_price,
    usage_of,
)
from gating import policy
from gating.models import Subscription
from tiergate.clock import Clock
from tiergate.exceptions import (
    Conflict,
    InvalidRequest,
    NotFound,
)
from tiers import store
from tiers.model import AddOnBilling, Catalog, FeatureKind, Tier


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
    from_tier_id: str
    to_tier: str  # the tier name after the change ("Free" when canceling)
    to_tier_id: str | None
    interval: str
    effective_at: datetime
    lost_features: tuple[str, ...]
    over_limits: tuple[OverLimit, ...]
    lowered_limits: tuple[str, ...]
    lost_addons: tuple[str, ...]
    new_recurring_amount: int  # the first renewal after the change, add-ons included; 0: cancel
    currency: str
    cancel: bool
    replaces: str | None  # the change already scheduled that confirming replaces, in words
    # What the page was computed from (the plan, its period, the scheduled change, the loss),
    # hashed: the confirm form carries it back, and confirming refuses a page that no longer
    # matches the account (the plan changed in another tab, through the API or a webhook).
    fingerprint: str

    @property
    def interval_switch(self) -> bool:
        """Only the billing interval changes (yearly -> monthly on the same tier)."""
        return not self.cancel and self.to_tier_id == self.from_tier_id


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
    state = state_of(session, sub)
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
        if target.id == current.id and interval == sub.interval:
            raise Conflict(f"You are already on {current.name} billed per {interval}.")
        if interval == "year" and sub.interval == "month":
            raise InvalidRequest(
                f"{target.name} per {interval} is an upgrade: upgrades apply at once from the "
                "upgrade page, not at the period end."
            )
        tier_price(catalog, target.id, interval, sub.currency)  # refused when not sold so
        if target.id != current.id and not moves_down(current, state.plan, target, interval):
            raise InvalidRequest(
                f"{target.name} per {interval} costs more than you pay for {current.name} now, "
                "so it is an upgrade: upgrades apply at once from the upgrade page, not at the "
                "period end."
            )
        # What the first renewal after the change charges: the plan and the add-ons that stay.
        scheduled = next_period(catalog, state, target, interval)
        amount = renewal_quote(scheduled, _renewal_discount(scheduled)).total
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
    to_tier_id = target.id if target and not cancel else None
    basis = [
        [sub.tier_id, sub.interval, sub.currency, sub.catalog_version],
        [sub.current_period_end.isoformat(), sub.cancel_at_period_end],
        [sub.scheduled_tier_id, sub.scheduled_interval, sub.scheduled_catalog_version],
        [to_tier_id, interval, cancel, amount, lost, lowered, lost_addons],
        [o.feature for o in over],  # not the counts: usage moves while the page is open
    ]
    return DowngradePreview(
        from_tier=current.name,
        from_tier_id=current.id,
        to_tier=target.name if target else "no plan",
        to_tier_id=to_tier_id,
        interval=interval,
        effective_at=sub.current_period_end,
        lost_features=tuple(lost),
        over_limits=tuple(over),
        lowered_limits=tuple(lowered),
        lost_addons=lost_addons,
        new_recurring_amount=amount,
        currency=sub.currency,
        cancel=cancel,
        replaces=_scheduled_now(sub, state),
        fingerprint=hashlib.sha256(json.dumps(basis).encode()).hexdigest()[:32],
    )


class PreviewChanged(QuoteExpired):
    """A confirm from a page whose loss was computed from another state of the account (or
    from a page without that state): nothing is scheduled, and the page is shown anew (as for
    a price that no longer holds)."""

    code = "preview_changed"


CHANGED_SINCE = (
    "Your plan changed since this page was opened, so nothing was scheduled. Here is what "
    "this change means now: confirm again if you still want it."
)
OUT_OF_DATE = (
    "This page is out of date, so nothing was scheduled. Here is what this change means "
    "now: confirm again if you still want it."
)


def check_shown(preview: DowngradePreview, shown: str | None) -> None:
    """Refuse a confirm whose page showed another loss than `preview` (its fingerprint
    `shown`; "" from a page without one). None: the caller shows no page (the service API)."""
    if shown is not None and shown != preview.fingerprint:
        raise PreviewChanged(CHANGED_SINCE if shown else OUT_OF_DATE)


def _scheduled_now(sub: Subscription, state: SubscriptionState) -> str | None:
    """The change scheduled for the period end, in words (None: none is)."""
    when = sub.current_period_end.strftime("%B %-d, %Y")
    if sub.cancel_at_period_end:
        return f"your subscription ends on {when}"
    if state.next_plan is not None:
        return f"you move to {state.next_plan.name}, billed {state.next_plan.interval}ly, on {when}"
    return None


def moves_down(current: Tier, paid: Price, target: Tier, interval: str) -> bool:
    """Whether `target` per `interval` costs less than `paid` for `current` (a yearly spend
    against a yearly spend; the catalog order breaks a tie). By price, not the catalog order:
    a legacy tier sits anywhere in it."""
    amount = target.price(interval, paid.currency)
    if amount is None or target.free or paid.interval is None:
        return False
    return (_per_year(amount, interval), target.order) < (
        _per_year(paid.amount, paid.interval),
        current.order,
    )


def directions(
    session: Session, catalog: Catalog, sub: Subscription
) -> Callable[[Tier], str | None]:
    """Which way each tier of `catalog` is from `sub`, by the rules of its billing pages: "up"
    where /billing/upgrade quotes it (the gate's policy), "down" where the downgrade page
    schedules it, and the free tier by cancelling. None: neither (contact sales, a dearer tier
    lacking one of a legacy plan's features), so no button ends on "not an upgrade"."""
    held = store.load(session, sub.catalog_version).catalog.tier(sub.tier_id)
    now_tier = catalog.tier(sub.tier_id) or held
    state = state_of(session, sub)
    above: set[str] = set()
    if held is not None:
        now_on = policy.Current(held, sub.currency, sub.interval)
        above = {t.id for t in policy.tiers_above(catalog, now_on, sub.interval, sub.currency)}

    def direction(tier: Tier) -> str | None:
        if tier.contact_sales:
            return None
        # A move down first, as the billing page lists it; then an upgrade it can quote.
        if tier.free or (
            now_tier is not None and moves_down(now_tier, state.plan, tier, sub.interval)
        ):
            return "down"
        return "up" if tier.id in above else None

    return direction


def _per_year(amount: int, interval: str) -> int:
    return amount * 12 if interval == "month" else amount


def next_period(
    catalog: Catalog, state: SubscriptionState, target: Tier, interval: str
) -> SubscriptionState:
    """`state` with a move to `target` per `interval` scheduled: the add-ons `target` can have
    stay (a pending removal stays removed), at the new interval's prices."""
    plan = tier_price(catalog, target.id, interval, state.plan.currency)
    addons = tuple(
        a
        for a in (state.next_addons if state.next_addons is not None else state.addons)
        if (spec := catalog.addon(a.item_id)) is not None and spec.purchasable_by(target)
    )
    return replace(
        state,
        next_plan=plan,
        next_addons=reprice(catalog, addons, interval, plan.currency),
        cancel_at_period_end=False,
    )


def _renewal_discount(state: SubscriptionState) -> Discount | None:
    kept = running_at_renewal(state)
    return kept.discount if kept is not None else None


def _removals_kept(state: SubscriptionState) -> tuple[Price, ...] | None:
    """The add-ons that stay at the period end, at today's prices, when a scheduled plan change
    is replaced or cleared: an add-on the customer removed stays removed (None: none is)."""
    if state.next_addons is None:
        return None
    staying = {a.item_id for a in state.next_addons}
    kept = tuple(a for a in state.addons if a.item_id in staying)
    return kept if len(kept) != len(state.addons) else None


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
    *,
    shown: str | None = None,
) -> FlowResult:
    """Schedule the downgrade (or yearly -> monthly switch) for the period end; from a page,
    only while the loss it showed (its fingerprint `shown`) is still the one it brings."""
    lock_account(session, account_id)  # first: what follows is read after any change in flight
    preview = downgrade_preview(session, clock, account_id, tier_id, interval)
    check_shown(preview, shown)
    _, sub = live_or_conflict(session, account_id)
    catalog = store.load(session).catalog
    target = catalog.tier(tier_id)
    if target is None:  # the preview found it: only a catalog published in between
        raise NotFound(f"Tier {tier_id!r} cannot be chosen online.")
    scheduled = next_period(catalog, state_of(session, sub), target, preview.interval)
    result = schedule_change(
        session,
        clock,
        provider,
        account_id,
        "downgrade",
        next_plan=scheduled.next_plan,
        next_addons=scheduled.next_addons,
        cancel=False,
    )
    if result.status is not FlowStatus.DONE:  # not scheduled (busy, unreachable): say so
        return result
    when = preview.effective_at.strftime("%B %-d, %Y")
    return FlowResult(
        result.status,
        result.change,
        f"You move to {preview.to_tier}, billed {preview.interval}ly, on {when}.",
    )


def cancel(
    session: Session,
    clock: Clock,
    provider: BillingProvider,
    account_id: str,
    *,
    shown: str | None = None,
) -> FlowResult:
    """Cancel at the period end: everything stays until then; resume undoes it. From a page,
    only while the loss it showed (its fingerprint `shown`) is still the one it brings."""
    lock_account(session, account_id)  # first: what follows is read after any change in flight
    if shown is not None:
        check_shown(downgrade_preview(session, clock, account_id, None), shown)
    _, sub = live_or_conflict(session, account_id)
    when = sub.current_period_end.strftime("%B %-d, %Y")
    result = schedule_change(
        session,
        clock,
        provider,
        account_id,
        "cancel",
        next_plan=None,
        next_addons=_removals_kept(state_of(session, sub)),
        cancel=True,
    )
    if result.status is not FlowStatus.DONE:
        return result
    return FlowResult(
        result.status,
        result.change,
        f"Your subscription ends on {when}. You keep everything until then.",
    )


def resume(
    session: Session, clock: Clock, provider: BillingProvider, account_id: str
) -> FlowResult:
    """Before the period ends: clear a scheduled downgrade, interval change or cancellation.
    No page check: whatever was scheduled since the page was opened, this keeps the plan the
    account is on now, charges nothing and can be scheduled again."""
    lock_account(session, account_id)  # first: what follows is read after any change in flight
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
        next_addons=_removals_kept(state_of(session, sub)),
        cancel=False,
    )
    if result.status is not FlowStatus.DONE:
        return result
    return FlowResult(
        result.status,
        result.change,
        f"Your {sub.tier_id.replace('_', ' ').title()} subscription continues.",
    )
