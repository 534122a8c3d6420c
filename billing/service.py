"""Billing flows: accept an offer, checkout, interval switch, downgrade, cancel, resume, add-ons,
and the period end. Every flow writes a pending BillingChange (its id is the provider's
idempotency key) before calling the provider, then marks it applied or failed; entitlements
(the Subscription row) change only once the provider reports the payment succeeded.

Functions take (session, clock, provider, ...) and raise tiergate.exceptions errors. They do
not commit their outcome, with one exception: before a remote provider (Stripe) is called, the
session is committed so that the pending change survives a crash (records.call_provider). A
declined card or an unreachable provider is an answer, not an exception: the flow returns it so
the caller commits the failed (or still pending) change and shows the message.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from billing.manual import running
from billing.models import BillingChange, ChangeStatus, CodeAttempt, Invoice
from billing.provider import (
    BillingProvider,
    ChangeRequest,
    Discount,
    OneTimeRequest,
    Outcome,
    Price,
    RenewRequest,
    StartRequest,
    SubscriptionState,
)
from billing.quotes import Quote, change_quote, one_time_quote, start_quote
from billing.records import (
    AT_FIRST_CHARGE,
    LIVE,
    FlowResult,
    FlowStatus,
    QuoteExpired,
    Urls,
    account_of,
    active_addons,
    addon_price,
    balance_in,
    busy_result,
    busy_with,
    call_provider,
    customer_of,
    discount_for,
    fail_change,
    grace_ends_at,
    in_flight,
    kept_on,
    live_or_conflict,
    live_subscription,
    lock_account,
    lock_change,
    new_change,
    removed_addons,
    reprice,
    result_of,
    schedule_change,
    settles,
    state_of,
    tier_price,
    trial_available,
    within_period,
)
from billing.sync_state import pending_changes, settle_change
from gating import offers
from gating.models import (
    Account,
    AccountAddOn,
    Offer,
    OfferStatus,
    OfferTrigger,
    Subscription,
    SubscriptionStatus,
)
from gating.policy import choose_post_purchase_addon
from tiergate.clock import Clock
from tiergate.exceptions import (
    Conflict,
    InvalidRequest,
    NotFound,
    ProviderUnavailable,
    TiergateError,
)
from tiers import store
from tiers.model import AddOnBilling, Catalog, Promotion

# Re-exported: the flows' result types, for callers that only import this module.
__all__ = ["FlowResult", "FlowStatus", "QuoteExpired", "Urls"]

log = logging.getLogger(__name__)


# ---- accept an offer ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Terms:
    """An offer in provider terms: the plan, the optional add-on, the current subscription."""

    catalog: Catalog
    plan: Price
    addon: Price | None
    current: SubscriptionState | None
    kept: tuple[Price, ...]  # the current recurring add-ons, in the plan's interval
    trial_days: int = 0  # a first plan's free trial, as the offer quoted it


def offer_addon_due_today(session: Session, clock: Clock, offer: Offer) -> int | None:
    """What the offer's optional add-on adds to today's charge (None: no add-on to offer):
    the charge with it less the charge without, both with the offer's promotion and the
    account's balance, as the provider will charge them."""
    terms = offer_addon_terms(session, clock, offer)
    return terms[0] if terms is not None else None


def offer_addon_terms(
    session: Session, clock: Clock, offer: Offer
) -> tuple[int, int | None] | None:
    """The add-on's terms on the offer page: what it adds today, and the next renewal with it
    (None when the offer does not say its renewal before the balance). With a credit, the
    add-on uses it first, so less of it is left for the renewal. None: no add-on to offer."""
    terms = _offer_terms(session, offer, clock.now(), with_addon=True)
    addon, current = terms.addon, terms.current
    if addon is None:
        return None
    discount = discount_for(terms.catalog, offer.promotion_id, offer.currency)
    at = offer.proration_date or clock.now()
    recurring, one_time = ((addon,), ()) if addon.interval else ((), (addon,))
    if current is None:
        balance = balance_in(account_of(session, offer.account_id), offer.currency)
        days = terms.trial_days
        with_it = start_quote(terms.plan, recurring, one_time, at, days, discount, balance)
        without = start_quote(terms.plan, (), (), at, days, discount, balance)
    else:
        plan, kept = terms.plan, terms.kept
        with_it = change_quote(current, plan, (*kept, *recurring), one_time, at, discount)
        without = change_quote(current, plan, kept, (), at, discount)
    total = (offer.details or {}).get("renewal_total")
    renewal = None
    if isinstance(total, int):  # (with a trial: its first charge, with the add-on)
        more = addon.amount if addon.interval else 0
        renewal = max(0, total + more + with_it.ending_balance)
    return with_it.amount_due - without.amount_due, renewal


def past_due_block(session: Session, sub: Subscription | None, now: datetime) -> str | None:
    """Why no offer can be bought now: the subscription's last payment failed and its grace
    period is over, so the gate treats the account as free; paying the open invoice is what
    brings the plan back, and a plan change would be priced from neither. None: nothing stands
    in the way (within the grace period the plan can still change)."""
    if sub is None or sub.status is not SubscriptionStatus.PAST_DUE or now < grace_ends_at(sub):
        return None
    catalog = store.load(session, sub.catalog_version).catalog
    tier = catalog.tier(sub.tier_id)
    name = tier.name if tier is not None else sub.tier_id
    free = store.load(session).catalog.free_tier
    now_on = "is on the free plan" if free is not None else "has no plan"
    return (
        f"The last payment for your {name} plan failed, so your account {now_on} for now. "
        f"Pay the open invoice from the billing page to get {name} back before changing "
        "plans. Nothing was charged."
    )


def stale_offer(session: Session, offer: Offer, sub: Subscription | None) -> str | None:
    """Why an offer no longer fits the account: it was quoted from a plan (or billing
    interval) the account has left since, say in another tab where a bigger upgrade was
    bought. Accepting it would move the account sideways or down at a price computed for
    another plan. None: the account is still where the offer was made."""
    if offer.contact_sales or not offer.to_tier_id:
        return None
    if (
        sub is None
        and (offer.details or {}).get("trial_end")
        and not trial_available(account_of(session, offer.account_id))
    ):  # a plan held since the quote (even one ended) used the account's trial
        return (
            "This offer included a free trial for a first plan, but this account has had a "
            "plan since: it no longer applies and nothing was charged. Open the upgrade again "
            "from the app for the current price."
        )
    catalog = store.load(session, offer.catalog_version).catalog
    held = catalog.tier(offer.from_tier_id) if offer.from_tier_id else None
    if sub is None:
        moved = held is not None and not held.free
    else:
        moved = sub.tier_id != offer.from_tier_id or (
            offer.from_interval is not None and sub.interval != offer.from_interval
        )
    if not moved:
        return None
    now_on = store.load(session, sub.catalog_version).catalog.tier(sub.tier_id) if sub else None
    target = catalog.tier(offer.to_tier_id)
    target_name = target.name if target is not None else offer.to_tier_id
    if sub is not None and sub.tier_id == offer.to_tier_id:
        where = f"You are already on {target_name}"
    else:
        plan = now_on.name if now_on is not None else (sub.tier_id if sub else "the free plan")
        billed = f", billed {sub.interval}ly" if sub is not None else ""
        where = f"Your account is now on {plan}{billed}"
        if sub is None and store.load(session).catalog.free_tier is None:
            where = "Your account has no plan now"
    return (
        f"{where}: this offer was made for your earlier plan, so it no longer applies and "
        "nothing was charged. Open the upgrade again from the app for a current offer."
    )


def _offer_terms(
    session: Session,
    offer: Offer,
    now: datetime,
    *,
    with_addon: bool,
    interval: str | None = None,
) -> _Terms:
    catalog = store.load(session, offer.catalog_version).catalog
    if offer.contact_sales or not offer.to_tier_id or not offer.interval:
        contact = catalog.offers.contact_sales_url
        raise Conflict(
            "This plan is sold through our sales team"
            + (f": contact them at {contact}" if contact else "")
            + ". It cannot be bought online."
        )
    interval = interval or offer.interval
    plan = tier_price(catalog, offer.to_tier_id, interval, offer.currency)
    sub = live_subscription(account_of(session, offer.account_id))
    blocked = past_due_block(session, sub, now) or stale_offer(session, offer, sub)
    if blocked is not None:
        raise Conflict(blocked)
    current = state_of(session, sub) if sub is not None else None
    if current is not None and current.plan.currency != offer.currency:
        raise InvalidRequest(
            f"This offer is in {offer.currency.upper()} but the subscription is billed in "
            f"{current.plan.currency.upper()}."
        )
    if current is not None:
        within_period(current, offer.proration_date or offer.created_at)
    kept = (
        reprice(catalog, kept_on(catalog, current, plan.item_id), interval, offer.currency)
        if current
        else ()
    )
    addon = None
    if with_addon and offer.addon_id and interval == offer.interval:
        spec = catalog.addon(offer.addon_id)
        tier = catalog.tier(offer.to_tier_id)
        owned = any(a.item_id == offer.addon_id for a in kept)
        if spec is not None and tier is not None and spec.purchasable_by(tier) and not owned:
            addon = addon_price(catalog, spec, offer.interval, offer.currency)
    # A first plan from an offer quoted with its trial starts with it (as checkout does); a
    # quote made before the account's trial was used is stale (stale_offer refuses it).
    trial_days = 0
    if current is None and (offer.details or {}).get("trial_end"):  # stale_offer: still due
        tier = catalog.tier(offer.to_tier_id)
        trial_days = tier.trial_days if tier is not None else 0
    return _Terms(catalog, plan, addon, current, kept, trial_days)


def _offer_change_id(session: Session, offer_id: str, yearly: bool = False) -> str:
    """Deterministic per attempt: a retry after a crash reuses the idempotency key (the yearly
    alternative is another request, so another key)."""
    failed = len(
        session.scalars(
            select(BillingChange.id).where(
                BillingChange.offer_id == offer_id, BillingChange.status == ChangeStatus.FAILED
            )
        ).all()
    )
    attempt = f"{offer_id}:{failed + 1}" + (":year" if yearly else "")
    digest = hashlib.sha256(attempt.encode()).hexdigest()[:32]
    return "chg_" + digest


def _yearly_alternative(offer: Offer) -> dict[str, Any]:
    """The yearly alternative quoted with the offer (UPSELL 7), or InvalidRequest."""
    stored = (offer.details or {}).get("yearly_alternative")
    if offer.interval == "year" or not isinstance(stored, dict):
        raise InvalidRequest(f"Offer {offer.id} has no yearly alternative to accept.")
    if not isinstance(stored.get("amount_due_today"), int):
        raise InvalidRequest(f"Offer {offer.id}'s yearly alternative has no quoted amount.")
    return stored


@settles
def accept_offer(
    session: Session,
    clock: Clock,
    provider: BillingProvider,
    offer_id: str,
    account_id: str,
    *,
    with_addon: bool = False,
    interval: str | None = None,
    urls: Urls,
) -> FlowResult:
    """Upgrade as quoted: charge exactly the offer's amount due today, then grant the tier.

    `interval="year"` accepts the offer's yearly alternative instead (its own quoted amount
    and promotion; the add-on is offered with the primary interval only)."""
    offer = offers.get_offer(session, offer_id, account_id=account_id)
    if offer.account_id != account_id:
        raise NotFound(f"Offer {offer_id!r} does not exist for this account.")
    # First the account's lock: a second click waits for the first and then finds its change;
    # nothing is quoted from the balance before it.
    lock_account(session, account_id)
    previous = session.scalars(
        select(BillingChange)
        .where(BillingChange.offer_id == offer.id)
        .order_by(BillingChange.created_at, BillingChange.id)
    ).all()
    applied = next((c for c in previous if c.status is ChangeStatus.APPLIED), None)
    if applied is not None:
        return result_of(session, applied, "This offer was already accepted.")
    now = clock.now()
    if offer.expires_at is not None and now >= offer.expires_at:
        quoted = offer.created_at.strftime("%H:%M")
        raise QuoteExpired(
            f"This price was quoted at {quoted} UTC and has expired: here is the current price.",
            details={"offer_id": offer.id},
        )
    if offer.amount_due_today is None:
        raise InvalidRequest(f"Offer {offer.id} has no quoted amount and cannot be accepted.")
    if interval not in (None, offer.interval, "year"):
        raise InvalidRequest(f"interval must be 'month' or 'year', not {interval!r}")
    yearly = interval == "year" and offer.interval != "year"
    alternative = _yearly_alternative(offer) if yearly else None
    terms = _offer_terms(session, offer, now, with_addon=with_addon, interval=interval)
    plan, addon, current = terms.plan, terms.addon, terms.current
    if alternative is not None:
        promo = alternative.get("promotion")
        promo_id = promo.get("id") if isinstance(promo, dict) else None
        discount = discount_for(terms.catalog, promo_id, offer.currency)
        expected = int(alternative["amount_due_today"])
    else:
        discount = discount_for(terms.catalog, offer.promotion_id, offer.currency)
        addon_today = offer_addon_due_today(session, clock, offer) if addon is not None else 0
        expected = offer.amount_due_today + (addon_today or 0)
    recurring = (addon,) if addon is not None and addon.interval else ()
    one_time = (addon,) if addon is not None and addon.interval is None else ()
    pending = next((c for c in previous if c.status is ChangeStatus.PENDING), None)
    if pending is not None and pending.request.get("interval") != plan.interval:
        raise Conflict(
            "A payment for this offer at the other interval is still being confirmed: "
            "wait a minute before choosing again."
        )
    if pending is not None and in_flight(clock, pending):
        # Another request (a double click, a second tab) is paying this offer right now.
        return FlowResult(
            FlowStatus.PENDING,
            pending,
            "This payment is already being confirmed: wait a moment and reload the page.",
        )
    busy = busy_with(session, clock, account_id, keep=pending)
    if busy is not None:  # another change of the account is with the processor right now
        return busy_result(busy)
    if current is None:  # a first subscription: no other payment page may stay open
        paid = close_open_checkouts(session, clock, provider, account_id, keep=pending)
        if paid is not None:
            return paid
    change = pending or new_change(
        session,
        clock,
        account_id,
        "upgrade" if current is not None else "subscribe",
        {
            "offer_id": offer.id,
            "tier": plan.item_id,
            "interval": plan.interval,
            "addon": addon.item_id if addon else None,
        },
        change_id=_offer_change_id(session, offer.id, yearly),
        offer_id=offer.id,
        amount_due=expected,
        currency=offer.currency,
    )
    customer = customer_of(account_of(session, account_id), offer.currency)
    request: StartRequest | ChangeRequest
    if current is None:
        request = StartRequest(
            change.id,
            customer,
            plan,
            recurring,
            one_time,
            now,
            terms.trial_days,
            discount,
            expected,
            urls.success_url,
            urls.cancel_url,
        )
        call: Any = provider.start_subscription
    else:
        request = ChangeRequest(
            change.id,
            customer,
            current,
            plan,
            (*terms.kept, *recurring),
            one_time,
            offer.proration_date or now,
            discount,
            expected,
            urls.success_url,
        )
        call = provider.change_subscription
    newest = store.load(session).version
    status, invoice, _, message = call_provider(
        session, clock, provider, change, call, request, expected, newest
    )
    if status is FlowStatus.DECLINED:
        offers.record_event(session, clock, offer.id, "failed", account_id=account_id)
        tier_name = current.plan.name if current else "your current plan"
        said = "your plan is unchanged."  # (a processor's decline says it in general terms)
        message = message.strip().removesuffix(f"Nothing was charged and {said}").strip()
        message = f"{message} Nothing was charged or changed: you are still on {tier_name}."
        return FlowResult(status, change, message)
    if status is not FlowStatus.DONE:
        return FlowResult(status, change, message, redirect_url=change.result.get("redirect_url"))
    follow = complete_offer(
        session,
        clock,
        offer,
        invoice,
        interval=plan.interval,
        addon_id=addon.item_id if addon is not None else None,
    )
    change.result = {**change.result, "follow_up_offer_id": follow}
    return FlowResult(
        FlowStatus.DONE, change, f"You are now on {plan.name}.", invoice, follow_up_offer_id=follow
    )


def complete_offer(
    session: Session,
    clock: Clock,
    offer: Offer,
    invoice: Invoice | None,
    *,
    interval: str | None = None,
    addon_id: str | None = None,
) -> str | None:
    """After payment: record accepted + paid (and the interval, when the customer took the
    yearly alternative, and the recurring add-on taken with it: the funnel counts their
    revenue), and create the post-purchase offer."""
    if interval is not None and interval != offer.interval:
        offer.details = {**(offer.details or {}), "accepted_interval": interval}
    catalog = store.load(session, offer.catalog_version).catalog
    # an add-on offer's own add-on is its new_recurring_amount already
    spec = catalog.addon(addon_id) if addon_id and offer.to_tier_id is not None else None
    if spec is not None and spec.billing is not AddOnBilling.ONE_TIME:
        price = addon_price(catalog, spec, interval or offer.interval, offer.currency)
        taken = {"id": spec.id, "recurring_amount": price.amount, "interval": price.interval}
        offer.details = {**(offer.details or {}), "accepted_addon": taken}
    _accepted_and_paid(session, clock, offer, invoice)
    return _post_purchase_offer(session, clock, offer)


def _accepted_and_paid(
    session: Session, clock: Clock, offer: Offer, invoice: Invoice | None
) -> None:
    """Record an offer accepted and paid with the amount charged. A plan taken into a trial
    (even with a one-time add-on charged today), or a recurring add-on added during one, is
    paid when the trial's first charge is (records.invoice_settled): a trial that is canceled
    never counts as a sale."""
    offers.record_event(session, clock, offer.id, "accepted", account_id=offer.account_id)
    charged = invoice.amount_paid if invoice is not None else 0
    sub = live_subscription(account_of(session, offer.account_id))
    in_trial = sub is not None and sub.status is SubscriptionStatus.TRIALING
    if in_trial and (offer.to_tier_id is not None or charged == 0):
        offer.details = {**(offer.details or {}), AT_FIRST_CHARGE: True}
        return
    paid = offers.record_event(session, clock, offer.id, "paid", account_id=offer.account_id)
    paid.events[-1].amount = charged


def _post_purchase_offer(session: Session, clock: Clock, offer: Offer) -> str | None:
    """The post-purchase cross-sell (UPSELL rule 2): one support add-on, exactly quoted; none
    while the customer's "Not now" to that add-on is cooling down (rule 7)."""
    sub = live_subscription(account_of(session, offer.account_id))
    published = store.load(session)
    tier = published.catalog.tier(sub.tier_id) if sub is not None else None
    if sub is None or tier is None:
        return None
    owned = {row.addon_id for row in active_addons(session, sub.account_id)}
    addon = choose_post_purchase_addon(published.catalog, tier, owned, sub.interval, sub.currency)
    if addon is None:
        return None
    now = clock.now()
    if offers.addon_cooling_down(session, sub.account_id, addon.id, published.catalog, now):
        return None  # the customer said "Not now" to it lately (UPSELL 7): not pushed again
    try:
        price, due = addon_quote(session, clock, sub.account_id, addon.id, now)
    except TiergateError:
        return None  # not sellable to this account after all: no cross-sell
    follow = Offer(
        id="off_" + secrets.token_hex(12),
        account_id=sub.account_id,
        trigger=OfferTrigger.POST_PURCHASE,
        catalog_version=published.version,
        from_tier_id=sub.tier_id,
        to_tier_id=None,
        from_interval=sub.interval,
        interval=sub.interval,
        currency=sub.currency,
        addon_id=addon.id,
        new_recurring_amount=price.amount if price.interval else None,
        amount_due_today=due,
        next_renewal_amount=None,
        proration_date=now,
        prompt=True,
        details={"addon": addon.id, "name": addon.name, "after_offer": offer.id},
        expires_at=now + timedelta(minutes=published.catalog.offers.quote_valid_minutes),
        created_at=now,
    )
    session.add(follow)
    session.flush()
    return follow.id


# ---- checkout (first paid subscription) -------------------------------------------------------


def checkout_quote(
    session: Session,
    clock: Clock,
    account_id: str,
    tier_id: str,
    interval: str,
    currency: str,
    code: str | None = None,
) -> tuple[Price, Quote, int]:
    """The first subscription's price, charge today and trial days (Conflict when subscribed).

    `code`: a promotion code the customer typed (InvalidRequest, saying why, when it does not
    apply); without one, the catalog's automatic promotion for the plan, if any."""
    account = account_of(session, account_id)
    if live_subscription(account) is not None:
        raise Conflict(
            "This account already has a subscription: change plans from the billing page."
        )
    published = store.load(session)
    catalog = published.catalog
    tier = catalog.tier(tier_id)
    if tier is None or not tier.self_serve:
        raise NotFound(f"Tier {tier_id!r} cannot be bought online.")
    if currency not in catalog.currencies:
        raise InvalidRequest(
            f"Currency {currency!r} is not offered: use one of {catalog.currencies}."
        )
    plan = tier_price(catalog, tier_id, interval, currency)
    trial_days = tier.trial_days if trial_available(account) else 0
    discount = checkout_discount(catalog, tier_id, interval, currency, clock.now(), code)
    balance = balance_in(account, currency)
    quote = start_quote(plan, (), (), clock.now(), trial_days, discount, balance)
    return plan, quote, trial_days


def promotion_with_code(catalog: Catalog, code: str) -> Promotion | None:
    """The catalog promotion a customer's typed code names (codes ignore letter case)."""
    return next(
        (p for p in catalog.promotions if p.code and p.code.casefold() == code.casefold()), None
    )


def checkout_discount(
    catalog: Catalog, tier_id: str, interval: str, currency: str, now: datetime, code: str | None
) -> Discount | None:
    """The promotion a first plan's checkout gives: the typed code's (InvalidRequest when it
    does not apply), else the catalog's automatic one for the plan."""
    if not code:
        return _auto_discount(catalog, tier_id, interval, currency, now)
    promo = code_promotion(catalog, code, tier_id, (interval,), currency, now)
    return discount_for(catalog, promo.id, currency)


def first_charge_after_trial(
    session: Session,
    clock: Clock,
    plan: Price,
    quote: Quote,
    code: str | None,
) -> tuple[int, str | None] | None:
    """A first plan's checkout with a trial: what its end charges (the promotion as it still
    runs then, the balance left) and the promotion's name; None without a trial."""
    if quote.trial_end is None:
        return None
    catalog = store.load(session).catalog
    now = clock.now()
    discount = checkout_discount(
        catalog, plan.item_id, plan.interval or "", plan.currency, now, code
    )
    kept = running(discount, plan, now, charged=False)  # as the promotion runs from today
    if kept is None or (kept.ends_at is not None and quote.trial_end >= kept.ends_at):
        discount = None  # (a repeating one run out by the trial's end)
    first = start_quote(plan, (), (), quote.trial_end, 0, discount, quote.ending_balance)
    return first.amount_due, discount.name if discount is not None else None


# Stripe expires an unpaid Checkout Session 24 hours after it was made; a page older than this
# is not offered again (it is closed and a new one made): an hour's margin, so that a page
# handed out does not expire while the customer is paying on it.
CHECKOUT_PAGE_LIFETIME = timedelta(hours=23)

CODE_TRIES = 10  # refused promotion codes an account may type per CODE_WINDOW
CODE_WINDOW = timedelta(hours=1)


class TooManyCodes(InvalidRequest):
    """The account typed too many codes that were refused: codes cannot be guessed."""

    code = "too_many_codes"


def guard_code_tries(session: Session, clock: Clock, account_id: str) -> None:
    """TooManyCodes once the account had CODE_TRIES codes refused within CODE_WINDOW."""
    since = clock.now() - CODE_WINDOW
    refused = session.scalars(
        select(CodeAttempt.at)
        .where(CodeAttempt.account_id == account_id, CodeAttempt.at > since)
        .order_by(CodeAttempt.at)
        .limit(CODE_TRIES)
    ).all()
    if len(refused) >= CODE_TRIES:
        again = refused[0] + CODE_WINDOW
        raise TooManyCodes(
            f"Too many promotion codes were tried for this account. Try again after "
            f"{again:%H:%M} UTC.",
            details={"retry_after": again.isoformat()},
        )


def claim_code_try(session: Session, clock: Clock, account_id: str, typed: str) -> int:
    """Count a typed code against the account's tries before it is looked at (the caller
    commits it at once): under the account's lock, so tries sent at the same moment are
    counted one after the other and no more than CODE_TRIES are looked at. TooManyCodes when
    none is left. The id of the try: `code_accepted` takes back one that was accepted."""
    lock_account(session, account_id)
    guard_code_tries(session, clock, account_id)
    attempt = CodeAttempt(account_id=account_id, typed=typed[:64], at=clock.now())
    session.add(attempt)
    session.flush()
    return attempt.id


def code_accepted(session: Session, attempt_id: int) -> None:
    """A code that applied is not a refused try."""
    session.execute(delete(CodeAttempt).where(CodeAttempt.id == attempt_id))


def code_promotion(
    catalog: Catalog,
    code: str,
    tier_id: str,
    intervals: tuple[str, ...],
    currency: str,
    now: datetime,
) -> Promotion:
    """The running promotion a typed code names, for this tier in one of these intervals and
    this currency; InvalidRequest saying why not (unknown, not started, expired, another plan
    or currency)."""
    typed = code.strip()
    promo = promotion_with_code(catalog, typed)
    tier = catalog.tier(tier_id)
    billed = " or ".join(f"{interval}ly" for interval in intervals)
    plan_name = f"{tier.name if tier else tier_id}, billed {billed}"
    if promo is None:
        raise InvalidRequest(
            f"The promotion code {typed!r} does not exist.", details={"code": typed}
        )
    if promo.starts_at is not None and now < promo.starts_at:
        raise InvalidRequest(
            f"The promotion code {promo.code!r} is valid from {promo.starts_at:%B %-d, %Y}.",
            details={"code": typed},
        )
    if not promo.active(now):
        raise InvalidRequest(
            f"The promotion code {promo.code!r} has expired.", details={"code": typed}
        )
    if not any(promo.applies_to(tier_id, interval) for interval in intervals):
        raise InvalidRequest(
            f"The promotion code {promo.code!r} does not apply to {plan_name}.",
            details={"code": typed},
        )
    if promo.percent_off is None and currency not in promo.amount_off:
        raise InvalidRequest(
            f"The promotion code {promo.code!r} does not apply to prices in {currency.upper()}.",
            details={"code": typed},
        )
    return promo


def offer_with_code(session: Session, clock: Clock, offer: Offer, code: str) -> Offer:
    """The offer quoted again with the promotion of a code the customer typed on the offer
    page, wherever the code applies (the offer's interval, its yearly alternative); the
    code replaces the catalog's automatic promotion there. InvalidRequest saying why a code
    does not apply; Conflict for an offer that cannot be re-quoted."""
    if offer.status in (OfferStatus.ACCEPTED, OfferStatus.PAID):
        raise Conflict("This offer was already accepted.")
    if offer.contact_sales or not offer.to_tier_id or not offer.interval:
        raise Conflict("This plan is sold through our sales team: codes do not apply to it.")
    carried = (offer.details or {}).get("code")
    if isinstance(carried, str) and carried.casefold() == code.strip().casefold():
        return offer  # this offer already carries the code (Apply pressed again on its page)
    catalog = store.load(session).catalog
    intervals: tuple[str, ...] = (offer.interval,)
    if offer.interval == "month" and (offer.details or {}).get("yearly_alternative"):
        intervals = ("month", "year")
    promo = code_promotion(catalog, code, offer.to_tier_id, intervals, offer.currency, clock.now())
    return offers.requote(session, clock, offer, code=promo)


def _auto_discount(
    catalog: Catalog, tier_id: str, interval: str, currency: str, now: datetime
) -> Discount | None:
    tier = catalog.tier(tier_id)
    promo = catalog.automatic_promotion(tier, interval, currency, now) if tier else None
    return discount_for(catalog, promo.id, currency) if promo else None


@settles
def checkout(
    session: Session,
    clock: Clock,
    provider: BillingProvider,
    account_id: str,
    tier_id: str,
    interval: str,
    currency: str,
    *,
    expected_amount_due: int,
    urls: Urls,
    code: str | None = None,
) -> FlowResult:
    """Start a first paid subscription (manual: at once; Stripe: a Checkout redirect)."""
    account = lock_account(session, account_id)  # one checkout at a time; balance read once
    busy = busy_with(session, clock, account_id)
    if busy is not None and busy.kind != "checkout":  # (a checkout being opened: see below)
        return busy_result(busy)
    plan, quote, trial_days = checkout_quote(
        session, clock, account_id, tier_id, interval, currency, code
    )
    published = store.load(session)
    discount = checkout_discount(published.catalog, tier_id, interval, currency, clock.now(), code)
    if quote.amount_due != expected_amount_due:
        raise QuoteExpired(
            "The price changed since the page was shown: here is the current price.",
            details={"amount_due": quote.amount_due, "quoted": expected_amount_due},
        )
    terms = {"tier": tier_id, "interval": interval, "trial_days": trial_days, "code": code or None}
    reopened = close_open_checkouts(session, clock, provider, account_id, same_as=terms)
    if reopened is not None:
        return reopened
    change = new_change(
        session,
        clock,
        account_id,
        "checkout",
        terms,
        amount_due=quote.amount_due,
        currency=currency,
    )
    request = StartRequest(
        change.id,
        customer_of(account, currency),
        plan,
        (),
        (),
        clock.now(),
        trial_days,
        discount,
        quote.amount_due,
        urls.success_url,
        urls.cancel_url,
    )
    status, invoice, _, message = call_provider(
        session,
        clock,
        provider,
        change,
        provider.start_subscription,
        request,
        quote.amount_due,
        published.version,
    )
    if status is FlowStatus.DONE:
        message = f"You are now on {plan.name}." + (
            f" Your {trial_days}-day trial has started." if trial_days else ""
        )
    return FlowResult(
        status, change, message, invoice, redirect_url=change.result.get("redirect_url")
    )


# ---- interval switch ------------------------------------------------------------------------


def close_open_checkouts(
    session: Session,
    clock: Clock,
    provider: BillingProvider,
    account_id: str,
    *,
    same_as: dict[str, Any] | None = None,
    keep: BillingChange | None = None,
) -> FlowResult | None:
    """Payment pages for a first subscription that the account left open (a second tab, Back
    from Stripe's page and Subscribe again, another plan chosen). A checkout with the same
    terms (`same_as`) is sent to the page it already has; any other is closed first, so two
    pages paid one after the other can never start two subscriptions. A page that was paid
    meanwhile is settled, and its result is the answer (the new checkout is not started).
    A page still being opened by another request (its provider call under way) answers this
    one PENDING at once ("being opened in another tab"): the caller holds the account's lock
    (lock_account), so two cannot start at the same moment."""
    for change in pending_changes(session, account_id):
        result = change.result or {}
        if change.kind not in ("checkout", "subscribe") or (keep and change.id == keep.id):
            continue
        if not result.get("outcome") and in_flight(clock, change):
            return FlowResult(
                FlowStatus.PENDING,
                change,
                "A payment page for this account is being opened in another tab: finish there, "
                "or try again in a minute.",
            )
        if result.get("outcome") != "redirect":
            continue
        lock_change(session, change)
        if change.status is not ChangeStatus.PENDING:
            continue
        fresh = clock.now() < change.created_at + CHECKOUT_PAGE_LIFETIME
        if (
            fresh
            and same_as is not None
            and change.kind == "checkout"
            and change.request == same_as
        ):
            return FlowResult(
                FlowStatus.REDIRECT,
                change,
                "Finish the payment on the next page.",
                redirect_url=result.get("redirect_url"),
            )
        if provider.close_redirect(str(result.get("external_id"))):
            fail_change(clock, change, "Closed: the customer started another checkout.")
            continue
        found = provider.find_change(change.id)
        if found is None or found.outcome is not Outcome.DONE:
            # Paid on Stripe's page, its payment not confirmed yet (a bank debit, say).
            return FlowResult(
                FlowStatus.PENDING,
                change,
                "The payment on the page opened earlier is being confirmed: your plan starts "
                "as soon as it is. Nothing else was charged.",
            )
        settle_change(session, clock, change, found)
        confirmed = _confirmed(session, change) or "Your payment on the earlier page went through."
        return result_of(session, change, f"{confirmed} Nothing else was charged.")
    return None


def checkout_exists(session: Session, account_id: str, session_id: str, since: datetime) -> bool:
    """Whether `session_id` is the processor's page of a checkout this account started at or
    after `since`."""
    changes = session.scalars(
        select(BillingChange).where(
            BillingChange.account_id == account_id,
            BillingChange.kind.in_(("checkout", "subscribe")),
            BillingChange.created_at >= since,
        )
    )
    return any((c.result or {}).get("external_id") == session_id for c in changes)


def confirm_checkout(
    session: Session, clock: Clock, provider: BillingProvider, account_id: str, session_id: str
) -> str | None:
    """The customer is back from the processor's checkout page (its session id in the return
    URL): ask the processor whether it was paid and apply the subscription now, rather than wait
    for the webhook (which then finds the change applied). Only a pending checkout of this
    account with exactly this session id is looked at; what the browser says is never trusted.
    The message for the customer, or None when there is nothing to confirm."""
    change = next(
        (
            c
            for c in pending_changes(session, account_id)
            # a checkout from the billing pages, or an offer's first plan paid on Checkout
            if c.kind in ("checkout", "subscribe")
            and (c.result or {}).get("external_id") == session_id
        ),
        None,
    )
    if change is None:
        return None
    # Lock it (the account first, as the checkout.session.completed webhook does): the
    # webhook may be settling it at this very moment.
    lock_account(session, account_id)
    lock_change(session, change)
    if change.status is not ChangeStatus.PENDING:
        return _confirmed(session, change)
    try:
        result = provider.find_change(change.id)
    except ProviderUnavailable:
        result = None
    if result is None or result.outcome is not Outcome.DONE:
        return (
            "We are waiting for the payment processor to confirm your payment; "
            "this page will show your new plan once it has."
        )
    settle_change(session, clock, change, result)
    return _confirmed(session, change)


def _confirmed(session: Session, change: BillingChange) -> str | None:
    if change.status is not ChangeStatus.APPLIED:
        return None
    tier = store.load(session).catalog.tier(str(change.request.get("tier", "")))
    return f"Payment received: you are now on {tier.name if tier else 'your new plan'}."


def _check_proration_date(session: Session, clock: Clock, at: datetime) -> None:
    minutes = store.load(session).catalog.offers.quote_valid_minutes
    now = clock.now()
    if at > now or at < now - timedelta(minutes=minutes):
        raise QuoteExpired("This price was quoted too long ago: here is the current price.")


@dataclass(frozen=True)
class _Yearly:
    state: SubscriptionState
    plan: Price
    addons: tuple[Price, ...]
    discount: Discount | None
    withheld: Promotion | None  # a running promotion the provider cannot give this switch
    quote: Quote


def _yearly_terms(
    session: Session, provider: BillingProvider | None, account_id: str, at: datetime
) -> _Yearly:
    _, sub = live_or_conflict(session, account_id)
    if sub.interval != "month":
        raise Conflict("This subscription is already billed yearly.")
    state = state_of(session, sub)
    within_period(state, at)
    catalog = store.load(session).catalog
    plan = tier_price(catalog, sub.tier_id, "year", sub.currency)
    addons = tuple(reprice(catalog, kept_on(catalog, state, sub.tier_id), "year", sub.currency))
    discount = _auto_discount(catalog, sub.tier_id, "year", sub.currency, at)
    withheld = None
    if discount is not None and provider is not None and not provider.same_plan_discounts:
        withheld = next(p for p in catalog.promotions if p.id == discount.promotion_id)
        discount = None
    quote = change_quote(state, plan, addons, (), at, discount)
    return _Yearly(state, plan, addons, discount, withheld, quote)


def yearly_quote(
    session: Session,
    clock: Clock,
    account_id: str,
    at: datetime,
    provider: BillingProvider | None = None,
) -> tuple[Quote, Promotion | None]:
    """What switching the account from monthly to yearly billing costs today, at `at`, and
    the catalog promotion for yearly billing that `provider` cannot give a switch within the
    current plan (Stripe: its coupon would discount the credit for the unused month too), if
    any: the quote is then without it."""
    terms = _yearly_terms(session, provider, account_id, at)
    return terms.quote, terms.withheld


@settles
def switch_to_yearly(
    session: Session,
    clock: Clock,
    provider: BillingProvider,
    account_id: str,
    *,
    proration_date: datetime,
    expected_amount_due: int,
    urls: Urls,
) -> FlowResult:
    """Month -> year now, prorated like an upgrade; the new yearly period starts today."""
    _check_proration_date(session, clock, proration_date)
    lock_account(session, account_id)  # before anything is quoted from its balance
    busy = busy_with(session, clock, account_id)
    if busy is not None:
        return busy_result(busy)
    terms = _yearly_terms(session, provider, account_id, proration_date)
    quote = terms.quote
    if quote.amount_due != expected_amount_due:
        raise QuoteExpired("The price changed since the page was shown: here is the current price.")
    account, sub = live_or_conflict(session, account_id)
    published = store.load(session)
    change = new_change(
        session,
        clock,
        account_id,
        "interval",
        {"interval": "year"},
        amount_due=quote.amount_due,
        currency=sub.currency,
    )
    request = ChangeRequest(
        change.id,
        customer_of(account, sub.currency),
        terms.state,
        terms.plan,
        terms.addons,
        (),
        proration_date,
        terms.discount,
        quote.amount_due,
        urls.success_url,
    )
    status, invoice, _, message = call_provider(
        session,
        clock,
        provider,
        change,
        provider.change_subscription,
        request,
        quote.amount_due,
        published.version,
    )
    if status is FlowStatus.DONE:
        message = "You are now billed yearly."
    return FlowResult(
        status, change, message, invoice, redirect_url=change.result.get("redirect_url")
    )


# ---- add-ons --------------------------------------------------------------------------------


def addon_quote(
    session: Session, clock: Clock, account_id: str, addon_id: str, at: datetime
) -> tuple[Price, int]:
    """An add-on's price and what buying it costs today (eligibility errors say why not)."""
    account, sub = _live_for_addon(session, account_id)
    catalog = store.load(session).catalog
    addon = catalog.addon(addon_id)
    if addon is None:
        raise NotFound(f"Add-on {addon_id!r} is not in the catalog.")
    tier = catalog.tier(sub.tier_id) or store.load(session, sub.catalog_version).catalog.tier(
        sub.tier_id
    )
    if tier is None:
        raise InvalidRequest(f"The current tier {sub.tier_id!r} is not in the catalog.")
    if tier.id in addon.included_in:
        raise Conflict(f"{addon.name} is already included in {tier.name}.")
    if not addon.purchasable_by(tier):
        allowed = [t.name for t in catalog.tiers if addon.purchasable_by(t) and not t.hidden]
        raise InvalidRequest(
            f"{addon.name} is not available on {tier.name}"
            + (f": it is available on {', '.join(allowed)}." if allowed else ".")
        )
    price = addon_price(catalog, addon, sub.interval, sub.currency)
    if price.interval is None:
        account = account_of(session, account_id)
        return price, one_time_quote(price, balance_in(account, sub.currency)).amount_due
    state = state_of(session, sub)
    within_period(state, at)
    if any(a.item_id == addon.id for a in state.addons):
        raise Conflict(f"You already have {addon.name}.")
    due = change_quote(state, state.plan, (*kept_on(catalog, state), price), (), at, None)
    return price, due.amount_due


def one_time_bought(session: Session, account_id: str, catalog: Catalog) -> dict[str, datetime]:
    """The one-time add-ons the account has bought: when each was last bought (the pages say
    so, so that a second purchase is one the customer means)."""
    once = [a.id for a in catalog.addons if a.billing is AddOnBilling.ONE_TIME]
    rows = session.execute(
        select(AccountAddOn.addon_id, func.max(AccountAddOn.purchased_at))
        .where(AccountAddOn.account_id == account_id, AccountAddOn.addon_id.in_(once))
        .group_by(AccountAddOn.addon_id)
    )
    return {addon_id: at for addon_id, at in rows if at is not None}


def _live_for_addon(session: Session, account_id: str) -> tuple[Account, Subscription]:
    account = account_of(session, account_id)
    sub = live_subscription(account)
    if sub is None:
        raise InvalidRequest("Add-ons need a paid plan: upgrade first, then add it.")
    return account, sub


@settles
def buy_addon(
    session: Session,
    clock: Clock,
    provider: BillingProvider,
    account_id: str,
    addon_id: str,
    *,
    proration_date: datetime,
    expected_amount_due: int,
    urls: Urls,
    offer_id: str | None = None,
) -> FlowResult:
    """Buy an add-on: recurring ones prorated for the rest of the period, one-time ones in full.

    `offer_id` names the post-purchase offer the customer came from: its funnel records the sale.
    """
    _check_proration_date(session, clock, proration_date)
    offer = offers.get_offer(session, offer_id, account_id=account_id) if offer_id else None
    if offer is not None and (offer.addon_id != addon_id or offer.to_tier_id is not None):
        # (an upgrade offer that suggests the add-on is sold as a plan: buying the add-on
        # alone is not its sale)
        raise InvalidRequest(f"Offer {offer.id} is not an offer for {addon_id!r} alone.")
    lock_account(session, account_id)  # before anything is quoted from its balance
    price, due = addon_quote(session, clock, account_id, addon_id, proration_date)
    if due != expected_amount_due:
        raise QuoteExpired("The price changed since the page was shown: here is the current price.")
    account, sub = _live_for_addon(session, account_id)
    earlier = _earlier_purchase(session, clock, provider, account_id, addon_id, proration_date)
    if earlier is not None:
        return earlier
    busy = busy_with(session, clock, account_id)
    if busy is not None:
        return busy_result(busy)
    change = new_change(
        session,
        clock,
        account_id,
        "addon",
        {"addon": addon_id, "at": proration_date.isoformat()},
        change_id=_addon_change_id(session, account_id, addon_id, proration_date),
        offer_id=offer.id if offer is not None else None,
        amount_due=due,
        currency=sub.currency,
    )
    customer = customer_of(account, sub.currency)
    call: Any
    request: ChangeRequest | OneTimeRequest
    if price.interval is None:
        request = OneTimeRequest(change.id, customer, price, due)
        call = provider.charge_one_time
    else:
        state = state_of(session, sub)
        request = ChangeRequest(
            change.id,
            customer,
            state,
            state.plan,
            (*kept_on(store.load(session).catalog, state), price),
            (),
            proration_date,
            None,
            due,
            urls.success_url,
        )
        call = provider.change_subscription
    status, invoice, _, message = call_provider(
        session, clock, provider, change, call, request, due, sub.catalog_version
    )
    if status is FlowStatus.DONE:
        message = f"{price.name} is added."
        if offer is not None and offer.status not in (OfferStatus.ACCEPTED, OfferStatus.PAID):
            _accepted_and_paid(session, clock, offer, invoice)
    return FlowResult(
        status, change, message, invoice, redirect_url=change.result.get("redirect_url")
    )


def _addon_change_id(session: Session, account_id: str, addon_id: str, at: datetime) -> str:
    """Deterministic per add-on form (its quote time) and attempt: the same form submitted
    twice is one purchase; a declined one can be tried again from it."""
    base = f"addon:{account_id}:{addon_id}:{at.isoformat()}"
    attempt = 1
    while True:
        change_id = "chg_" + hashlib.sha256(f"{base}:{attempt}".encode()).hexdigest()[:32]
        found = session.get(BillingChange, change_id)
        if found is None or found.status is not ChangeStatus.FAILED:
            return change_id
        attempt += 1


def _earlier_purchase(
    session: Session,
    clock: Clock,
    provider: BillingProvider,
    account_id: str,
    addon_id: str,
    at: datetime,
) -> FlowResult | None:
    """A purchase of this add-on that already answers this one: the same form bought it already
    (a second submit, Back and submit again), or an earlier purchase's outcome is not known yet
    (the processor did not answer): it is settled first, so nothing is ever charged twice."""
    same_form = session.get(BillingChange, _addon_change_id(session, account_id, addon_id, at))
    if same_form is not None and same_form.status is ChangeStatus.APPLIED:
        return result_of(session, same_form, "This was bought already: nothing was charged again.")
    for change in pending_changes(session, account_id):
        if change.kind != "addon" or change.request.get("addon") != addon_id:
            continue
        lock_change(session, change)
        if change.status is not ChangeStatus.PENDING:
            continue
        if in_flight(clock, change):
            return FlowResult(
                FlowStatus.PENDING,
                change,
                "This purchase is already being confirmed: wait a moment and reload the page.",
            )
        found = provider.find_change(change.id)
        settle_change(session, clock, change, found)  # applied, or failed: never charged
        if found is not None and found.outcome is Outcome.DONE:
            return result_of(
                session, change, "Your earlier purchase went through: nothing was charged again."
            )
    return None


def remove_addon(
    session: Session, clock: Clock, provider: BillingProvider, account_id: str, addon_id: str
) -> FlowResult:
    """Remove a recurring add-on at the period end (it keeps working until then)."""
    lock_account(session, account_id)  # first: what follows is read after any change in flight
    _, sub = _live_for_addon(session, account_id)
    state = state_of(session, sub)
    if not any(a.item_id == addon_id for a in state.addons):
        raise NotFound(f"Add-on {addon_id!r} is not active on this account.")
    current_next = state.next_addons if state.next_addons is not None else state.addons
    kept = tuple(a for a in current_next if a.item_id != addon_id)
    result = schedule_change(
        session,
        clock,
        provider,
        account_id,
        "addon_remove",
        next_plan=state.next_plan,
        next_addons=kept,
        cancel=state.cancel_at_period_end,
    )
    if result.status is not FlowStatus.DONE:  # not scheduled (busy, unreachable): say so
        return result
    when = sub.current_period_end.strftime("%B %-d, %Y")
    return FlowResult(result.status, result.change, f"The add-on ends on {when}.")


def keep_addon(
    session: Session, clock: Clock, provider: BillingProvider, account_id: str, addon_id: str
) -> FlowResult:
    """Take back the removal of a recurring add-on before the period end: it renews with the
    plan, as if never removed (nothing is charged now)."""
    lock_account(session, account_id)  # first: what follows is read after any change in flight
    _, sub = _live_for_addon(session, account_id)
    if clock.now() >= sub.current_period_end:
        raise Conflict("The period has already ended: the add-on's removal was applied.")
    state = state_of(session, sub)
    catalog = store.load(session).catalog
    if addon_id not in removed_addons(catalog, state):
        raise Conflict(f"Add-on {addon_id!r} is not set to end at the period end: nothing to keep")
    owned = next(a for a in state.addons if a.item_id == addon_id)
    interval = state.next_plan.interval if state.next_plan is not None else None
    back = reprice(catalog, (owned,), interval, owned.currency) if interval else (owned,)
    kept = (*(state.next_addons or ()), *back)
    unchanged = sorted(a.item_id for a in kept) == sorted(a.item_id for a in state.addons)
    # nothing left to change at the period end: the scheduled add-ons cleared
    next_addons = None if state.next_plan is None and unchanged else kept
    result = schedule_change(
        session,
        clock,
        provider,
        account_id,
        "addon_keep",
        next_plan=state.next_plan,
        next_addons=next_addons,
        cancel=state.cancel_at_period_end,
    )
    if result.status is not FlowStatus.DONE:
        return result
    message = f"{owned.name} stays: it renews with your plan."
    return FlowResult(result.status, result.change, message)


# ---- the period end -------------------------------------------------------------------------


def apply_period_end(
    session: Session, clock: Clock, provider: BillingProvider, *, limit: int = 1000
) -> list[FlowResult]:
    """Renew every due subscription of this provider: apply scheduled changes, invoice periods.

    Each period's renewal is a transaction of its own, committed before the next one starts
    (work pending in `session` is committed first): a renewal that fails, for any reason, is
    rolled back and reported alone, and a long run holds the locks of one account at a time."""
    now = clock.now()
    due = session.scalars(
        select(Subscription)
        .where(
            Subscription.provider == provider.name,
            Subscription.status.in_(LIVE),
            Subscription.current_period_end <= now,
        )
        .order_by(Subscription.current_period_end)
        .limit(limit)
    ).all()
    accounts = [sub.account_id for sub in due]  # named in a report, even with the database gone
    session.commit()
    results = []
    for sub, account_id in zip(due, accounts, strict=True):
        # Catch up period by period so each period gets its own invoice.
        while (result := _renew_period(session, clock, provider, sub, account_id, now)) is not None:
            results.append(result)
            if result.status is not FlowStatus.DONE:
                break
    return results


def _renew_period(
    session: Session,
    clock: Clock,
    provider: BillingProvider,
    sub: Subscription,
    account_id: str,
    now: datetime,
) -> FlowResult | None:
    """Renew the period of `sub` that ended by `now` in a transaction of its own, committed;
    None when none is due (any more). A renewal that fails is rolled back and reported."""
    try:
        if sub.status not in LIVE or sub.current_period_end > now:
            session.commit()
            return None
        # First in every renewal's transaction, as `catalog migrate` takes it before it locks
        # many accounts' subscriptions: one waits for the other, they never deadlock.
        store.lock_subscribers(session)
        result = _renew_one(session, clock, provider, sub)
        session.commit()
        return result
    except _AlreadyRenewed:  # by another run at the same time: nothing to do here
        session.rollback()
        return None
    except TiergateError as exc:
        # One account that cannot be renewed (its plan is no longer sold at its interval,
        # say) is reported and left as it is; the others still renew.
        why = exc.message
    except Exception as exc:  # noqa: BLE001 - a database or processor error of this account
        log.debug("renewal of %s failed", account_id, exc_info=True)  # its traceback
        why = f"unexpected error ({_first_line(exc)}); the next run tries again."
    session.rollback()
    return _record_not_renewed(session, clock, sub, account_id, why)


def _record_not_renewed(
    session: Session, clock: Clock, sub: Subscription, account_id: str, why: str
) -> FlowResult:
    """_not_renewed in a transaction of its own, committed. When even that fails (the database
    is unreachable, say) the renewal is still reported, with an unsaved change."""
    try:
        result = _not_renewed(session, clock, sub, why)
        session.commit()
        return result
    except Exception:  # noqa: BLE001 - the report matters more than its record
        session.rollback()
        log.debug("the failed renewal of %s was not recorded", account_id, exc_info=True)
    message = f"{NOT_RENEWED} {account_id}: {why}"
    log.error(message)
    change = BillingChange(
        account_id=account_id, kind="renew", status=ChangeStatus.FAILED, error=message
    )
    return FlowResult(FlowStatus.DECLINED, change, message)


def _first_line(exc: Exception) -> str:
    """The exception's class and the first line of its text (a database error's next lines
    are the statement and its parameters): one line of a report."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


class _AlreadyRenewed(Exception):
    """The period was renewed by another run while this one waited for the account."""


def _renew_change(session: Session, clock: Clock, sub: Subscription) -> BillingChange:
    return new_change(
        session,
        clock,
        sub.account_id,
        "renew",
        {"period_end": sub.current_period_end.isoformat()},
        currency=sub.currency,
    )


NOT_RENEWED = "Not renewed"  # how a renewal that could not be made is reported


def renew_line(result: FlowResult) -> str:
    """A renewal's line for the operator: one that was not made (declined, the processor
    unreachable, the account busy) starts with NOT_RENEWED and names the account."""
    if result.status is FlowStatus.DONE or result.message.startswith(NOT_RENEWED):
        return result.message
    return f"{NOT_RENEWED} {result.change.account_id}: {result.message}"


def _not_renewed(
    session: Session,
    clock: Clock,
    sub: Subscription,
    why: str,
    change: BillingChange | None = None,
) -> FlowResult:
    """Report a renewal that could not be made, its change (made now if there is none yet)
    marked failed: the subscription is left as it is."""
    change = change or _renew_change(session, clock, sub)
    message = f"{NOT_RENEWED} {sub.account_id}: {why}"
    fail_change(clock, change, message)
    log.error(message)
    return FlowResult(FlowStatus.DECLINED, change, message)


@settles
def _renew_one(
    session: Session, clock: Clock, provider: BillingProvider, sub: Subscription
) -> FlowResult:
    account = lock_account(session, sub.account_id)  # the balance is read once, here
    session.refresh(sub)  # another run (or host) may have renewed it meanwhile
    if sub.status not in LIVE or sub.current_period_end > clock.now():
        raise _AlreadyRenewed
    busy = busy_with(session, clock, sub.account_id)
    if busy is not None:  # renewed by the next run, from the state that change leaves
        return FlowResult(
            FlowStatus.PENDING,
            busy,
            f"{NOT_RENEWED} {sub.account_id}: another change of this account is with the "
            "payment processor right now; the next run renews it.",
        )
    state = state_of(session, sub)
    scheduled = sub.scheduled_tier_id is not None or sub.scheduled_interval is not None
    version = (
        (sub.scheduled_catalog_version or store.load(session).version)
        if scheduled
        else sub.catalog_version
    )
    change = _renew_change(session, clock, sub)
    request = RenewRequest(change.id, customer_of(account, sub.currency), state, None)
    try:
        status, invoice, result, message = call_provider(
            session, clock, provider, change, provider.renew, request, None, version
        )
    except TiergateError as exc:  # refused by the provider: this change, not another one
        return _not_renewed(session, clock, sub, exc.message, change)
    if status is FlowStatus.DONE and sub.status == SubscriptionStatus.CANCELED:
        message = f"Canceled at the period end; {sub.account_id} is on the free tier."
    elif status is FlowStatus.DONE:
        message = (
            f"Renewed {sub.account_id} on {sub.tier_id} until {sub.current_period_end:%Y-%m-%d}."
        )
    return FlowResult(status, change, message, invoice)
