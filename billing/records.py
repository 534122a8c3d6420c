"""Billing records: catalog terms to provider terms and back, BillingChange bookkeeping.

Turns the Subscription row (and its add-ons) into the provider's SubscriptionState, writes a
provider's Result back (Subscription, AccountAddOn, Invoice rows), and wraps every provider call
so its outcome lands on the BillingChange. Shared by the flows (billing/service.py,
billing/downgrade.py) and, later, by webhooks and reconcile.
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ParamSpec

from flask import current_app, has_app_context
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from billing import notifications
from billing.models import BillingChange, ChangeStatus, Invoice
from billing.provider import (
    BillingProvider,
    Customer,
    Discount,
    ItemKind,
    Outcome,
    PaymentDeclined,
    Price,
    QuoteMismatch,
    Result,
    RunningDiscount,
    ScheduleRequest,
    SubscriptionState,
    TrialRequest,
)
from gating.models import (
    Account,
    AccountAddOn,
    Offer,
    OfferEvent,
    OfferStatus,
    Subscription,
    SubscriptionStatus,
    UsageCounter,
)
from tiergate.clock import Clock
from tiergate.exceptions import (
    Conflict,
    InvalidRequest,
    NotFound,
    PaymentFailed,
    ProviderUnavailable,
    TiergateError,
)
from tiers import store
from tiers.model import AddOn, AddOnBilling, Catalog, FeatureKind

log = logging.getLogger(__name__)
P = ParamSpec("P")

LIVE = (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING, SubscriptionStatus.PAST_DUE)
GAUGE_PERIOD_YEAR = 1970  # gauges are stored under the fixed period start 1970-01-01


class QuoteExpired(Conflict):
    """The offer's quote expired; the caller re-quotes and shows the current price."""

    code = "quote_expired"


class FlowStatus(StrEnum):
    DONE = "done"  # applied and paid
    REDIRECT = "redirect"  # the customer finishes at redirect_url (Stripe Checkout, 3-D Secure)
    DECLINED = "declined"  # the payment failed: nothing changed
    PENDING = "pending"  # the provider could not be reached: outcome unknown, retry is safe


@dataclass(frozen=True)
class Urls:
    """Where the provider sends the customer back (Stripe Checkout / 3-D Secure)."""

    success_url: str
    cancel_url: str


@dataclass(frozen=True)
class FlowResult:
    status: FlowStatus
    change: BillingChange
    message: str
    invoice: Invoice | None = None
    redirect_url: str | None = None
    follow_up_offer_id: str | None = None  # the post-purchase cross-sell, when there is one

    @property
    def charged(self) -> int:
        """What the flow charged (0 when nothing was invoiced)."""
        return self.invoice.amount_paid if self.invoice is not None else 0


# ---- catalog terms -> provider terms --------------------------------------------------------


def tier_price(catalog: Catalog, tier_id: str, interval: str, currency: str) -> Price:
    """The Price of a tier in an interval and currency (InvalidRequest when not sold that way)."""
    tier = catalog.tier(tier_id)
    if tier is None:
        raise NotFound(f"Tier {tier_id!r} is not in the catalog.")
    amount = tier.price(interval, currency) if interval in ("month", "year") else None
    if amount is None or tier.free:
        raise InvalidRequest(f"{tier.name} is not sold per {interval} in {currency.upper()}.")
    return Price(ItemKind.TIER, tier.id, tier.name, interval, currency, amount)


def addon_price(catalog: Catalog, addon: AddOn, interval: str | None, currency: str) -> Price:
    """The Price of an add-on: per the subscription's interval, or one-time."""
    one_time = addon.billing is AddOnBilling.ONE_TIME
    amount = addon.price(None if one_time else interval, currency)
    if amount is None:
        raise InvalidRequest(
            f"{addon.name} has no {currency.upper()} price"
            + ("" if one_time else f" per {interval}")
            + "."
        )
    return Price(
        ItemKind.ADDON, addon.id, addon.name, None if one_time else interval, currency, amount
    )


def catalog_addon(catalog: Catalog, addon_id: str) -> AddOn:
    """The add-on `addon_id` (InvalidRequest when the catalog no longer has it)."""
    addon = catalog.addon(addon_id)
    if addon is None:
        raise InvalidRequest(f"Add-on {addon_id!r} is no longer in the catalog.")
    return addon


def reprice(
    catalog: Catalog, addons: tuple[Price, ...], interval: str, currency: str
) -> tuple[Price, ...]:
    """Recurring add-ons in another interval (a month -> year switch moves them along)."""
    moved = []
    for price in addons:
        if price.interval == interval:
            moved.append(price)
            continue
        new = addon_price(catalog, catalog_addon(catalog, price.item_id), interval, currency)
        moved.append(replace(new, quantity=price.quantity))
    return tuple(moved)


def kept_on(
    catalog: Catalog, state: SubscriptionState, tier_id: str | None = None
) -> tuple[Price, ...]:
    """The add-ons that stay with a change made now (to `tier_id`, when the plan moves): one
    the customer removed ends with it instead of at the period end, and so does one the new
    tier includes or cannot have (as a move down drops it), each with its unused time
    credited."""
    tier = catalog.tier(tier_id) if tier_id is not None else None
    removed = removed_addons(catalog, state)
    return tuple(
        a
        for a in state.addons
        if a.item_id not in removed
        and (
            tier is None or (spec := catalog.addon(a.item_id)) is None or spec.purchasable_by(tier)
        )
    )


def removed_addons(catalog: Catalog, state: SubscriptionState) -> set[str]:
    """The add-ons the customer removed: ending at the period end, not because of the move
    scheduled then (a move to a tier that cannot have them, which a change now replaces)."""
    if state.next_addons is None:
        return set()
    ending = {a.item_id for a in state.addons} - {a.item_id for a in state.next_addons}
    next_tier = catalog.tier(state.next_plan.item_id) if state.next_plan is not None else None
    return {
        addon_id
        for addon_id in ending
        if next_tier is None
        or (spec := catalog.addon(addon_id)) is None
        or spec.purchasable_by(next_tier)
    }


def discount_for(catalog: Catalog, promotion_id: str | None, currency: str) -> Discount | None:
    """The provider-side Discount for a catalog promotion (None when there is none)."""
    if not promotion_id:
        return None
    promo = next((p for p in catalog.promotions if p.id == promotion_id), None)
    if promo is None:
        raise InvalidRequest(f"Promotion {promotion_id!r} is not in the catalog.")
    return Discount(
        promotion_id=promo.id,
        percent_off=promo.percent_off,
        amount_off=promo.amount_off.get(currency) if promo.percent_off is None else None,
        duration=promo.duration,
        duration_in_months=promo.duration_in_months,
        code=promo.code,
        name=promo.name,
    )


def customer_of(account: Account, currency: str | None = None) -> Customer:
    """The account as the provider knows it, with its balance in `currency` (the charge's)."""
    balance = balance_in(account, currency) if currency is not None else 0
    return Customer(account.id, account.email, account.name, account.stripe_customer_id, balance)


def balance_in(account: Account, currency: str) -> int:
    """The account's invoice balance (negative: a credit) where it applies to a charge in
    `currency`: Stripe keeps one balance per customer, in the customer's currency."""
    if account.balance and account.balance_currency == currency:
        return account.balance
    return 0


def keep_balance(account: Account, balance: int | None, currency: str) -> None:
    """Record the balance a provider reported after a charge in `currency` (None: it did not
    say); a balance in another currency was not used by that charge, so it stays."""
    if account.balance and account.balance_currency not in (None, currency):
        return
    if balance is not None:
        account.balance = balance
        account.balance_currency = currency


def grace_ends_at(sub: Subscription) -> datetime:
    """When a past-due subscription stops granting its tier (TIERGATE_PAST_DUE_GRACE_DAYS after
    the failed payment), counted as the gate's entitlements count it."""
    days = int(current_app.config.get("PAST_DUE_GRACE_DAYS", 7)) if has_app_context() else 7
    return (sub.past_due_since or sub.current_period_end) + timedelta(days=days)


def live_subscription(account: Account) -> Subscription | None:
    """The account's subscription while it grants anything (active, trialing, past due)."""
    sub = account.subscription
    return sub if sub is not None and sub.status in LIVE else None


def state_of(session: Session, sub: Subscription) -> SubscriptionState:
    """The Subscription row (and its add-ons) in provider terms."""
    catalog = store.load(session, sub.catalog_version).catalog
    newest = store.load(session).catalog
    plan = _subscribed_price(catalog, newest, sub.tier_id, sub.interval, sub.currency)
    rows = active_addons(session, sub.account_id)
    addons: list[Price] = []
    kept: list[Price] = []
    for row in rows:
        own = store.load(session, row.catalog_version).catalog if row.catalog_version else catalog
        addon = own.addon(row.addon_id) or newest.addon(row.addon_id)
        if addon is None or addon.billing is AddOnBilling.ONE_TIME:
            continue
        price = addon_price(own, addon, sub.interval, sub.currency)
        price = Price(
            price.kind,
            price.item_id,
            price.name,
            price.interval,
            price.currency,
            price.unit_amount,
            row.quantity,
        )
        addons.append(price)
        if row.ended_at is None:
            kept.append(price)
    next_plan = None
    next_addons = tuple(kept) if len(kept) != len(addons) else None
    scheduled_in = newest  # the catalog it was scheduled under (the newest, when not recorded)
    if sub.scheduled_tier_id or sub.scheduled_interval:
        scheduled_in = store.load(session, sub.scheduled_catalog_version).catalog
        next_plan = tier_price(
            scheduled_in,
            sub.scheduled_tier_id or sub.tier_id,
            sub.scheduled_interval or sub.interval,
            sub.currency,
        )
    if next_plan is not None and next_plan.interval != sub.interval:
        # The add-ons that stay move to the next period's interval with the plan (as the
        # plan, at that catalog's price), even when none is removed.
        next_addons = reprice(
            scheduled_in, tuple(kept), next_plan.interval or sub.interval, sub.currency
        )
    item_ids = {r.addon_id: r.stripe_subscription_item_id for r in rows}
    return SubscriptionState(
        plan=plan,
        addons=tuple(addons),
        status=SubscriptionStatus(sub.status).value,
        period_start=sub.current_period_start,
        period_end=sub.current_period_end,
        trial_end=sub.trial_end,
        cancel_at_period_end=sub.cancel_at_period_end,
        next_plan=next_plan,
        next_addons=next_addons,
        external_id=sub.stripe_subscription_id,
        item_ids={k: v for k, v in item_ids.items() if v},
        running_discount=running_from_json(sub.running_discount),
        balance=balance_in(sub.account, sub.currency),
    )


def running_to_json(running: RunningDiscount | None) -> dict[str, Any] | None:
    """The Subscription.running_discount column value (None: no promotion running)."""
    if running is None:
        return None
    d = running.discount
    return {
        "promotion_id": d.promotion_id,
        "percent_off": d.percent_off,
        "amount_off": d.amount_off,
        "duration": d.duration,
        "duration_in_months": d.duration_in_months,
        "code": d.code,
        "name": d.name,
        "tier_id": running.tier_id,
        "charges_left": running.charges_left,
        "ends_at": running.ends_at.isoformat() if running.ends_at else None,
    }


def running_from_json(value: dict[str, Any] | None) -> RunningDiscount | None:
    """The column value back in provider terms (its promotion's terms as they were granted)."""
    if not value:
        return None
    discount = Discount(
        promotion_id=str(value["promotion_id"]),
        percent_off=value.get("percent_off"),
        amount_off=value.get("amount_off"),
        duration=str(value.get("duration") or "once"),
        duration_in_months=value.get("duration_in_months"),
        code=value.get("code"),
        name=str(value.get("name") or ""),  # renewals' invoice lines name it as the first did
    )
    left = value.get("charges_left")
    ends = value.get("ends_at")
    return RunningDiscount(
        discount,
        str(value["tier_id"]),
        int(left) if left is not None else None,  # a count: `once`, or written before ends_at
        datetime.fromisoformat(ends) if ends else None,
    )


def _subscribed_price(
    catalog: Catalog, newest: Catalog, tier_id: str, interval: str, currency: str
) -> Price:
    # A tier priced in the subscription's own catalog version keeps that (grandfathered) price.
    for source in (catalog, newest):
        tier = source.tier(tier_id)
        if tier is not None and tier.price(interval, currency) is not None and not tier.free:
            return tier_price(source, tier_id, interval, currency)
    raise InvalidRequest(f"Tier {tier_id!r} has no {interval} price in {currency.upper()}.")


def trial_available(account: Account) -> bool:
    """One trial per account: only an account that never had a subscription (not even one
    that ended) starts its first plan with the tier's free trial, however it is bought."""
    return account.subscription is None


def active_addons(session: Session, account_id: str) -> list[AccountAddOn]:
    """The account's active add-on rows (recurring and one-time), oldest first."""
    return list(
        session.scalars(
            select(AccountAddOn)
            .where(AccountAddOn.account_id == account_id, AccountAddOn.active.is_(True))
            .order_by(AccountAddOn.id)
        )
    )


def account_of(session: Session, account_id: str) -> Account:
    """The account `account_id` (NotFound when there is none)."""
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound(f"Account {account_id!r} does not exist.")
    return account


def lock_account(session: Session, account_id: str) -> Account:
    """The account row, read anew and locked until the transaction ends. Charging flows take
    it before anything is quoted: two charges at once never use the same credit, and never
    open two payment pages for a first subscription.

    PostgreSQL: FOR NO KEY UPDATE, which still lets other transactions insert rows that refer
    to the account (a webhook recording an invoice), so settling a change never deadlocks with
    it. SQLite has no row locks: a write that changes nothing takes the database's write lock."""
    if session.get_bind().dialect.name == "postgresql":
        account = session.get(
            Account, account_id, with_for_update={"key_share": True}, populate_existing=True
        )
    else:
        session.execute(
            update(Account)
            .where(Account.id == account_id)
            .values(updated_at=Account.updated_at)
            .execution_options(synchronize_session=False)
        )
        account = session.get(Account, account_id, populate_existing=True)
    if account is None:
        raise NotFound(f"Account {account_id!r} does not exist.")
    return account


# ---- changes and their results -------------------------------------------------------------


def new_change(
    session: Session,
    clock: Clock,
    account_id: str,
    kind: str,
    request: dict[str, Any],
    *,
    change_id: str | None = None,
    offer_id: str | None = None,
    amount_due: int | None = None,
    currency: str | None = None,
) -> BillingChange:
    """Write the pending BillingChange whose id is the provider call's idempotency key."""
    now = clock.now()
    change = BillingChange(
        id=change_id or "chg_" + secrets.token_hex(16),
        account_id=account_id,
        offer_id=offer_id,
        kind=kind,
        status=ChangeStatus.PENDING,
        request=request,
        result={},
        amount_due=amount_due,
        currency=currency,
        created_at=now,
        updated_at=now,
    )
    session.add(change)
    session.flush()
    return change


def fail_change(clock: Clock, change: BillingChange, message: str) -> None:
    """Mark a change failed with the reason."""
    change.status = ChangeStatus.FAILED
    change.error = message
    change.updated_at = clock.now()


def apply_result(
    session: Session,
    clock: Clock,
    provider_name: str,
    change: BillingChange,
    result: Result,
    catalog_version: int,
) -> Invoice | None:
    """Record a DONE result: the Subscription row, add-ons, the Invoice; mark the change applied.

    Also the entry point for webhooks and reconcile when a REDIRECT completes later.
    """
    now = clock.now()
    account = account_of(session, change.account_id)
    if result.customer_external_id:
        account.stripe_customer_id = result.customer_external_id
    if result.subscription is not None:
        _save_state(session, clock, account, result.subscription, catalog_version, provider_name)
    invoice = None
    if result.charge is not None:
        charge = result.charge
        if charge.external_id is not None:
            # The invoice.paid webhook may have recorded this invoice first: complete that row.
            invoice = session.scalar(
                select(Invoice).where(Invoice.external_id == charge.external_id)
            )
        if invoice is not None:
            invoice.change_id = change.id
            invoice.status = charge.status
            invoice.amount_paid = charge.amount_paid
            invoice.paid_at = invoice.paid_at or (now if charge.status == "paid" else None)
    if result.charge is not None and invoice is None:
        charge = result.charge
        invoice = Invoice(
            account_id=account.id,
            provider=provider_name,
            external_id=charge.external_id,
            change_id=change.id,
            status=charge.status,
            currency=charge.currency,
            amount_due=charge.amount_due,
            amount_paid=charge.amount_paid,
            lines=[
                {
                    "description": line.description,
                    "amount": line.amount,
                    "item_id": line.item_id,
                    "proration": line.proration,
                }
                for line in charge.lines
            ],
            created_at=now,
            paid_at=now if charge.status == "paid" else None,
        )
        session.add(invoice)
    if invoice is not None:
        # a scheduled interval switch starts the next period with a subscription of its own
        invoice_settled(session, clock, invoice, renewal=change.kind in ("renew", "switch"))
    one_time = change.request.get("addon")
    spec = store.load(session).catalog.addon(one_time) if isinstance(one_time, str) else None
    if spec is not None and spec.billing is AddOnBilling.ONE_TIME and result.charge is not None:
        # A one-time add-on (onboarding, say), bought alone or ticked with an offer, is owned
        # once paid, whoever settles the change: the purchase itself, a webhook or reconcile.
        session.add(
            AccountAddOn(
                account_id=account.id,
                addon_id=spec.id,
                quantity=1,
                active=True,
                purchased_at=now,
                catalog_version=catalog_version,
            )
        )
    balance = result.balance
    if balance is None and result.charge is not None:
        balance = result.charge.ending_balance
    if balance is not None:
        currency = (
            result.charge.currency
            if result.charge is not None
            else result.subscription.plan.currency
            if result.subscription is not None
            else None
        )
        if currency is not None:
            keep_balance(account, balance, currency)
    change.status = ChangeStatus.APPLIED
    change.error = None
    checkout = (change.result or {}).get("external_id")  # a paid page's session stays known
    change.result = {
        "outcome": result.outcome.value,
        "amount_paid": result.charge.amount_paid if result.charge else 0,
        "subscription": result.subscription.external_id if result.subscription else None,
        **({"external_id": checkout} if checkout else {}),
    }
    change.updated_at = now
    session.flush()
    return invoice


def _save_state(
    session: Session,
    clock: Clock,
    account: Account,
    state: SubscriptionState,
    catalog_version: int,
    provider_name: str,
) -> None:
    now = clock.now()
    sub = account.subscription
    before = _terms(sub)
    previous_version = sub.catalog_version if sub is not None else None
    if sub is None:
        sub = Subscription(account_id=account.id, created_at=now, provider=provider_name)
        session.add(sub)
        account.subscription = sub
    sub.tier_id = state.plan.item_id
    sub.interval = state.plan.interval or "month"
    sub.currency = state.plan.currency
    sub.status = SubscriptionStatus(state.status)
    sub.catalog_version = catalog_version
    sub.current_period_start = state.period_start
    sub.current_period_end = state.period_end
    sub.trial_end = state.trial_end
    sub.cancel_at_period_end = state.cancel_at_period_end
    if state.status == SubscriptionStatus.CANCELED.value:
        sub.canceled_at = sub.canceled_at or now
    else:
        sub.canceled_at = None
    scheduled = (sub.scheduled_tier_id, sub.scheduled_interval)
    sub.scheduled_tier_id = _scheduled(state.next_plan, state.plan, "item_id")
    sub.scheduled_interval = _scheduled(state.next_plan, state.plan, "interval")
    if sub.scheduled_tier_id is None and sub.scheduled_interval is None:
        sub.scheduled_catalog_version = None
    elif sub.scheduled_catalog_version is None or scheduled != (
        sub.scheduled_tier_id,
        sub.scheduled_interval,
    ):  # scheduled now, at the newest catalog's price (the one the customer was shown)
        sub.scheduled_catalog_version = store.load(session).version
    sub.provider = provider_name
    sub.stripe_subscription_id = state.external_id
    sub.running_discount = running_to_json(state.running_discount)
    sub.updated_at = now
    if sub.status is SubscriptionStatus.CANCELED:
        _never_converted(session, account.id)
    _sync_addons(session, clock, account.id, state, (previous_version, catalog_version))
    after = _terms(sub)
    if after is not None and after != before:
        notifications.subscription_changed(session, clock, account.id, before, after)


# An offer accepted during a trial, with nothing charged, is marked so: the funnel records it
# "paid" when the trial's first charge is paid, not when the trial starts.
AT_FIRST_CHARGE = "paid_at_first_charge"


def invoice_settled(session: Session, clock: Clock, invoice: Invoice, *, renewal: bool) -> None:
    """An invoice recorded or updated, by a flow, a renewal or a webhook: when it is paid, the
    host app is told, and a renewal that charged money converts the trial's offer (an upgrade
    or add-on bought during the trial does not)."""
    notifications.invoice_paid(session, clock, invoice)
    if not renewal or invoice.status != "paid" or invoice.amount_paid <= 0:
        return
    waiting = _awaiting_first_charge(session, invoice.account_id)
    plans = _converted_plans(
        sorted((o for o in waiting if o.to_tier_id is not None), key=_accepted_at), invoice
    )
    owned = {row.addon_id for row in active_addons(session, invoice.account_id)}
    # Every plan offer taken during the trial up to the plan it turned into is a sale (Free to
    # Starter, then Starter to Pro: each added its step of revenue); one for a plan left
    # before the first charge is not. An add-on offer converts when its add-on is still there.
    addons = [o for o in waiting if o.to_tier_id is None and o.addon_id in owned]
    for offer in waiting:
        _unmark(offer)
    paid = {offer.id: _line_total(invoice, offer.addon_id) for offer in addons}
    if plans:  # the plan the trial turned into: what the invoice took, less the add-ons' part
        paid[plans[-1].id] = max(0, invoice.amount_paid - sum(paid.values()))
    for offer in [*plans, *addons]:
        offer.events.append(
            OfferEvent(type=OfferStatus.PAID, amount=paid.get(offer.id), created_at=clock.now())
        )
        offer.status = OfferStatus.PAID
    session.flush()


def _converted_plans(plans: list[Offer], invoice: Invoice) -> list[Offer]:
    """The plan offers (in the order taken) up to the last one for the plan the invoice
    charges (none: the trial turned into a plan no offer sold); all of them when its lines
    name no items (an invoice recorded before lines did)."""
    charged = {line.get("item_id") for line in invoice.lines or []} - {None}
    if not charged:
        return plans
    last = max((i for i, o in enumerate(plans) if o.to_tier_id in charged), default=-1)
    return plans[: last + 1]


def _line_total(invoice: Invoice, item_id: str | None) -> int:
    return sum(
        int(line.get("amount") or 0)
        for line in invoice.lines or []
        if item_id is not None and line.get("item_id") == item_id
    )


def _awaiting_first_charge(session: Session, account_id: str) -> list[Offer]:
    accepted = session.scalars(
        select(Offer).where(Offer.account_id == account_id, Offer.status == OfferStatus.ACCEPTED)
    )
    return [offer for offer in accepted if (offer.details or {}).get(AT_FIRST_CHARGE)]


def _accepted_at(offer: Offer) -> datetime:
    times = [e.created_at for e in offer.events if e.type is OfferStatus.ACCEPTED]
    return max(times, default=offer.created_at)


def _never_converted(session: Session, account_id: str) -> None:
    """A subscription ended: an offer still waiting for its trial's first charge stays
    accepted, never paid (a later subscription is not its conversion)."""
    for offer in _awaiting_first_charge(session, account_id):
        _unmark(offer)


def _unmark(offer: Offer) -> None:
    offer.details = {k: v for k, v in offer.details.items() if k != AT_FIRST_CHARGE}


def _terms(sub: Subscription | None) -> dict[str, Any] | None:
    """What a host app is told about a subscription when any of it changes."""
    if sub is None:
        return None
    return {
        "tier": sub.tier_id,
        "interval": sub.interval,
        "status": SubscriptionStatus(sub.status).value,
        "cancel_at_period_end": bool(sub.cancel_at_period_end),
        "scheduled_tier": sub.scheduled_tier_id,
        "scheduled_interval": sub.scheduled_interval,
    }


def _scheduled(next_plan: Price | None, plan: Price, attr: str) -> str | None:
    if next_plan is None:
        return None
    value: str | None = getattr(next_plan, attr)
    return value if value != getattr(plan, attr) else None


def _sync_addons(
    session: Session,
    clock: Clock,
    account_id: str,
    state: SubscriptionState,
    versions: tuple[int | None, int],
) -> None:
    """Make the active recurring add-on rows match the provider's items (one-time rows stay).

    `versions`: the subscription's catalog version before and after this change. Each row
    keeps the version its price comes from: a kept add-on its own, a new one the version that
    priced it (the newest, for one bought on a plan pinned to an older version)."""
    now = clock.now()
    previous, current = versions
    wanted = {p.item_id: p for p in state.addons} if state.status != "canceled" else {}
    removing = (
        {p.item_id for p in state.addons} - {p.item_id for p in state.next_addons}
        if state.next_addons is not None
        else set()
    )
    for row in active_addons(session, account_id):
        if row.quantity and row.addon_id in wanted:
            price = wanted.pop(row.addon_id)
            row.quantity = price.quantity
            own = row.catalog_version or previous
            row.catalog_version = _priced_by(session, price, own, current)
            row.stripe_subscription_item_id = state.item_ids.get(row.addon_id)
            row.ended_at = state.period_end if row.addon_id in removing else None
        elif _recurring_row(session, row):
            row.active = False
            row.ended_at = now
    for price in wanted.values():
        session.add(
            AccountAddOn(
                account_id=account_id,
                addon_id=price.item_id,
                quantity=price.quantity,
                active=True,
                stripe_subscription_item_id=state.item_ids.get(price.item_id),
                purchased_at=now,
                ended_at=state.period_end if price.item_id in removing else None,
                catalog_version=_priced_by(session, price, current),
            )
        )


def _priced_by(session: Session, price: Price, *versions: int | None) -> int:
    """The first of `versions`, then the newest, whose catalog prices the add-on at `price`
    (the newest when none does: a price set by hand in Stripe)."""
    newest = store.load(session).version
    for version in (*versions, newest):
        if version is None:
            continue
        addon = store.load(session, version).catalog.addon(price.item_id)
        if addon is not None and addon.price(price.interval, price.currency) == price.unit_amount:
            return version
    return newest


def _recurring_row(session: Session, row: AccountAddOn) -> bool:
    addon = store.load(session).catalog.addon(row.addon_id)
    return addon is None or addon.billing is AddOnBilling.RECURRING


IN_FLIGHT = timedelta(minutes=2)  # longer than a provider call with all its retries


class ChangeSettled(Exception):  # noqa: N818 - a control-flow signal, not an error
    """While our provider call ran, a webhook or reconcile settled the change: its result."""

    def __init__(self, result: FlowResult) -> None:
        super().__init__(result.message)
        self.result = result


def in_flight(clock: Clock, change: BillingChange) -> bool:
    """A pending change whose provider call may still be running (no answer recorded yet)."""
    return (
        change.status is ChangeStatus.PENDING
        and change.error is None
        and not change.result
        and clock.now() < change.updated_at + IN_FLIGHT
    )


BUSY = (
    "Another change to this account is being confirmed with the payment processor right now: "
    "wait a moment, then reload the page to see it before changing anything else."
)


def busy_with(
    session: Session, clock: Clock, account_id: str, keep: BillingChange | None = None
) -> BillingChange | None:
    """Under the account's lock: another change of the account whose provider call may still
    be running (its intent committed, no answer yet), other than `keep`. A flow that charged or
    scheduled now would be quoted from the state before it, and undo or double it."""
    rows = session.scalars(
        select(BillingChange).where(
            BillingChange.account_id == account_id,
            BillingChange.status == ChangeStatus.PENDING,
        )
    )
    return next(
        (c for c in rows if (keep is None or c.id != keep.id) and in_flight(clock, c)), None
    )


def busy_result(change: BillingChange) -> FlowResult:
    """The answer of a flow refused because `change` is still with the processor."""
    return FlowResult(FlowStatus.PENDING, change, BUSY)


def _commit_intent(session: Session, provider: BillingProvider) -> None:
    """Make the pending change durable before a remote provider sees its idempotency key.

    A crash after the processor charged but before our commit then leaves the pending row,
    and reconcile (or the webhook naming it) settles it from the processor's own record:
    the invoice and the offer's "paid" are recovered, not only the subscription. ManualBilling
    applies everything in our own transaction, so it needs no separate intent.
    """
    if provider.remote:
        session.commit()


def lock_change(session: Session, change: BillingChange) -> None:
    """Lock the change's row until the transaction ends, and read its current state.

    PostgreSQL: SELECT ... FOR UPDATE. SQLite has no row locks: a write that changes nothing
    takes the database's write lock first (a webhook's transaction holds it from its first
    insert), so the state read next cannot be settled by anyone else before we commit."""
    if session.get_bind().dialect.name == "postgresql":
        session.refresh(change, with_for_update=True)
        return
    session.execute(
        update(BillingChange)
        .where(BillingChange.id == change.id)
        .values(updated_at=BillingChange.updated_at)
        .execution_options(synchronize_session=False)
    )
    session.refresh(change)


def _still_pending(session: Session, change: BillingChange) -> None:
    """Lock the change again after the provider call; ChangeSettled when it was settled. The
    account's lock first, as every flow and webhook takes them: account, change, then rows."""
    lock_account(session, change.account_id)
    lock_change(session, change)
    if change.status is ChangeStatus.PENDING:
        return
    if change.status is ChangeStatus.APPLIED:
        invoice = session.scalar(select(Invoice).where(Invoice.change_id == change.id))
        follow = change.result.get("follow_up_offer_id") if change.result else None
        raise ChangeSettled(
            FlowResult(FlowStatus.DONE, change, "Done.", invoice, follow_up_offer_id=follow)
        )
    raise ChangeSettled(FlowResult(FlowStatus.DECLINED, change, change.error or "Not applied."))


def settles(flow: Callable[P, FlowResult]) -> Callable[P, FlowResult]:
    """A flow that answers with the settled change's result when ChangeSettled interrupts it."""

    @functools.wraps(flow)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> FlowResult:
        try:
            return flow(*args, **kwargs)
        except ChangeSettled as exc:
            return exc.result

    return wrapper


def call_provider(
    session: Session,
    clock: Clock,
    provider: BillingProvider,
    change: BillingChange,
    call: Any,
    request: Any,
    expected: int | None,
    catalog_version: int,
) -> tuple[FlowStatus, Invoice | None, Result | None, str]:
    """Call the provider; record the outcome on the change. Raises QuoteMismatch loudly.

    With a remote provider the session is committed first (the change's intent is durable),
    and the change is locked again once the provider answered: ChangeSettled when a webhook
    or reconcile settled it meanwhile, so nothing is applied twice.
    """
    # A retry of a change whose earlier call failed (a timeout) is in flight again.
    change.error = None
    change.updated_at = clock.now()
    _commit_intent(session, provider)
    try:
        result: Result = call(request)
    except PaymentDeclined as exc:
        _still_pending(session, change)
        fail_change(clock, change, exc.message)
        return FlowStatus.DECLINED, None, None, exc.message
    except PaymentFailed as exc:
        _still_pending(session, change)
        fail_change(clock, change, exc.message)
        return FlowStatus.DECLINED, None, None, exc.message
    except ProviderUnavailable as exc:
        _still_pending(session, change)
        change.error = exc.message  # stays pending: reconcile (or a retry with this key) settles it
        change.updated_at = clock.now()
        message = (
            "We could not reach the payment processor, so we cannot confirm the payment yet. "
            "Nothing is charged twice: please try again in a minute."
        )
        return FlowStatus.PENDING, None, None, message
    except QuoteMismatch as exc:
        _still_pending(session, change)
        fail_change(clock, change, exc.message)
        log.error("billing change %s refused by the provider: %s", change.id, exc.message)
        raise
    except TiergateError as exc:  # refused (a conflict at the processor): nothing changed
        _still_pending(session, change)
        fail_change(clock, change, exc.message)
        _commit_intent(session, provider)  # so the caller's rollback leaves it ended, not running
        raise
    _still_pending(session, change)
    if result.outcome is Outcome.REDIRECT:
        change.result = {
            "outcome": "redirect",
            "redirect_url": result.redirect_url,
            "external_id": result.external_id,
        }
        change.updated_at = clock.now()
        return FlowStatus.REDIRECT, None, result, "Finish the payment on the next page."
    charged = result.charge.amount_due if result.charge is not None else 0
    if expected is not None and charged != expected:
        message = (
            f"The payment provider charged {charged} but {expected} was quoted "
            f"(minor units, change {change.id}); the change was not applied."
        )
        fail_change(clock, change, message)
        log.error(message)
        raise QuoteMismatch(message, details={"charged": charged, "quoted": expected})
    invoice = apply_result(session, clock, provider.name, change, result, catalog_version)
    return FlowStatus.DONE, invoice, result, "Done."


def result_of(session: Session, change: BillingChange, message: str) -> FlowResult:
    """The FlowResult of a change applied earlier (an idempotent replay)."""
    invoice = session.scalar(select(Invoice).where(Invoice.change_id == change.id))
    follow = change.result.get("follow_up_offer_id") if change.result else None
    return FlowResult(FlowStatus.DONE, change, message, invoice, follow_up_offer_id=follow)


def usage_of(session: Session, account_id: str, feature_id: str, kind: FeatureKind) -> int:
    """The account's usage of a metered feature: the gauge, or this period's counter."""
    query = select(UsageCounter.used).where(
        UsageCounter.account_id == account_id, UsageCounter.feature_id == feature_id
    )
    rows = session.execute(query.add_columns(UsageCounter.period_start)).all()
    if not rows:
        return 0
    if kind is FeatureKind.GAUGE:
        return sum(int(r[0]) for r in rows if r[1].year == GAUGE_PERIOD_YEAR)
    return int(max(rows, key=lambda r: r[1])[0])  # the current period's counter


# What a customer (or the host app) is told when the processor could not be reached for a
# change that charges nothing; the processor's own error text is the operator's, kept on it.
UNREACHABLE = (
    "We could not reach the payment processor to make this change. Please try again in a "
    "minute: it is made only once."
)


def schedule_change(
    session: Session,
    clock: Clock,
    provider: BillingProvider,
    account_id: str,
    kind: str,
    *,
    next_plan: Price | None,
    next_addons: tuple[Price, ...] | None,
    cancel: bool,
) -> FlowResult:
    """Schedule (or clear) a change at the period end through the provider."""
    lock_account(session, account_id)  # (taken already by the flows that read state first)
    busy = busy_with(session, clock, account_id)
    if busy is not None:
        return busy_result(busy)
    account, sub = live_or_conflict(session, account_id)
    state = state_of(session, sub)
    change = new_change(
        session,
        clock,
        account_id,
        kind,
        {
            "tier": next_plan.item_id if next_plan else None,
            "interval": next_plan.interval if next_plan else None,
            "cancel": cancel,
        },
    )
    request = ScheduleRequest(
        change.id, customer_of(account, state.plan.currency), state, next_plan, next_addons, cancel
    )
    try:
        new_state = provider.schedule(request)
    except ProviderUnavailable as exc:
        change.error = exc.message  # the operator's diagnostics stay with the change
        return FlowResult(FlowStatus.PENDING, change, UNREACHABLE)
    result = Result(Outcome.DONE, subscription=new_state)
    apply_result(session, clock, provider.name, change, result, sub.catalog_version)
    return FlowResult(FlowStatus.DONE, change, "Scheduled.")


MAX_TRIAL = timedelta(days=730)  # Stripe refuses a trial_end further away


def extend_trial(
    session: Session, clock: Clock, provider: BillingProvider, account_id: str, days: int
) -> FlowResult:
    """Add `days` to the account's running trial, through the provider: the first charge
    moves with its end (a trial extension the product team grants)."""
    lock_account(session, account_id)
    busy = busy_with(session, clock, account_id)
    if busy is not None:
        return busy_result(busy)
    account, sub = live_or_conflict(session, account_id)
    if sub.status is not SubscriptionStatus.TRIALING or sub.trial_end is None:
        raise Conflict(
            f"Account {account_id!r} is not in a trial (its subscription is {sub.status.value}): "
            "a trial extension adds days to a running trial."
        )
    if sub.cancel_at_period_end or sub.scheduled_tier_id or sub.scheduled_interval:
        raise Conflict(
            f"Account {account_id!r} has a change scheduled for its trial's end: resume the "
            "subscription first, then extend the trial."
        )
    until = sub.trial_end + timedelta(days=days)
    if until > clock.now() + MAX_TRIAL:
        raise InvalidRequest(
            f"A trial can end at most {MAX_TRIAL.days} days from now (the payment processor's "
            f"limit): {days} more days would end it on {until:%B %-d, %Y}."
        )
    if until <= clock.now():
        raise Conflict(
            f"The trial ended on {sub.trial_end:%B %-d, %Y %H:%M} UTC: {days} more days from "
            "then is already past. Nothing was changed."
        )
    state = state_of(session, sub)
    change = new_change(
        session, clock, account_id, "trial", {"days": days, "until": until.isoformat()}
    )
    request = TrialRequest(change.id, customer_of(account, state.plan.currency), state, until)
    try:
        new_state = provider.extend_trial(request)
    except ProviderUnavailable as exc:
        change.error = exc.message
        found = _made_after_all(provider, change.id)  # the answer lost, the change made?
        if found is None:
            return FlowResult(
                FlowStatus.PENDING,
                change,
                "The payment processor could not be reached to extend the trial, and may have "
                "extended it: check the account's trial end (GET /v1/accounts/{id}) before "
                "trying again.",
            )
        new_state = found
    result = Result(Outcome.DONE, subscription=new_state)
    apply_result(session, clock, provider.name, change, result, sub.catalog_version)
    return FlowResult(FlowStatus.DONE, change, f"The trial now ends on {until:%B %-d, %Y}.")


def _made_after_all(provider: BillingProvider, change_id: str) -> SubscriptionState | None:
    """The state a change left when the provider made it though its answer was lost."""
    try:
        found = provider.find_change(change_id)
    except ProviderUnavailable:
        return None
    if found is None or found.outcome is not Outcome.DONE:
        return None
    return found.subscription


def live_or_conflict(session: Session, account_id: str) -> tuple[Account, Subscription]:
    """The account and its live subscription (Conflict when it has none)."""
    account = account_of(session, account_id)
    sub = live_subscription(account)
    if sub is None:
        raise Conflict("This account has no paid subscription.")
    return account, sub


def within_period(state: SubscriptionState, at: datetime) -> None:
    """Conflict when `at` lies past the recorded period: its renewal is not recorded yet."""
    if at > state.period_end:
        raise Conflict(
            f"The billing period ended on {state.period_end:%B %-d, %Y} and its renewal is not "
            "recorded yet (manual billing: run `tiergate billing renew`). Try again afterwards."
        )
