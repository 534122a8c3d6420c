"""Moving subscribers from one catalog version to another (grandfathering ends on purpose).

Subscriptions are pinned to the catalog version they bought under; publishing never moves
them. `migrate_subscribers` does, after reporting per account what the move would take away:
boolean features lost, and metered features whose current usage is over the new limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gating.models import AccountAddOn, Subscription, SubscriptionStatus, UsageCounter
from tiergate.clock import Clock
from tiergate.exceptions import Conflict, InvalidRequest, NotFound
from tiers import store
from tiers.checks import did_you_mean, money
from tiers.model import AddOnBilling, Catalog, Feature, FeatureKind, ResetPeriod, Tier

GAUGE_PERIOD = datetime(1970, 1, 1, tzinfo=UTC)
USAGE_NOTE = (
    "Usage compared: gauges, and counters in their current period (calendar month or day, or "
    "the subscription's billing period). Add-ons and per-account overrides are not counted: "
    "they can only raise a limit."
)


@dataclass(frozen=True)
class OverLimit:
    feature_id: str
    used: int
    limit: int


@dataclass(frozen=True)
class AccountImpact:
    account_id: str
    tier_id: str
    lost_features: tuple[str, ...] = ()
    over_limits: tuple[OverLimit, ...] = ()
    notes: tuple[str, ...] = ()  # price changes, intervals or currencies no longer sold

    @property
    def affected(self) -> bool:
        return bool(self.lost_features or self.over_limits or self.notes)


@dataclass(frozen=True)
class Unsold:
    """A subscription the target version does not sell its tier to, at its interval and
    currency: moved there, it would have no price to renew at."""

    account_id: str
    tier_id: str
    interval: str
    currency: str

    def describe(self) -> str:
        return f"'{self.tier_id}' per {self.interval} in {self.currency}"


@dataclass(frozen=True)
class MigrationReport:
    from_version: int
    to_version: int
    dry_run: bool
    moved: tuple[AccountImpact, ...]
    skipped: tuple[tuple[str, str], ...] = field(default=())  # (account id, tier id)
    unsold: tuple[Unsold, ...] = field(default=())  # skipped too: not sold at their price

    def lines(self) -> list[str]:
        """The report as text lines for the CLI."""
        verb = "Would move" if self.dry_run else "Moved"
        out = [
            f"{verb} {len(self.moved)} subscription(s) from catalog version "
            f"{self.from_version} to {self.to_version}."
        ]
        for impact in self.moved:
            if impact.affected:
                out.append(f"  {impact.account_id} ({impact.tier_id}): {_describe(impact)}")
        unaffected = sum(1 for i in self.moved if not i.affected)
        if unaffected:
            out.append(
                f"  {unaffected} account(s) keep every feature and stay within their limits."
            )
        for account_id, tier_id in self.skipped:
            out.append(
                f"  skipped {account_id}: tier '{tier_id}' does not exist in version "
                f"{self.to_version}; it stays on version {self.from_version}"
            )
        for unsold in self.unsold:
            out.append(
                f"  skipped {unsold.account_id}: version {self.to_version} does not sell "
                f"{unsold.describe()}; it stays on version {self.from_version}"
            )
        out.append(USAGE_NOTE)
        if self.dry_run:
            out.append("Dry run: nothing was changed.")
        return out


def migrate_subscribers(
    session: Session,
    clock: Clock,
    *,
    from_version: int,
    to_version: int,
    tier_id: str | None = None,
    dry_run: bool = False,
    force: bool = False,
) -> MigrationReport:
    """Re-pin subscriptions on `from_version` (optionally one tier) to `to_version`.

    Refuses (Conflict) when a subscription's tier, or its scheduled tier, does not exist in the
    target version, or the target does not sell its tier at its interval and currency (it could
    not renew), unless `force`, which leaves those subscriptions where they are.
    """
    if from_version == to_version:
        raise InvalidRequest(f"--from and --to are both version {from_version}: nothing to move.")
    old = store.load(session, from_version).catalog
    new = store.load(session, to_version).catalog
    if tier_id is not None and old.tier(tier_id) is None:
        raise NotFound(
            f"Tier '{tier_id}' does not exist in catalog version {from_version}"
            + did_you_mean(tier_id, [t.id for t in old.tiers])
        )
    # An ended (canceled) subscription grants nothing and never renews: it is left where it is.
    query = select(Subscription).where(
        Subscription.catalog_version == from_version,
        Subscription.status != SubscriptionStatus.CANCELED,
    )
    if tier_id is not None:
        query = query.where(Subscription.tier_id == tier_id)
    if not dry_run:
        store.lock_subscribers(session)  # not while `billing renew` runs (lock order)
        query = query.with_for_update()
    subscriptions = list(session.scalars(query.order_by(Subscription.account_id)))
    missing = sorted(
        {
            t
            for s in subscriptions
            for t in (s.tier_id, s.scheduled_tier_id)
            if t is not None and new.tier(t) is None
        }
    )
    unsold = [u for s in subscriptions if not _missing_tier(s, new) and (u := _unsold(s, old, new))]
    if (missing or unsold) and not force:
        problems = []
        if missing:
            count = sum(1 for s in subscriptions if _missing_tier(s, new))
            problems.append(
                f"Catalog version {to_version} has no tier {', '.join(repr(t) for t in missing)}: "
                f"{count} subscription(s) would be left without their tier."
            )
        if unsold:
            what = ", ".join(dict.fromkeys(u.describe() for u in unsold))
            problems.append(
                f"Catalog version {to_version} does not sell {what}: {len(unsold)} "
                "subscription(s) would be left without a price to renew at."
            )
        raise Conflict(
            " ".join(problems) + " Map them to another tier first, or pass --force to leave "
            f"them on version {from_version}.",
            details={
                "missing_tiers": missing,
                "unsold": [
                    {"tier_id": t, "interval": i, "currency": c}
                    for t, i, c in dict.fromkeys(
                        (u.tier_id, u.interval, u.currency) for u in unsold
                    )
                ],
            },
        )
    now = clock.now()
    unsold_accounts = {u.account_id for u in unsold}
    moved: list[AccountImpact] = []
    skipped: list[tuple[str, str]] = []
    for subscription in subscriptions:
        gone = _missing_tier(subscription, new)
        if gone:
            skipped.append((subscription.account_id, gone))
            continue
        if subscription.account_id in unsold_accounts:
            continue
        old_tier, new_tier = old.tier(subscription.tier_id), new.tier(subscription.tier_id)
        assert old_tier is not None and new_tier is not None  # checked above
        usage = _usage(session, subscription.account_id)
        impact = _impact(subscription, old_tier, new_tier, old, new, usage, now)
        addon_notes, repriced = _addons_moved(session, subscription, old, new, to_version)
        moved.append(replace(impact, notes=(*impact.notes, *addon_notes)))
        if not dry_run:
            for row in repriced:  # grandfathering of their prices ends with the plan's
                row.catalog_version = to_version
            subscription.catalog_version = to_version
            if subscription.scheduled_catalog_version is not None:
                # the change scheduled for the period end renews at this version's price too
                subscription.scheduled_catalog_version = to_version
            subscription.updated_at = now
    session.flush()
    return MigrationReport(
        from_version, to_version, dry_run, tuple(moved), tuple(skipped), tuple(unsold)
    )


def _missing_tier(subscription: Subscription, catalog: Catalog) -> str | None:
    for tier_id in (subscription.tier_id, subscription.scheduled_tier_id):
        if tier_id is not None and catalog.tier(tier_id) is None:
            return tier_id
    return None


def _unsold(subscription: Subscription, old: Catalog, new: Catalog) -> Unsold | None:
    old_tier, new_tier = old.tier(subscription.tier_id), new.tier(subscription.tier_id)
    assert old_tier is not None and new_tier is not None  # a missing tier is checked first
    interval, currency = subscription.interval, subscription.currency
    if (old_tier.free and new_tier.free) or (old_tier.contact_sales and new_tier.contact_sales):
        return None  # nothing to renew at a price
    if new_tier.price(interval, currency) is None or new_tier.free:
        return Unsold(subscription.account_id, subscription.tier_id, interval, currency)
    if subscription.scheduled_tier_id or subscription.scheduled_interval:  # its next plan too
        tier_id = subscription.scheduled_tier_id or subscription.tier_id
        interval = subscription.scheduled_interval or interval
        scheduled = new.tier(tier_id)
        if scheduled is None or (
            not scheduled.free and scheduled.price(interval, currency) is None
        ):
            return Unsold(subscription.account_id, tier_id, interval, currency)
    return None


def period_start(feature: Feature, subscription: Subscription, now: datetime) -> datetime:
    """The start of the usage period a counter of `feature` is in at `now`."""
    if feature.kind is FeatureKind.GAUGE or feature.resets is None:
        return GAUGE_PERIOD
    if feature.resets is ResetPeriod.DAY:
        return datetime(now.year, now.month, now.day, tzinfo=UTC)
    if feature.resets is ResetPeriod.BILLING_PERIOD:
        return subscription.current_period_start
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def _usage(session: Session, account_id: str) -> dict[tuple[str, datetime], int]:
    rows = session.scalars(select(UsageCounter).where(UsageCounter.account_id == account_id))
    return {(row.feature_id, row.period_start): row.used for row in rows}


def _impact(
    subscription: Subscription,
    old_tier: Tier,
    new_tier: Tier,
    old: Catalog,
    new: Catalog,
    usage: dict[tuple[str, datetime], int],
    now: datetime,
) -> AccountImpact:
    lost: list[str] = []
    over: list[OverLimit] = []
    # Both catalogs' features: one the new version removes is lost to whoever had it.
    removed = {fid: f for fid, f in old.features.items() if fid not in new.features}
    for fid, feature in {**new.features, **removed}.items():
        before, after = old_tier.grant(fid), new_tier.grant(fid)
        if before.enabled and not after.enabled:
            lost.append(fid)
            continue
        if feature.metered and after.limit is not None:
            start = period_start(feature, subscription, now)
            used = usage.get((fid, start), 0)
            if used > after.limit:
                over.append(OverLimit(fid, used, after.limit))
    return AccountImpact(
        subscription.account_id,
        subscription.tier_id,
        tuple(lost),
        tuple(over),
        tuple(_price_notes(subscription, old_tier, new_tier)),
    )


def _price_notes(subscription: Subscription, old_tier: Tier, new_tier: Tier) -> list[str]:
    interval, currency = subscription.interval, subscription.currency
    if (old_tier.free and new_tier.free) or (old_tier.contact_sales and new_tier.contact_sales):
        return []
    before, after = old_tier.price(interval, currency), new_tier.price(interval, currency)
    if after is None:  # not moved (see _unsold); kept so the report never hides it
        return [f"the new version does not sell '{new_tier.id}' per {interval} in {currency}"]
    if before != after:
        new_amount = money(after, currency).split(" ", 1)[1]
        shown = money(before, currency) if before is not None else f"{currency} (none)"
        return [f"price per {interval}: {shown} -> {new_amount}"]
    return []


def _addons_moved(
    session: Session, subscription: Subscription, old: Catalog, new: Catalog, to_version: int
) -> tuple[list[str], list[AccountAddOn]]:
    """The account's recurring add-ons: the price changes the move makes (notes) and the rows
    it re-pins (those the new version sells at the plan's interval and currency)."""
    interval, currency = subscription.interval, subscription.currency
    notes: list[str] = []
    moved: list[AccountAddOn] = []
    rows = session.scalars(
        select(AccountAddOn).where(
            AccountAddOn.account_id == subscription.account_id, AccountAddOn.active.is_(True)
        )
    )
    for row in rows:
        own = store.load(session, row.catalog_version).catalog if row.catalog_version else old
        spec, target = own.addon(row.addon_id), new.addon(row.addon_id)
        if spec is None or spec.billing is AddOnBilling.ONE_TIME:
            continue
        before = spec.price(interval, currency)
        after = target.price(interval, currency) if target is not None else None
        if after is None:
            shown = money(before, currency) if before is not None else "its price"
            notes.append(
                f"keeps {spec.name} at {shown}: version {to_version} does not sell it per "
                f"{interval} in {currency}"
            )
            continue
        moved.append(row)
        if before != after:
            old_amount = money(before, currency) if before is not None else f"{currency} (none)"
            notes.append(f"{spec.name}: {old_amount} -> {money(after, currency).split(' ', 1)[1]}")
    return notes, moved


def _describe(impact: AccountImpact) -> str:
    parts = []
    if impact.lost_features:
        parts.append("loses " + ", ".join(impact.lost_features))
    parts += [
        f"over the new {o.feature_id} limit ({o.used:,} used, limit {o.limit:,})"
        for o in impact.over_limits
    ]
    parts += list(impact.notes)
    return "; ".join(parts)
