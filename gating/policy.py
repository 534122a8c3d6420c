"""The offer policy: which upgrade to offer for a need, and its exact amounts (UPSELL 3-7). Pure.

`choose_upgrade` ranks the newest catalog's listed tiers above the account's tier that sell its
interval and currency and unlock the need, and offers the CHEAPEST (ties: lower order). An account
on a hidden legacy tier is compared across catalogs by what tiers grant and cost, not by order.
An account with no plan at all (`NO_PLAN`: a catalog without a free tier) is offered a first
plan exactly as a free account is.
Amounts come from billing/proration.py, so the offer states what billing will charge.

Promotions: the catalog's automatic promotion for the tier, interval and currency (the running
one without a code that takes the most off, `Catalog.automatic_promotion`), or the promotion of a
code the customer typed, discounts the first charge of the change (today's debit, a new period,
or the first charge after a trial); the renewal keeps the discount for `forever` promotions,
and for `repeating` ones whose months, counted from the change as Stripe's coupon counts them,
have not run by then.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from billing.proration import (
    Discount,
    Item,
    LineKind,
    Proration,
    add_interval,
    prorate_change,
    prorate_interval_switch,
    start_period,
)
from tiers.model import (
    AddOn,
    AddOnBilling,
    Catalog,
    Feature,
    Grant,
    Interval,
    Promotion,
    Tier,
)
from tiers.money import format_count, format_money, yearly_saving

ONCE = "once"


@dataclass(frozen=True)
class OwnedAddOn:
    """An add-on the account has (the AddOn of its own catalog version) and how many."""

    addon: AddOn
    quantity: int = 1
    removed: bool = False  # the customer removed it: it ends at the period end, or with a move


# Where an account with no plan at all is (a catalog without a free tier, and no paid plan:
# never subscribed, or its trial or plan ended): nothing granted, no price. An upgrade from it
# is a first plan, quoted like one from the free tier; offers say its tier is none.
NO_PLAN = Tier(id="", name="No plan", order=-1, hidden=True)


@dataclass(frozen=True)
class Current:
    """Where the account is: its tier object (possibly legacy, or NO_PLAN), interval, currency
    and period."""

    tier: Tier
    currency: str
    interval: str | None = None  # None: a free account with no subscription
    period_start: datetime | None = None
    period_end: datetime | None = None
    addons: tuple[OwnedAddOn, ...] = ()
    trial_end: datetime | None = None  # trialing until then: nothing is charged before it
    # The invoice balance in `currency` (negative: a credit), taken off the next charges first,
    # as Stripe takes the customer balance off each invoice it finalizes.
    balance: int = 0
    # Never subscribed: a first plan starts with its tier's free trial (one per account, as at
    # checkout), so an upgrade from the free tier charges nothing today.
    first_trial: bool = False
    # What a forever promotion running on the plan takes off each renewal (the revenue the
    # plan really brings; a move of plan ends it)
    plan_off: int = 0

    @property
    def no_plan(self) -> bool:
        """No plan at all: every grant off, no current price."""
        return self.tier is NO_PLAN

    @property
    def paid(self) -> bool:
        return (
            not self.tier.free
            and self.interval is not None
            and self.period_start is not None
            and self.period_end is not None
        )


@dataclass(frozen=True)
class Need:
    """What the account tried: enable a feature (`required` None) or hold `required` units."""

    feature_id: str
    required: int | None = None
    used: int | None = None  # current usage, for "10 of 10 projects used"
    current: Grant | None = None  # the account's effective grant now (overrides, add-ons)

    @classmethod
    def enable(cls, feature_id: str, current: Grant | None = None) -> Need:
        return cls(feature_id, None, None, current)

    @classmethod
    def units(
        cls, feature_id: str, used: int, requested: int, current: Grant | None = None
    ) -> Need:
        return cls(feature_id, used + requested, used, current)


@dataclass(frozen=True)
class PriceJump:
    percent: int | None  # rounded up; None from the free tier (any jump counts)
    exceeds_guard: bool
    message: str | None  # the plain statement shown when the jump exceeds the guard


@dataclass(frozen=True)
class PromotionOffer:
    id: str
    name: str
    discount: int  # minor units taken off the first charge shown
    ends_at: datetime | None
    limited_time: bool  # only when the promotion really ends


@dataclass(frozen=True)
class YearlyAlternative:
    recurring_amount: int
    amount_due_today: int
    next_renewal_at: datetime | None
    saving_amount: int  # against twelve monthly payments of the same tier
    saving_percent: int  # rounded down
    promotion: PromotionOffer | None
    # With a trial: nothing today, and this first charge (after the balance) when it ends.
    first_charge: int | None = None
    trial_end: datetime | None = None


@dataclass(frozen=True)
class AddOnSuggestion:
    id: str
    name: str
    description: str
    amount: int
    interval: str  # month | year | once


@dataclass(frozen=True)
class UpgradePlan:
    feature: Feature
    from_tier: Tier
    to_tier: Tier
    interval: str
    currency: str
    used: int | None
    from_limit: int | None
    to_limit: int | None
    usage_text: str | None
    from_limit_text: str
    to_limit_text: str
    reason: str
    contact_sales: bool = False
    contact_sales_url: str | None = None
    new_recurring_amount: int | None = None
    amount_due_today: int | None = None
    next_renewal_amount: int | None = None
    next_renewal_at: datetime | None = None
    trial_end: datetime | None = None
    note: str | None = None  # e.g. the trial: nothing today, first charge at trial end
    price_jump: PriceJump | None = None
    yearly: YearlyAlternative | None = None
    promotion: PromotionOffer | None = None
    addon: AddOnSuggestion | None = None
    credit_applied: int = 0  # of the account's credit, taken off the amount due today
    credit_left: int = 0  # the credit kept for the next invoices after today's charge
    owed: int = 0  # an amount owed from earlier invoices, included in today's charge
    renewal_total: int | None = None  # the next renewal before the balance is taken off


def choose_upgrade(
    catalog: Catalog, current: Current, need: Need, now: datetime
) -> UpgradePlan | None:
    """The cheapest sufficient upgrade from the newest `catalog`, contact sales, or None."""
    feature = catalog.feature(need.feature_id)
    if feature is None:
        return None
    interval = current.interval or Interval.MONTH.value
    currency = current.currency.lower()
    before = need.current or effective_grant(current.tier, current.addons, feature.id)
    candidates = [
        t
        for t in _above(catalog, current, interval, currency)
        if _satisfies(effective_grant(t, current.addons, feature.id), need)
        and _better(effective_grant(t, current.addons, feature.id), before)
    ]
    self_serve = [t for t in candidates if not t.contact_sales]
    target: Tier | None = min(
        self_serve or candidates,
        default=None,
        key=lambda t: (_price(t, interval, currency) if self_serve else 0, t.order),
    )
    if target is None:
        return None
    return _plan(catalog, current, need, now, feature, target, before)


def price_upgrade(
    catalog: Catalog,
    current: Current,
    need: Need,
    now: datetime,
    target: Tier,
    code: Promotion | None = None,
) -> UpgradePlan | None:
    """The plan `choose_upgrade` makes for a given tier, at `now` (an offer re-quoted), with
    the promotion of a code the customer typed in place of the automatic one wherever the code
    applies (its tiers, intervals and currency). None: the tier is not an upgrade any more."""
    feature = catalog.feature(need.feature_id)
    interval = current.interval or Interval.MONTH.value
    if feature is None or target.id not in {
        t.id for t in _above(catalog, current, interval, current.currency.lower())
    }:
        return None
    before = need.current or effective_grant(current.tier, current.addons, feature.id)
    return _plan(catalog, current, need, now, feature, target, before, code)


def _plan(
    catalog: Catalog,
    current: Current,
    need: Need,
    now: datetime,
    feature: Feature,
    target: Tier,
    before: Grant,
    code: Promotion | None = None,
) -> UpgradePlan:
    interval = current.interval or Interval.MONTH.value
    currency = current.currency.lower()
    after = effective_grant(target, current.addons, feature.id)
    texts = _texts(feature, current.tier, target, before, after, need)
    if target.contact_sales:
        return UpgradePlan(
            feature,
            current.tier,
            target,
            interval,
            currency,
            need.used,
            before.limit,
            after.limit,
            *texts,
            contact_sales=True,
            contact_sales_url=catalog.offers.contact_sales_url,
        )
    return _priced(catalog, current, need, now, feature, target, before, after, texts, code)


def _priced(
    catalog: Catalog,
    current: Current,
    need: Need,
    now: datetime,
    feature: Feature,
    target: Tier,
    before: Grant,
    after: Grant,
    texts: tuple[str | None, str, str, str],
    code: Promotion | None,
) -> UpgradePlan:
    interval, currency = current.interval or Interval.MONTH.value, current.currency.lower()
    price = _price(target, interval, currency)
    promo = _promotion(catalog, target, interval, currency, now, code)
    charge, renewal_at = _charge(current, target, interval, currency, promo, now, catalog)
    trial_end = _trial_end(current, target, now)
    # During a trial nothing of the plan is charged today (an amount owed still is); the
    # trial's end charges the new items (`charge`) with what is left of the balance.
    today = 0 if trial_end is not None else charge.total
    due, left = settled(today, current.balance)
    renewal = price + sum(i.total for i in _kept(current, interval, currency, catalog, target))
    if promo is not None and _renewal_discounted(promo, now, renewal_at):
        renewal -= promo.discount(price, currency)
    renewal_total = renewal  # before the balance: what an add-on ticked is added to
    renewal = settled(renewal, left)[0]
    note = None
    if trial_end is not None:
        renewal_total = charge.total
        renewal = settled(charge.total, left)[0]
        today_text = (
            f"only the {format_money(due, currency)} owed from earlier invoices is charged today"
            if due
            else "nothing is charged today"
        )
        trial = (
            "You are on a free trial"
            if _trialing(current, now)
            else f"{target.name} starts with a {target.trial_days}-day free trial"
        )
        note = (
            f"{trial}: {today_text}; the first charge of "
            f"{format_money(renewal, currency)} is on {trial_end:%B %-d, %Y}."
        )
    promotion = _promotion_offer(promo, charge)
    yearly = _yearly(catalog, current, target, currency, now, code)
    jump = _jump(current, target, interval, currency, catalog, yearly, promotion)
    return UpgradePlan(
        feature,
        current.tier,
        target,
        interval,
        currency,
        need.used,
        before.limit,
        after.limit,
        *texts,
        new_recurring_amount=price,
        amount_due_today=due,
        next_renewal_amount=renewal,
        renewal_total=renewal_total,
        next_renewal_at=renewal_at,
        trial_end=trial_end,
        note=note,
        price_jump=jump,
        yearly=yearly,
        promotion=promotion,
        addon=_addon(catalog, feature, target, current, interval, currency),
        credit_applied=max(0, max(0, today) - due),
        credit_left=-left,
        owed=max(0, current.balance),
    )


def choose_post_purchase_addon(
    catalog: Catalog,
    tier: Tier,
    owned_addons: Collection[str] = (),
    interval: str | None = None,
    currency: str | None = None,
) -> AddOn | None:
    """The support add-on to offer right after a purchase (UPSELL 2), or None."""
    options = []
    for addon in catalog.addons:
        if not addon.support_level or addon.id in owned_addons or not addon.purchasable_by(tier):
            continue
        amount = None
        if currency is not None:
            key = ONCE if addon.billing is AddOnBilling.ONE_TIME else interval
            amount = addon.price(key, currency) if key else None
            if amount is None:
                continue
        options.append((tier.id not in addon.suggested_with_tiers, amount or 0, addon))
    return min(options, key=lambda o: (o[0], o[1]), default=(True, 0, None))[2]


# ---- ranking --------------------------------------------------------------------------------


def tiers_above(catalog: Catalog, current: Current, interval: str, currency: str) -> list[Tier]:
    """The listed tiers an upgrade from `current` can move to (what `price_upgrade` quotes)."""
    return _above(catalog, current, interval, currency)


def _above(catalog: Catalog, current: Current, interval: str, currency: str) -> list[Tier]:
    """Listed tiers ranked above the current one that sell this interval and currency."""
    anchor = catalog.tier(current.tier.id)
    same_catalog = anchor is not None and not anchor.hidden
    own_price = current.tier.price(interval, currency) or 0
    found = []
    for tier in catalog.listed_tiers:
        if tier.free or tier.id == current.tier.id:
            continue
        if not tier.contact_sales and tier.price(interval, currency) is None:
            continue
        if same_catalog and anchor is not None:
            if tier.order > anchor.order:
                found.append(tier)
        elif _dominates(tier, current.tier) and (
            tier.contact_sales or _price(tier, interval, currency) >= own_price
        ):
            found.append(tier)
    return found


def _dominates(candidate: Tier, legacy: Tier) -> bool:
    """Across catalogs: the candidate grants at least what the legacy tier grants, everywhere."""
    return all(_at_least(candidate.grant(fid), g) for fid, g in legacy.features.items())


def _at_least(a: Grant, b: Grant) -> bool:
    if not b.enabled:
        return True
    if not a.enabled:
        return False
    return a.limit is None or (b.limit is not None and a.limit >= b.limit)


def _better(a: Grant, b: Grant) -> bool:
    return _at_least(a, b) and not _at_least(b, a)


def _satisfies(grant: Grant, need: Need) -> bool:
    if not grant.enabled:
        return False
    if need.required is None or grant.limit is None:
        return True
    return grant.limit >= need.required  # overage is a soft allowance, not sold


def effective_grant(tier: Tier, addons: Sequence[OwnedAddOn], feature_id: str) -> Grant:
    """The tier's grant plus what kept recurring add-ons add to it: what the account would be
    granted on `tier`."""
    grant = tier.grant(feature_id)
    enabled, limit = grant.enabled, grant.limit if grant.enabled else 0
    for owned in addons:
        extra = owned.addon.grants.get(feature_id)
        if extra is None or not extra.enabled or owned.addon.billing is AddOnBilling.ONE_TIME:
            continue
        enabled = True
        if limit is not None:
            limit = None if extra.limit is None else limit + extra.limit * owned.quantity
    return Grant(enabled=enabled, limit=limit if enabled else 0)


def _price(tier: Tier, interval: str, currency: str) -> int:
    return tier.price(interval, currency) or 0


# ---- amounts --------------------------------------------------------------------------------


def _trialing(current: Current, now: datetime) -> bool:
    return current.paid and current.trial_end is not None and current.trial_end > now


def _trial_end(current: Current, target: Tier, now: datetime) -> datetime | None:
    """When the trial a move to `target` is in ends (None: no trial, charged now): the running
    trial (Stripe keeps it through a plan change), or a never-subscribed account's first trial
    of `target` (as checkout starts it)."""
    if _trialing(current, now):
        return current.trial_end
    if current.first_trial and not current.paid and target.trial_days > 0:
        return now + timedelta(days=target.trial_days)
    return None


def _kept(
    current: Current,
    interval: str,
    currency: str,
    catalog: Catalog,
    target: Tier | None = None,
) -> list[Item]:
    """The account's recurring add-ons as items in `interval` (priced by the newest catalog when
    the interval changes, as billing reprices them). Moving to `target`, an add-on it includes
    or cannot have, or one the customer removed, ends with the move (billing.records.kept_on),
    its unused time credited."""
    items = []
    for owned in current.addons:
        addon = owned.addon
        if addon.billing is AddOnBilling.ONE_TIME:
            continue
        if target is not None and (
            owned.removed or not (catalog.addon(addon.id) or addon).purchasable_by(target)
        ):
            continue
        if interval != current.interval:
            addon = catalog.addon(addon.id) or addon
        amount = addon.price(interval, currency)
        if amount is not None:
            items.append(Item(addon.id, amount, owned.quantity, addon.name))
    return items


def ending_addons(current: Current, catalog: Catalog, target: Tier) -> int:
    """What the recurring add-ons that moving to `target` ends cost per the current interval
    (the customer's removed ones end at the period end anyway: not counted)."""
    if current.interval is None:
        return 0
    stay = [a for a in current.addons if not a.removed]
    owned = _kept(replace(current, addons=tuple(stay)), current.interval, current.currency, catalog)
    kept = _kept(current, current.interval, current.currency, catalog, target)
    return sum(i.total for i in owned) - sum(i.total for i in kept)


def settled(total: int, balance: int) -> tuple[int, int]:
    """An invoice of `total` with the customer's `balance` applied, as Stripe finalizes it:
    what is due (never below zero) and the balance left (a credit is kept, never refunded)."""
    return max(0, total + balance), min(0, total + balance)


def _charge(
    current: Current,
    target: Tier,
    interval: str,
    currency: str,
    promo: Promotion | None,
    now: datetime,
    catalog: Catalog,
) -> tuple[Proration, datetime | None]:
    """What moving to `target` in `interval` charges, and when the next renewal is."""
    plan = Item(
        target.id, _price(target, interval, currency), 1, target.name, _discount(promo, currency)
    )
    if not current.paid or current.period_start is None or current.period_end is None:
        trial_end = _trial_end(current, target, now)
        if trial_end is not None:  # the first charge comes at the trial's end
            plan = _at_trial_end(plan, promo, now, trial_end)
            return start_period([plan], trial_end, interval), trial_end
        charged = start_period([plan], now, interval)
        return charged, charged.period_end
    own = current.interval or interval
    old = [
        Item(current.tier.id, _price(current.tier, own, currency), 1, current.tier.name),
        *_kept(current, own, currency, catalog),
    ]
    new = [plan, *_kept(current, interval, currency, catalog, target)]
    if _trialing(current, now) and current.trial_end is not None:
        # Stripe keeps the trial: no proration now, the new items are charged at trial end.
        new = [_at_trial_end(plan, promo, now, current.trial_end), *new[1:]]
        return start_period(new, current.trial_end, interval), current.trial_end
    if interval != own:
        switched = prorate_interval_switch(
            old, new, current.period_start, current.period_end, now, interval
        )
        return switched, switched.period_end
    changed = prorate_change(old, new, current.period_start, current.period_end, now)
    return changed, current.period_end


def _at_trial_end(plan: Item, promo: Promotion | None, now: datetime, trial_end: datetime) -> Item:
    """The plan as its first charge at the trial's end prices it: a `repeating` promotion whose
    months (counted from now, as the coupon's) have run out by then takes nothing off."""
    if promo is None or promo.duration != "repeating" or _renewal_discounted(promo, now, trial_end):
        return plan
    return replace(plan, discount=None)


def _promotion(
    catalog: Catalog,
    tier: Tier,
    interval: str,
    currency: str,
    now: datetime,
    code: Promotion | None = None,
) -> Promotion | None:
    """The typed code's promotion where it applies, else the catalog's automatic promotion for
    this tier, interval and currency."""
    if code is not None and code.active(now) and code.takes_off(tier, interval, currency) > 0:
        return code
    return catalog.automatic_promotion(tier, interval, currency, now)


def _discount(promo: Promotion | None, currency: str) -> Discount | None:
    if promo is None:
        return None
    return Discount(promo.id, promo.percent_off, promo.amount_off.get(currency, 0), promo.name)


def _renewal_discounted(promo: Promotion, now: datetime, renewal_at: datetime | None) -> bool:
    """Does the promotion, given now, still discount the next renewal? As Stripe's coupon:
    `forever` yes, `once` no, `repeating` when the renewal comes before its months have run."""
    if promo.duration == "forever":
        return True
    if promo.duration != "repeating" or renewal_at is None:
        return False
    return renewal_at < add_interval(now, "month", promo.duration_in_months or 1)


def _promotion_offer(promo: Promotion | None, charge: Proration) -> PromotionOffer | None:
    if promo is None:
        return None
    off = -sum(line.amount for line in charge.lines if line.kind is LineKind.DISCOUNT)
    if off <= 0:  # it takes nothing off this charge (a repeating one run out by then)
        return None
    return PromotionOffer(promo.id, promo.name, off, promo.ends_at, promo.ends_at is not None)


def _yearly(
    catalog: Catalog,
    current: Current,
    target: Tier,
    currency: str,
    now: datetime,
    code: Promotion | None = None,
) -> YearlyAlternative | None:
    """The same tier paid yearly, for a monthly (or free) account, when it is sold yearly."""
    if current.interval not in (None, Interval.MONTH):
        return None
    year = Interval.YEAR.value
    yearly, monthly = target.price(year, currency), target.price(Interval.MONTH, currency)
    if yearly is None or monthly is None:
        return None
    if current.paid and len(_kept(current, year, currency, catalog, target)) != len(
        _kept(current, Interval.MONTH, currency, catalog, target)
    ):
        return None  # an add-on the account keeps is not sold yearly
    promo = _promotion(catalog, target, year, currency, now, code)
    charge, renewal_at = _charge(current, target, year, currency, promo, now, catalog)
    saving = yearly_saving(monthly, yearly)
    trial_end = _trial_end(current, target, now)
    today = 0 if trial_end is not None else charge.total  # a trial (kept, or a first one)
    due, left = settled(today, current.balance)
    return YearlyAlternative(
        recurring_amount=yearly,
        amount_due_today=due,
        next_renewal_at=renewal_at,
        saving_amount=saving.amount if saving else 0,
        saving_percent=saving.percent if saving else 0,
        promotion=_promotion_offer(promo, charge),
        first_charge=settled(charge.total, left)[0] if trial_end is not None else None,
        trial_end=trial_end,
    )


def _jump(
    current: Current,
    target: Tier,
    interval: str,
    currency: str,
    catalog: Catalog,
    yearly: YearlyAlternative | None,
    promotion: PromotionOffer | None,
) -> PriceJump:
    """How much more the new tier costs per interval; plain words when it exceeds the guard."""
    new = _price(target, interval, currency)
    old = _price(current.tier, interval, currency) if current.paid else 0
    percent = None if old == 0 else -(-(new - old) * 100 // old)
    exceeds = percent is None or percent > catalog.offers.price_jump_guard_percent
    if not exceeds:
        return PriceJump(percent, False, None)
    per = f"{format_money(new, currency)} / {interval}"
    if current.no_plan:  # nothing paid now: the whole price is the jump
        message = f"{target.name} costs {per}."
    else:
        message = f"{target.name} costs {per}, {format_money(new - old, currency)} more than "
        message += current.tier.name + (f" (+{percent} %)." if percent is not None else ".")
    if yearly is not None:
        message += f" Paid yearly: {format_money(yearly.recurring_amount, currency)} / year"
        if yearly.saving_amount > 0:
            message += f", saving {format_money(yearly.saving_amount, currency)}"
            message += f" ({yearly.saving_percent} %)"
        message += "."
    for promo in (promotion, yearly.promotion if yearly else None):
        if promo is not None:
            message += f" {promo.name}" + (
                f" until {promo.ends_at:%B %-d, %Y}." if promo.ends_at else "."
            )
            break
    return PriceJump(percent, True, message)


def _addon(
    catalog: Catalog,
    feature: Feature,
    target: Tier,
    current: Current,
    interval: str,
    currency: str,
) -> AddOnSuggestion | None:
    """At most one related add-on (UPSELL 1, 3): feature match first, then tier, then cheaper."""
    owned = {o.addon.id for o in current.addons}
    options = []
    for addon in catalog.addons:
        by_feature = feature.id in addon.suggested_with_features
        if not (by_feature or target.id in addon.suggested_with_tiers):
            continue
        if addon.id in owned or not addon.purchasable_by(target):
            continue
        key = ONCE if addon.billing is AddOnBilling.ONE_TIME else interval
        amount = addon.price(key, currency)
        if amount is not None:
            options.append((not by_feature, amount, addon.id, addon, key))
    if not options:
        return None
    _, amount, _, addon, key = min(options, key=lambda o: o[:3])
    return AddOnSuggestion(addon.id, addon.name, addon.description, amount, key)


# ---- words ----------------------------------------------------------------------------------


def _texts(
    feature: Feature, old: Tier, new: Tier, before: Grant, after: Grant, need: Need
) -> tuple[str | None, str, str, str]:
    """(usage text, from-limit text, to-limit text, reason) in the customer's usage terms."""
    no_plan = old is NO_PLAN
    if not feature.metered:
        if no_plan:
            reason = f"{feature.name} needs a plan; {new.name} includes it"
        else:
            reason = f"{feature.name} is not included in {old.name}; {new.name} includes it"
        reason += ": contact our sales team." if new.contact_sales else "."
        return None, _limit_text(feature, before), _limit_text(feature, after), reason
    used = need.used or 0
    if before.enabled and before.limit is not None:
        usage = f"{format_count(used)} of {format_count(before.limit)} "
        usage += f"{feature.units(before.limit)} used"
    else:
        usage = f"{format_count(used)} {feature.units(used)} used"
    if no_plan and not before.enabled:
        reason = f"Without a plan, {_phrase(feature, before)} are included and "
        reason += f"{format_count(used)} "
    else:
        reason = f"{old.name} includes {_phrase(feature, before)} and {format_count(used)} "
    reason += "is used" if used == 1 else "are used"
    extra = (need.required or used) - used
    if extra > 0:
        reason += f"; {format_count(extra)} more {feature.units(extra)} requested"
    reason += f". {new.name} includes {_phrase(feature, after)}"
    reason += ": contact our sales team." if new.contact_sales else "."
    return usage, _limit_text(feature, before), _limit_text(feature, after), reason


def _phrase(feature: Feature, grant: Grant) -> str:
    if not grant.enabled:
        return f"no {feature.units(None)}"
    if grant.limit is None:
        return f"unlimited {feature.units(None)}"
    return f"{format_count(grant.limit)} {feature.units(grant.limit)}"


def _limit_text(feature: Feature, grant: Grant) -> str:
    """'50 projects', 'Unlimited projects', 'SSO included', 'SSO not included'."""
    if not feature.metered:
        return f"{feature.name} {'included' if grant.enabled else 'not included'}"
    if not grant.enabled:
        return f"{feature.name} not included"
    text = _phrase(feature, grant)
    return text[0].upper() + text[1:]
