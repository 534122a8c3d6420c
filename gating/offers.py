"""Persisted upgrade offers: quote (gating/policy.py), reuse, cooldown, offer body, funnel events.

A denial repeated every second must not write a row every second: an unexpired offer with the
same account, feature, trigger, tiers, interval, currency, catalog version and amounts is reused.
A quote expires (`quote_valid_minutes`) because proration changes with time; the body shows it.
Dismissing an offer silences prompts for that account and feature during the cooldown (UPSELL 7):
denials still carry the offer, with `prompt` false.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session, lazyload
from sqlalchemy.orm.attributes import set_committed_value

from billing.records import (
    LIVE,
    balance_in,
    removed_addons,
    running_from_json,
    state_of,
    trial_available,
    usage_of,
)
from gating import policy
from gating.models import (
    Account,
    AccountAddOn,
    Offer,
    OfferEvent,
    OfferStatus,
    OfferTrigger,
    Subscription,
    SubscriptionStatus,
)
from gating.periods import billing_bounds
from tiergate.clock import Clock
from tiergate.exceptions import Conflict, InvalidRequest, NotFound, TiergateError
from tiers import store
from tiers.model import Catalog, Feature, FeatureKind, Grant, Promotion, Tier
from tiers.money import format_money, yearly_saving

EVENT_TYPES = ("shown", "clicked", "dismissed", "accepted", "paid", "failed")
# Statuses an identical new quote may reuse: not yet used up, turned down or paid.
REUSABLE = (OfferStatus.CREATED, OfferStatus.SHOWN, OfferStatus.CLICKED, OfferStatus.FAILED)
DONE = (OfferStatus.ACCEPTED, OfferStatus.PAID)
# What a reused offer states anew each time: the usage and limits the need was quoted for.
_STATED = ("usage", "reason", "from", "to")


class Entitlements(Protocol):
    """What offer_for reads of gating/entitlements.py's resolved entitlements (and, when they
    have them, their `features`: the account's effective grants, see _granted)."""

    @property
    def tier(self) -> Tier | None: ...  # None: no plan at all (no free tier to fall back to)

    @property
    def catalog_version(self) -> int: ...


class Settings(Protocol):
    @property
    def base_url(self) -> str: ...


def offer_for(
    session: Session,
    clock: Clock,
    *,
    account: Account,
    entitlements: Entitlements,
    feature_id: str,
    used: int | None,
    requested: int | None,
    trigger: OfferTrigger | str,
    settings: Settings,
) -> Offer | None:
    """The upgrade offer for a need (reused while an identical quote holds), or None."""
    trigger = _trigger(trigger)
    if (used is not None and used < 0) or (requested is not None and requested < 0):
        raise InvalidRequest(f"used and requested must not be negative ({used}, {requested})")
    now = clock.now()
    newest = store.load(session)
    catalog = newest.catalog
    feature = catalog.feature(feature_id)
    if feature is None:
        return None
    if _set_for_account(entitlements, feature_id):
        # A limit the product team set for this account replaces what any plan grants, so no
        # upgrade would change it: none is sold (the denial still says why).
        return None
    current = _current(session, account, entitlements, catalog, now)
    grant = _granted(entitlements, feature_id)
    if feature.kind is FeatureKind.BOOLEAN:
        need = policy.Need.enable(feature_id, grant)
    else:
        need = policy.Need.units(feature_id, used or 0, requested or 0, grant)
    plan = policy.choose_upgrade(catalog, current, need, now)
    if plan is None:
        return None
    prompt = not _cooling_down(session, account.id, feature_id, catalog, now)
    body = _body(plan, current, catalog)
    fields = _fields(account.id, trigger, newest.version, current, plan)
    existing = _reusable(session, fields, now, body)
    if existing is not None:
        if existing.prompt != prompt:
            existing.prompt = prompt
        if existing.quantity != requested:
            existing.quantity = requested
        # The same quote, but it states the customer's numbers as they are now (UPSELL 5).
        details = existing.details or {}
        now_stated = {k: body[k] for k in _STATED if details.get(k) != body[k]}
        if now_stated:
            existing.details = {**details, **now_stated}
        return existing
    return _create(session, catalog, now, fields, plan, body, quantity=requested, prompt=prompt)


def offer_for_tier(
    session: Session,
    clock: Clock,
    *,
    account: Account,
    entitlements: Entitlements,
    tier_id: str,
) -> Offer:
    """The upgrade a signed-in customer chose on the pricing page (trigger `pricing_page`),
    quoted exactly like the gate's own offers: the prorated amount due today, the renewal,
    the yearly alternative, the automatic promotion. It leads with the first feature the tier
    gives more of than the account has now. Reused while the same quote holds.

    NotFound: no such listed tier. Conflict: not an upgrade from where the account is."""
    now = clock.now()
    newest = store.load(session)
    catalog = newest.catalog
    target = catalog.tier(tier_id)
    if target is None or target.hidden:
        raise NotFound(f"Tier {tier_id!r} is not on the pricing page.")
    current = _current(session, account, entitlements, catalog, now)
    feature = _first_gain(catalog, current, entitlements, target)
    plan = None
    if feature is not None:
        grant = _granted(entitlements, feature.id)
        if feature.kind is FeatureKind.BOOLEAN:
            need = policy.Need.enable(feature.id, grant)
        else:
            used = usage_of(session, account.id, feature.id, feature.kind)
            need = policy.Need.units(feature.id, used, 0, grant)
        plan = policy.price_upgrade(catalog, current, need, now, target)
    if plan is None:
        raise Conflict(
            f"{target.name} is not an upgrade from your plan: see the billing page to change plans."
        )
    body = _body(plan, current, catalog)
    fields = _fields(account.id, OfferTrigger.PRICING_PAGE, newest.version, current, plan)
    existing = _reusable(session, fields, now, body)
    if existing is not None:
        return existing
    return _create(session, catalog, now, fields, plan, body, quantity=None)


def _first_gain(
    catalog: Catalog, current: policy.Current, entitlements: Entitlements, target: Tier
) -> Feature | None:
    """The first feature (catalog order) that `target` grants more of than the account has."""
    for feature in catalog.features.values():
        if _set_for_account(entitlements, feature.id):
            continue  # a limit set for the account: the tier would not change it
        now_grant = _granted(entitlements, feature.id) or current.tier.grant(feature.id)
        then = policy.effective_grant(target, current.addons, feature.id)
        if not then.enabled or (now_grant.enabled and not feature.metered):
            continue
        if not now_grant.enabled or (
            now_grant.limit is not None and (then.limit is None or then.limit > now_grant.limit)
        ):
            return feature
    return None


def requote(
    session: Session, clock: Clock, offer: Offer, *, code: Promotion | None = None
) -> Offer:
    """The same offer quoted again now: a fresh quote for an expired one, or with the promotion
    of a code the customer typed (`code`). Every amount is computed anew by the policy, the
    yearly alternative too. The new offer keeps the trigger, feature and tier, and names the
    offer it came from (`details.requoted_from` or `details.code_from`); one is reused while it
    holds, so reloading the page does not mint offers.

    Conflict when it cannot be: a contact-sales offer, or the account is on that tier by now.
    """
    now = clock.now()
    newest = store.load(session)
    catalog = newest.catalog
    origin = "code_from" if code is not None else "requoted_from"
    if code is None:  # an expired offer keeps the code the customer typed, while it runs
        carried = (offer.details or {}).get("code_promotion")
        code = next((p for p in catalog.active_promotions(now) if p.id == carried), None)
    later = session.scalars(
        select(Offer).where(
            Offer.account_id == offer.account_id, Offer.created_at >= offer.created_at
        )
    )
    for candidate in later:
        details = candidate.details or {}
        fresh = candidate.expires_at is None or candidate.expires_at > now
        same_code = details.get("code") == (code.code if code is not None else None)
        if details.get(origin) == offer.id and same_code and fresh:
            return candidate
    account = session.get(Account, offer.account_id)
    target = catalog.tier(offer.to_tier_id or "")
    feature = catalog.feature(offer.feature_id or "")
    held = _held(session, account, catalog) if account is not None else None
    if offer.contact_sales or account is None or target is None or feature is None or not held:
        raise Conflict("This offer cannot be quoted again: open it again from the app.")
    current = _current(session, account, held, catalog, now)
    used = ((offer.details or {}).get("usage") or {}).get("used")
    if feature.kind is FeatureKind.BOOLEAN:
        need = policy.Need.enable(feature.id)
    else:
        need = policy.Need.units(feature.id, used or 0, offer.quantity or 0)
    plan = policy.price_upgrade(catalog, current, need, now, target, code)
    if plan is None:
        raise Conflict(f"You are already on {target.name} or above: nothing to upgrade.")
    body = _body(plan, current, catalog)
    body[origin] = offer.id
    if code is not None:
        body["code"], body["code_promotion"] = code.code, code.id
    fields = _fields(account.id, offer.trigger, newest.version, current, plan)
    return _create(session, catalog, now, fields, plan, body, quantity=offer.quantity)


@dataclass(frozen=True)
class _Held:
    """The tier an account holds by its subscription, as Entitlements names it for _current
    (None: no plan at all)."""

    tier: Tier | None
    catalog_version: int


def _held(session: Session, account: Account, catalog: Catalog) -> _Held | None:
    """What billing changes from: the live subscription's tier, else the newest free tier, or
    no plan at all in a catalog without one (None: the subscription's tier is unknown)."""
    sub = account.subscription
    if sub is not None and sub.status in LIVE:
        tier = store.load(session, sub.catalog_version).catalog.tier(sub.tier_id)
        return _Held(tier, sub.catalog_version) if tier is not None else None
    return _Held(catalog.free_tier, store.load(session).version)


def _fields(
    account_id: str,
    trigger: OfferTrigger,
    version: int,
    current: policy.Current,
    plan: policy.UpgradePlan,
) -> dict[str, Any]:
    """An offer's columns that say what it quotes (an identical quote reuses the offer)."""
    return dict(
        account_id=account_id,
        trigger=trigger,
        feature_id=plan.feature.id,
        catalog_version=version,
        from_tier_id=None if current.no_plan else current.tier.id,
        to_tier_id=plan.to_tier.id,
        from_interval=current.interval,
        interval=plan.interval,
        currency=plan.currency,
        addon_id=plan.addon.id if plan.addon else None,
        promotion_id=plan.promotion.id if plan.promotion else None,
        contact_sales=plan.contact_sales,
        new_recurring_amount=plan.new_recurring_amount,
        next_renewal_amount=plan.next_renewal_amount,
    )


def _create(
    session: Session,
    catalog: Catalog,
    now: datetime,
    fields: dict[str, Any],
    plan: policy.UpgradePlan,
    body: dict[str, Any],
    *,
    quantity: int | None,
    prompt: bool = True,
) -> Offer:
    valid = None if plan.contact_sales else timedelta(minutes=catalog.offers.quote_valid_minutes)
    offer = Offer(
        id="off_" + secrets.token_urlsafe(18),
        quantity=quantity,
        amount_due_today=plan.amount_due_today,
        proration_date=now,
        prompt=prompt,
        status=OfferStatus.CREATED,
        details=body,
        expires_at=now + valid if valid is not None else None,
        created_at=now,
        **fields,
    )
    session.add(offer)
    session.flush()
    return offer


def get_offer(session: Session, offer_id: str, account_id: str | None = None) -> Offer:
    """The offer `offer_id` (NotFound, also when it belongs to another account than given)."""
    if not isinstance(offer_id, str) or not offer_id:
        raise InvalidRequest(f"offer_id must be a non-empty string, not {offer_id!r}")
    offer = session.get(Offer, offer_id)
    if offer is None or (account_id is not None and offer.account_id != account_id):
        # Another account's offer answers exactly like a missing one: existence does not leak.
        raise NotFound(f"Offer {offer_id!r} does not exist.")
    return offer


def record_event(
    session: Session,
    clock: Clock,
    offer_id: str,
    type: OfferStatus | str,  # noqa: A002 - the event's name in the API
    account_id: str | None = None,
) -> Offer:
    """Append a funnel event (shown, clicked, dismissed, accepted, paid, failed) to an offer."""
    kind = str(getattr(type, "value", type))
    if kind not in EVENT_TYPES:
        raise InvalidRequest(
            f"Unknown offer event type {kind!r}: use one of {', '.join(EVENT_TYPES)}."
        )
    event = OfferStatus(kind)
    offer = get_offer(session, offer_id, account_id)
    status = OfferStatus(offer.status or OfferStatus.CREATED)
    if event is OfferStatus.PAID and status is not OfferStatus.ACCEPTED:
        raise Conflict(
            f"Offer {offer.id} cannot be paid: it is {status.value}, not accepted.",
            details={"status": status.value},
        )
    if event is OfferStatus.FAILED and status is OfferStatus.PAID:
        raise Conflict(f"Offer {offer.id} is already paid.", details={"status": status.value})
    if event not in (OfferStatus.PAID, OfferStatus.FAILED) and status in DONE:
        raise Conflict(
            f"Offer {offer.id} was already {status.value}: it cannot be {event.value} now.",
            details={"status": status.value},
        )
    # "shown" again after a click or dismissal does not move the offer back in its funnel.
    if (event is not OfferStatus.SHOWN or status is OfferStatus.CREATED) and event not in (
        OfferStatus.PAID,
        OfferStatus.FAILED,
    ):
        # One statement that never moves a finished offer back: a click or "Not now" from a
        # second tab may be waiting on the row while the first tab's payment commits.
        moved = session.execute(
            update(Offer)
            .where(Offer.id == offer.id, Offer.status.not_in(DONE))
            .values(status=event)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not moved:
            session.refresh(offer)
            if event is OfferStatus.ACCEPTED:
                raise Conflict(
                    f"Offer {offer.id} was already {offer.status.value}.",
                    details={"status": offer.status.value},
                )
            return offer  # finished meanwhile: a late click or dismissal changes nothing
        set_committed_value(offer, "status", event)  # written above: no second UPDATE
    elif event is not OfferStatus.SHOWN:
        offer.status = event
    offer.events.append(OfferEvent(type=event, created_at=clock.now()))
    session.flush()
    return offer


def offer_json(offer: Offer, base_url: str) -> dict[str, Any]:
    """The offer body of every API answer: exact integer amounts plus their display text."""
    details = offer.details or {}
    interval = offer.interval
    addon = details.get("addon")
    if offer.addon_id and not isinstance(addon, dict):  # billing's post-purchase offers
        addon = {
            "id": offer.addon_id,
            "name": details.get("name"),
            "amount": offer.new_recurring_amount or offer.amount_due_today,
            "interval": interval if offer.new_recurring_amount else "once",
        }
    body: dict[str, Any] = {
        "id": offer.id,
        "status": OfferStatus(offer.status or OfferStatus.CREATED).value,
        "trigger": OfferTrigger(offer.trigger).value,
        "prompt": offer.prompt,
        "feature": offer.feature_id,
        "reason": details.get("reason"),
        "usage": details.get("usage"),
        "from": details.get("from") or _tier_ref(offer.from_tier_id),
        "to": details.get("to") or _tier_ref(offer.to_tier_id),
        "interval": interval,
        "currency": offer.currency,
        "new_recurring_amount": offer.new_recurring_amount,
        "amount_due_today": offer.amount_due_today,
        "next_renewal_amount": offer.next_renewal_amount,
        "next_renewal_at": details.get("next_renewal_at"),
        "trial_end": details.get("trial_end"),
        "note": details.get("note"),
        "credit": details.get("credit"),
        "proration_date": _iso(offer.proration_date),
        "expires_at": _iso(offer.expires_at),
        "price_jump": details.get("price_jump"),
        "yearly_alternative": details.get("yearly_alternative"),
        "promotion": details.get("promotion"),
        "addon": addon if isinstance(addon, dict) else None,
        "contact_sales": offer.contact_sales,
        "contact_sales_url": details.get("contact_sales_url"),
        "accept_url": f"{base_url.rstrip('/')}/offers/{offer.id}",
    }
    body["display"] = _display(offer, body)
    return body


# ---- building blocks ------------------------------------------------------------------------


def _trigger(value: OfferTrigger | str) -> OfferTrigger:
    try:
        return OfferTrigger(value)
    except ValueError:
        names = ", ".join(t.value for t in OfferTrigger)
        raise InvalidRequest(f"Unknown offer trigger {value!r}: use one of {names}.") from None


def _set_for_account(entitlements: Entitlements, feature_id: str) -> bool:
    """Does an override of the account decide this feature's grant?"""
    features = getattr(entitlements, "features", None) or {}
    access = features.get(feature_id)
    return access is not None and getattr(access, "source", None) == "override"


def _granted(entitlements: Entitlements, feature_id: str) -> Grant | None:
    """The account's effective grant of the feature now (its overrides and add-ons included),
    or None to let the policy read it off the tier."""
    features = getattr(entitlements, "features", None) or {}
    access = features.get(feature_id)
    if access is None:
        return None
    limit = access.limit if access.enabled else 0
    return Grant(enabled=access.enabled, limit=limit, overage=access.overage)


def _current(
    session: Session, account: Account, entitlements: Entitlements, catalog: Catalog, now: datetime
) -> policy.Current:
    """The account as the policy sees it: its (possibly legacy) tier, interval and period;
    with no plan at all, policy.NO_PLAN (nothing granted, no price), from which the upgrade is
    a first plan in the currency of the subscription it had, else the catalog's default."""
    tier = entitlements.tier or policy.NO_PLAN
    pinned = store.load(session, entitlements.catalog_version).catalog
    sub = account.subscription
    currency = sub.currency if sub is not None else catalog.default_currency
    if currency not in catalog.currencies:
        currency = catalog.default_currency
    balance = balance_in(account, currency)
    if sub is None or tier.free or sub.tier_id != tier.id:
        first_trial = trial_available(account)
        return policy.Current(tier, currency, balance=balance, first_trial=first_trial)
    rows = session.scalars(
        select(AccountAddOn).where(
            AccountAddOn.account_id == account.id, AccountAddOn.active.is_(True)
        )
    )
    owned = []
    try:
        removed = removed_addons(catalog, state_of(session, sub))
    except TiergateError:  # a plan billing cannot price (set by hand): the gate still answers
        removed = set()
    for row in rows:
        own = store.load(session, row.catalog_version).catalog if row.catalog_version else pinned
        addon = own.addon(row.addon_id) or catalog.addon(row.addon_id)
        if addon is not None:
            owned.append(policy.OwnedAddOn(addon, row.quantity, addon.id in removed))
    # A renewal not recorded yet: the period it is in now, on the anchor billing renews on.
    start, end = billing_bounds(
        now, (sub.current_period_start, sub.current_period_end, sub.interval, sub.trial_end)
    )
    trialing = sub.status is SubscriptionStatus.TRIALING and sub.trial_end is not None
    return policy.Current(
        tier,
        currency,
        sub.interval,
        start,
        end,
        tuple(owned),
        sub.trial_end if trialing else None,
        balance,
        plan_off=_forever_off(sub, tier, currency),
    )


def _forever_off(sub: Subscription, tier: Tier, currency: str) -> int:
    """What a forever promotion running on the plan takes off each renewal (0: none)."""
    running = running_from_json(sub.running_discount)
    if running is None or running.discount.duration != "forever" or running.tier_id != tier.id:
        return 0
    return running.discount.off(tier.price(sub.interval, currency) or 0)


def _cooling_down(
    session: Session, account_id: str, feature_id: str, catalog: Catalog, now: datetime
) -> bool:
    """Did the account dismiss an offer for this feature within the cooldown? (A plan the
    customer looked up on the pricing page and left is not a prompt they turned down.)"""
    return _dismissed_within_cooldown(
        session, account_id, catalog, now, Offer.feature_id == feature_id
    )


def addon_cooling_down(
    session: Session, account_id: str, addon_id: str, catalog: Catalog, now: datetime
) -> bool:
    """Did the account dismiss an offer of this add-on alone (a post-purchase cross-sell)
    within the cooldown? (An upgrade offer that also suggested it was turned down as a plan.)"""
    return _dismissed_within_cooldown(
        session, account_id, catalog, now, Offer.addon_id == addon_id, Offer.to_tier_id.is_(None)
    )


def _dismissed_within_cooldown(
    session: Session, account_id: str, catalog: Catalog, now: datetime, *offer_is: Any
) -> bool:
    """Did the account dismiss a prompted offer matching `offer_is` within the cooldown?"""
    since = now - timedelta(days=catalog.offers.dismissal_cooldown_days)
    found = session.scalar(
        select(OfferEvent.id)
        .join(Offer, Offer.id == OfferEvent.offer_id)
        .where(
            Offer.account_id == account_id,
            *offer_is,
            Offer.trigger != OfferTrigger.PRICING_PAGE,
            OfferEvent.type == OfferStatus.DISMISSED,
            OfferEvent.created_at > since,
        )
        .limit(1)
    )
    return found is not None


def _reusable(
    session: Session, fields: dict[str, Any], now: datetime, body: dict[str, Any]
) -> Offer | None:
    """An open offer quoting exactly this (expired ones are not: their amounts moved on), with
    a trial exactly when this quote has one (a first plan's trial once used is gone)."""
    trial = body.get("trial_end") is not None
    keys = ("account_id", "trigger", "feature_id", "to_tier_id", "interval", "currency")
    query = (
        select(Offer)
        .where(*(getattr(Offer, k) == fields[k] for k in keys))
        .where(Offer.catalog_version == fields["catalog_version"])
        .where(Offer.status.in_(REUSABLE))
        .order_by(Offer.created_at.desc())
        .options(lazyload(Offer.events))  # read only if the offer is used: not for a match
    )
    for offer in session.scalars(query):
        if offer.expires_at is not None and offer.expires_at <= now:
            continue
        if ((offer.details or {}).get("trial_end") is not None) != trial:
            continue
        if all(getattr(offer, k) == v for k, v in fields.items()):
            return offer
    return None


def _body(plan: policy.UpgradePlan, current: policy.Current, catalog: Catalog) -> dict[str, Any]:
    """The plan as the JSON stored in Offer.details (the full quote the customer was shown)."""
    old_recurring, old_interval, ending = 0, current.interval, 0
    if current.paid and current.interval is not None:
        old_recurring = current.tier.price(current.interval, current.currency) or 0
        ending = policy.ending_addons(current, catalog, plan.to_tier)
    yearly = plan.yearly
    return {
        "reason": plan.reason,
        "usage": {"used": plan.used, "limit": plan.from_limit, "text": plan.usage_text},
        "from": {
            "tier": None if current.no_plan else plan.from_tier.id,
            "name": plan.from_tier.name,
            "limit": plan.from_limit,
            "limit_text": plan.from_limit_text,
            "recurring_amount": old_recurring,
            "interval": old_interval,
            # what the account pays now that the move ends (the funnel's old revenue): a
            # forever promotion off the plan, the recurring add-ons the new tier ends
            "promotion_off": current.plan_off if old_recurring else 0,
            "ending_addons_amount": ending,
        },
        "to": {
            "tier": plan.to_tier.id,
            "name": plan.to_tier.name,
            "limit": plan.to_limit,
            "limit_text": plan.to_limit_text,
        },
        "next_renewal_at": _iso(plan.next_renewal_at),
        "trial_end": _iso(plan.trial_end),
        # the amount due today is prorated to the second: the quote really expires (a first
        # plan, or a change during a trial, costs the same a minute later)
        "price_moves": current.paid and current.trial_end is None,
        "note": plan.note,
        "renewal_total": plan.renewal_total,
        "credit": (plan.credit_applied or plan.credit_left or plan.owed or None)
        and {"applied": plan.credit_applied, "left": plan.credit_left, "owed": plan.owed},
        "price_jump": plan.price_jump
        and {
            "percent": plan.price_jump.percent,
            "exceeds_guard": plan.price_jump.exceeds_guard,
            "message": plan.price_jump.message,
        },
        "yearly_alternative": yearly
        and {
            "interval": "year",
            "recurring_amount": yearly.recurring_amount,
            "amount_due_today": yearly.amount_due_today,
            "next_renewal_at": _iso(yearly.next_renewal_at),
            "saving_amount": yearly.saving_amount,
            "saving_percent": yearly.saving_percent,
            "promotion": _promotion(yearly.promotion),
            "first_charge": yearly.first_charge,
            "trial_end": _iso(yearly.trial_end),
        },
        "promotion": _promotion(plan.promotion),
        "addon": plan.addon
        and {
            "id": plan.addon.id,
            "name": plan.addon.name,
            "description": plan.addon.description,
            "amount": plan.addon.amount,
            "interval": plan.addon.interval,
        },
        "contact_sales_url": plan.contact_sales_url,
    }


def _promotion(promo: policy.PromotionOffer | None) -> dict[str, Any] | None:
    if promo is None:
        return None
    return {
        "id": promo.id,
        "name": promo.name,
        "discount": promo.discount,
        "ends_at": _iso(promo.ends_at),
        "limited_time": promo.limited_time,
    }


def _display(offer: Offer, body: dict[str, Any]) -> dict[str, str]:
    """Display text for the integer amounts, formatted with babel (exactly the same amounts)."""
    currency, interval = offer.currency, offer.interval
    shown: dict[str, str] = {}

    def money(amount: Any) -> str | None:
        return format_money(amount, currency) if isinstance(amount, int) else None

    if (due := money(offer.amount_due_today)) is not None:
        shown["amount_due_today"] = due
    if (recurring := money(offer.new_recurring_amount)) is not None and interval:
        shown["new_recurring"] = f"{recurring} / {interval}"
    if (renewal := money(offer.next_renewal_amount)) is not None:
        when = _parse(body.get("next_renewal_at"))
        shown["next_renewal"] = renewal + (f" on {when:%B %-d, %Y}" if when else "")
    yearly = body.get("yearly_alternative")
    if isinstance(yearly, dict):
        shown["yearly_recurring"] = f"{money(yearly['recurring_amount'])} / year"
        shown["yearly_amount_due_today"] = str(money(yearly["amount_due_today"]))
        saving = yearly_saving(offer.new_recurring_amount or 0, yearly["recurring_amount"])
        if saving is not None and interval == "month":
            shown["yearly_saving"] = saving.text(currency)
    for key, promo in (("promotion", body.get("promotion")), ("yearly_promotion", None)):
        if key == "yearly_promotion" and isinstance(yearly, dict):
            promo = yearly.get("promotion")
        if isinstance(promo, dict) and isinstance(promo.get("discount"), int):
            shown[key] = f"{promo['name']}: -{money(promo['discount'])}"
    addon = body.get("addon")
    if isinstance(addon, dict) and (price := money(addon.get("amount"))) is not None:
        per = addon.get("interval")
        shown["addon"] = f"{price} once" if per == "once" else f"{price} / {per}"
    if offer.expires_at is not None and price_moves(offer):
        shown["expires_at"] = f"Price valid until {offer.expires_at:%H:%M} UTC"
    return shown


def price_moves(offer: Offer) -> bool:
    """Whether the quote's amounts change with time (a prorated change): only then is its
    expiry shown to the customer (UPSELL.md rule 6); it is kept either way, for the catalog."""
    return bool((offer.details or {}).get("price_moves", True))


def _tier_ref(tier_id: str | None) -> dict[str, Any] | None:
    if tier_id is None:
        return None
    return {"tier": tier_id, "name": None, "limit": None, "limit_text": None}


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
