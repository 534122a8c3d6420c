"""End-user billing pages: the offer page (one-click prorated upgrade), success and declined
pages, and the account's billing page (checkout, yearly switch, downgrade, cancel, resume,
add-ons). Every page is opened through a signed link (billing/portal.py); every POST form is
CSRF-protected (this blueprint only: the JSON API and webhooks stay exempt).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, cast

from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from billing import downgrade, portal, records, service
from billing.manual import ManualBilling, running
from billing.models import BillingChange, ChangeStatus, Invoice
from billing.proration import add_interval
from billing.provider import (
    BillingProvider,
    Customer,
    Discount,
    Price,
    QuoteMismatch,
    RenewRequest,
    SubscriptionState,
)
from billing.quotes import Quote, renewal_quote
from gating import offers
from gating.models import Offer, OfferStatus, OfferTrigger, Subscription, SubscriptionStatus
from tiergate.db import get_session
from tiergate.exceptions import Conflict, Forbidden, InvalidRequest, NotFound, TiergateError
from tiergate.extensions import get_billing, get_clock
from tiers import store
from tiers.model import AddOnBilling, Catalog, Tier
from tiers.money import format_money, yearly_saving

bp = Blueprint("billing", __name__)

Page = str | tuple[str, int] | Response


def init_app(app: Flask) -> None:
    """Register the pages and CSRF protection for this blueprint's forms only."""
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # protect() is called per blueprint
    if "csrf" not in app.extensions:
        CSRFProtect(app)
    app.register_blueprint(bp)


@bp.before_request
def _protect_forms() -> None:
    if request.method == "POST":
        current_app.extensions["csrf"].protect()


@bp.context_processor
def _helpers() -> dict[str, Any]:
    return {"money": money, "day": _day}


def money(amount: int | None, currency: str) -> str:
    """Minor units as the customer reads them: 2900, "usd" -> "$29.00"."""
    return "" if amount is None else format_money(amount, currency)


def _day(value: datetime | None) -> str:
    return value.strftime("%B %-d, %Y") if value else ""


def _provider() -> BillingProvider:
    return cast(BillingProvider, get_billing())


def _return_url() -> str | None:
    return portal.safe_return_url(current_app.config, request.values.get("return_url"))


# ---- the offer page ---------------------------------------------------------------------------


def _offer_link(account_id: str, offer_id: str) -> str:
    """The offer's page again, keeping the way back to the app and to the billing pages."""
    return portal.offer_link(
        current_app.config, account_id, offer_id, _return_url(), _billing_token(account_id)
    )


def _billing_token(account_id: str) -> str | None:
    """The billing pages' token the request carries for `account_id` (`t` on the billing
    pages, `b` on an offer's pages when the customer came from them), else None: an offer
    link alone never opens the account's billing pages."""
    if request.view_args and "offer_id" in request.view_args:
        token = request.values.get("b")
    else:
        token = request.values.get("t")
    if not token:
        return None
    try:
        owner = portal.read_account_token(current_app.config, token)
    except TiergateError:
        return None
    return token if owner == account_id else None


def _billing_link(account_id: str) -> str | None:
    """The account's billing page, for a customer allowed to open it (else None)."""
    if _billing_token(account_id) is None:
        return None
    return portal.account_link(current_app.config, account_id, _return_url())


def _offer_for_link(offer_id: str) -> tuple[Offer, str]:
    token = request.values.get("t", "")
    try:
        account_id = portal.read_offer_token(current_app.config, token, offer_id)
    except Forbidden:
        account_id = portal.read_offer_token(
            current_app.config, token, offer_id, max_age=portal.CHECKOUT_RETURN_MAX_AGE
        )
        _back_from_checkout(account_id)
    offer = offers.get_offer(get_session(), offer_id, account_id=account_id)
    if offer.account_id != account_id:
        raise NotFound(f"Offer {offer_id!r} does not exist for this account.")
    return offer, account_id


def offer_view(offer: Offer) -> dict[str, Any]:
    """The numbers of UPSELL rule 5, exactly as they will be charged.

    The quote's own words and amounts (Offer.details, as the API shows them) come first; what a
    re-quoted or hand-made offer lacks is worked out from the catalog the same way.
    """
    session, clock = get_session(), get_clock()
    details: dict[str, Any] = offer.details or {}
    catalog = store.load(session, offer.catalog_version).catalog
    to_tier = catalog.tier(offer.to_tier_id or "")
    from_tier = catalog.tier(offer.from_tier_id or "") or catalog.free_tier
    currency = offer.currency
    sub = records.live_subscription(records.account_of(session, offer.account_id))
    view: dict[str, Any] = {
        "offer": offer,
        "to_tier": to_tier,
        "currency": currency,
        "contact_sales": offer.contact_sales or to_tier is None or to_tier.contact_sales,
        "contact_sales_url": details.get("contact_sales_url") or catalog.offers.contact_sales_url,
        "expired": offer.expires_at is not None and clock.now() >= offer.expires_at,
        "price_moves": offers.price_moves(offer),
        "unlocked": _unlocked(session, catalog, offer, from_tier, to_tier),
        "blocked": service.past_due_block(session, sub, clock.now())
        or service.stale_offer(session, offer, sub),
        "billing_url": _billing_link(offer.account_id),
        "billing_token": _billing_token(offer.account_id),
    }
    if to_tier is None or view["contact_sales"]:
        return view
    interval = offer.interval or "month"
    renews_at = _instant(details.get("next_renewal_at"))
    if renews_at is None and sub is not None and sub.interval == interval:
        renews_at = sub.current_period_end
    elif renews_at is None:
        renews_at = add_interval(offer.proration_date or offer.created_at, interval)
    view.update(
        interval=interval,
        new_recurring=offer.new_recurring_amount,
        due_today=offer.amount_due_today,
        # Only a running paid period is prorated; from the free tier the full price is due, and
        # during a trial nothing is charged today.
        prorated=sub is not None
        and sub.status is not SubscriptionStatus.TRIALING
        and offer.proration_date is not None,
        next_renewal=offer.next_renewal_amount,
        renews_at=renews_at,
        note=details.get("note"),
        credit=_credit(details),
        yearly=_yearly(details, to_tier, interval, currency),
        price_jump=_price_jump(details, catalog, sub, to_tier, interval, currency),
        promotion=_promotion(details, catalog, offer),
        addon=None if view["blocked"] else _addon(session, clock, catalog, offer, interval),
    )
    return view


def _credit(details: dict[str, Any]) -> dict[str, Any] | None:
    """The account credit the quote used today and kept for later, and an amount owed from
    earlier invoices that today's charge includes (None: neither)."""
    credit = details.get("credit")
    if not isinstance(credit, dict):
        return None
    applied, left, owed = credit.get("applied"), credit.get("left"), credit.get("owed", 0)
    amounts = (applied, left, owed)
    if not all(isinstance(a, int) and a >= 0 for a in amounts):
        return None
    view = {"applied": applied, "left": left, "owed": owed}
    return view if any(amounts) else None


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _yearly(details: dict[str, Any], tier: Tier, interval: str, currency: str) -> Any:
    """The one alternative (UPSELL 7): the same tier paid yearly, with its saving, and what
    paying it today costs when it can be bought from the offer page (due_today None: not)."""
    stored = details.get("yearly_alternative")
    if isinstance(stored, dict):
        promo = stored.get("promotion")
        return {
            "amount": stored["recurring_amount"],
            "saving": stored.get("saving_amount", 0),
            "due_today": stored.get("amount_due_today"),
            "first_charge": stored.get("first_charge"),
            "trial_end": _instant(stored.get("trial_end")),
            "promotion": _named(details, promo["id"], promo["name"])
            if isinstance(promo, dict)
            else None,
        }
    month, year = tier.price("month", currency), tier.price("year", currency)
    if interval == "month" and month and year and month * 12 > year:
        return {"amount": year, "saving": month * 12 - year, "due_today": None}
    return None


def _price_jump(
    details: dict[str, Any], catalog: Catalog, sub: Any, tier: Tier, interval: str, currency: str
) -> Any:
    """The plain statement when the jump exceeds the catalog's guard (UPSELL 4), else None."""
    stored = details.get("price_jump")
    if isinstance(stored, dict):
        return {"message": stored["message"]} if stored.get("exceeds_guard") else None
    new = tier.price(interval, currency) or 0
    old = 0
    if sub is not None and sub.interval == interval:
        old = records.state_of(get_session(), sub).plan.amount
    guard = catalog.offers.price_jump_guard_percent
    if old and new * 100 <= old * (100 + guard):
        return None
    message = f"{tier.name} costs {money(new, currency)} / {interval}"
    if old:
        message += f", {money(new - old, currency)} more than now"
    return {"message": message + "."}


def _promotion(details: dict[str, Any], catalog: Catalog, offer: Offer) -> Any:
    """The promotion in the amounts: its end date only when it really ends (UPSELL 6)."""
    stored = details.get("promotion")
    if isinstance(stored, dict):
        ends = _instant(stored.get("ends_at")) if stored.get("limited_time") else None
        return {"name": _named(details, stored["id"], stored["name"]), "ends_at": ends}
    promo = next((p for p in catalog.promotions if p.id == offer.promotion_id), None)
    return {"name": promo.name, "ends_at": promo.ends_at} if promo else None


def _named(details: dict[str, Any], promotion_id: str, name: str) -> str:
    """A promotion's name, with the code that brought it when the customer typed one."""
    code = details.get("code")
    typed = code and details.get("code_promotion") == promotion_id
    return f"Code {code} ({name})" if typed else name


def _addon(session: Any, clock: Any, catalog: Catalog, offer: Offer, interval: str) -> Any:
    """At most one add-on (UPSELL 1) with what it adds today and per interval."""
    addon = catalog.addon(offer.addon_id or "")
    if addon is None:
        return None
    terms = service.offer_addon_terms(session, clock, offer)
    if terms is None:
        return None
    due, renewal = terms
    recurring = addon.billing is AddOnBilling.RECURRING
    return {
        "addon": addon,
        "due_today": due,
        "recurring": addon.price(interval, offer.currency) if recurring else None,
        "renewal": renewal,
    }


def _unlocked(
    session: Any, catalog: Catalog, offer: Offer, from_tier: Tier | None, to_tier: Tier | None
) -> dict[str, Any] | None:
    """What is unlocked, in the customer's usage terms: "10 of 10 projects used → 50 projects"."""
    feature = catalog.feature(offer.feature_id or "")
    if feature is None or to_tier is None:
        return None
    details: dict[str, Any] = offer.details or {}
    usage, to = details.get("usage") or {}, details.get("to") or {}
    if usage.get("text") and to.get("limit_text"):
        return {"feature": feature, "text": f"{usage['text']} \u2192 {to['limit_text']}"}
    after = to_tier.grant(feature.id)
    if not feature.metered:
        return {"feature": feature, "text": f"{feature.name} included"}
    before = from_tier.grant(feature.id) if from_tier is not None else None
    used = records.usage_of(session, offer.account_id, feature.id, feature.kind)
    new = (
        f"{after.limit} {feature.units(after.limit)}"
        if after.limit is not None
        else (f"Unlimited {feature.units(None)}")
    )
    if before is None or not before.enabled or before.limit is None:
        return {"feature": feature, "text": f"{used} {feature.units(used)} used \u2192 {new}"}
    limit = before.limit
    return {
        "feature": feature,
        "text": f"{used} of {limit} {feature.units(limit)} used \u2192 {new}",
    }


@bp.get("/offers/<offer_id>")
def offer_page(offer_id: str) -> Page:
    """The upgrade offer: exact amounts, one primary button, "Not now"."""
    session = get_session()
    offer, account_id = _offer_for_link(offer_id)
    if any(c.status is ChangeStatus.APPLIED for c in _changes_of(offer.id)):
        return redirect(_done_url(offer, account_id))
    view = offer_view(offer)
    open_to_change = not view["contact_sales"] and not view["blocked"]
    if view["expired"] and open_to_change:
        fresh = _requoted(offer, account_id)
        if fresh is not None:
            return redirect(fresh)
    typed = request.args.get("code", "").strip()[:64]
    code_error = None
    code_status = 422
    if typed and not view["expired"] and open_to_change:
        clock = get_clock()
        try:
            attempt = service.claim_code_try(session, clock, account_id, typed)
        except service.TooManyCodes as exc:
            session.rollback()
            code_error, code_status = exc.message, 429
        else:
            session.commit()  # the try counts, whatever happens next
            try:
                coded = service.offer_with_code(session, clock, offer, typed)
            except InvalidRequest as exc:  # a code that does not apply: say why, keep the offer
                session.rollback()
                code_error = exc.message
            else:
                service.code_accepted(session, attempt)
                session.commit()
                return redirect(_offer_url(coded, account_id))
    if not view["expired"] and not any(e.type is OfferStatus.SHOWN for e in offer.events):
        offers.record_event(session, get_clock(), offer.id, "shown", account_id=account_id)
        session.commit()
    return render_template(
        "offer.html",
        token=request.values["t"],
        return_url=_return_url(),
        expired_message=_requote_message(offer),
        codes=_codes_running(),
        typed_code=typed if code_error else (offer.details or {}).get("code"),
        code_error=code_error,
        **view,
    ), (code_status if code_error else 200)


def _codes_running() -> bool:
    """Whether the offer page asks for a promotion code: only while a catalog code runs."""
    catalog = store.load(get_session()).catalog
    now = get_clock().now()
    return any(p.code and p.active(now) for p in catalog.promotions)


def _requoted(offer: Offer, account_id: str) -> str | None:
    """The link of a fresh quote for an expired offer (None when it cannot be re-quoted)."""
    session = get_session()
    try:
        fresh = offers.requote(session, get_clock(), offer)
    except TiergateError:
        session.rollback()
        return None
    session.commit()
    return _offer_url(fresh, account_id)


def _offer_url(offer: Offer, account_id: str, endpoint: str = "billing.offer_page") -> str:
    """A page of one of the customer's offers (a re-quote's, or the done page), on this host,
    keeping the way back to the app and to the billing pages."""
    token = portal.offer_token(current_app.config, account_id, offer.id)
    return url_for(
        endpoint,
        offer_id=offer.id,
        t=token,
        return_url=_return_url(),
        b=_billing_token(account_id),
    )


def _requote_message(offer: Offer) -> str | None:
    old_id = (offer.details or {}).get("requoted_from")
    old = get_session().get(Offer, old_id) if isinstance(old_id, str) else None
    if old is None or _same_amounts(old, offer):
        return None  # nothing the customer was shown has changed: no notice
    quoted = old.created_at.strftime("%H:%M")
    return f"This price was quoted at {quoted} UTC and has expired: here is the current price."


def _same_amounts(old: Offer, new: Offer) -> bool:
    def amounts(offer: Offer) -> tuple[Any, ...]:
        details = offer.details or {}
        yearly = details.get("yearly_alternative") or {}
        return (
            offer.to_tier_id,
            offer.amount_due_today,
            offer.new_recurring_amount,
            offer.next_renewal_amount,
            str(details.get("next_renewal_at"))[:10],  # shown as a day
            yearly.get("amount_due_today"),
            yearly.get("recurring_amount"),
        )

    return amounts(old) == amounts(new)


def _changes_of(offer_id: str) -> list[BillingChange]:
    return list(
        get_session().scalars(select(BillingChange).where(BillingChange.offer_id == offer_id))
    )


def _done_url(offer: Offer, account_id: str) -> str:
    return _offer_url(offer, account_id, "billing.offer_done")


@bp.post("/offers/<offer_id>/accept")
def offer_accept(offer_id: str) -> Page:
    """Press "Upgrade now": record the click, charge exactly the quote, show the outcome."""
    session, clock = get_session(), get_clock()
    offer, account_id = _offer_for_link(offer_id)
    if offer.status not in (OfferStatus.ACCEPTED, OfferStatus.PAID):
        offers.record_event(session, clock, offer.id, "clicked", account_id=account_id)
    token = request.values["t"]
    urls = service.Urls(
        success_url=current_app.config["BASE_URL"].rstrip("/") + _done_url(offer, account_id),
        cancel_url=_offer_link(account_id, offer.id),
    )
    try:
        result = service.accept_offer(
            session,
            clock,
            _provider(),
            offer.id,
            account_id,
            with_addon=request.form.get("addon") == "yes",
            interval=_interval(),
            urls=urls,
        )
    except service.QuoteExpired as exc:
        session.commit()  # keep the click
        fresh = _requoted(offer, account_id)
        if fresh is not None:
            return redirect(fresh, code=303)
        view = offer_view(offer)
        return render_template(
            "offer.html", token=token, return_url=_return_url(), expired_message=exc.message, **view
        ), 409
    except QuoteMismatch:
        session.commit()  # keep the failed change for the operator
        raise
    except IntegrityError:
        # A concurrent accept of the same offer wrote this attempt's change first: show its result.
        session.rollback()
        return redirect(_offer_link(account_id, offer.id))
    session.commit()
    if result.status is service.FlowStatus.REDIRECT and result.redirect_url:
        return redirect(result.redirect_url)
    if result.status is service.FlowStatus.DONE:
        return redirect(_done_url(offer, account_id))
    return render_template(
        "billing_declined.html",
        message=result.message,
        retry_url=_offer_link(account_id, offer.id),
        return_url=_return_url(),
        status=result.status.value,
    ), 402 if result.status is service.FlowStatus.DECLINED else 503


def _interval() -> str | None:
    """The interval the customer chose on the offer page (none: the offer's own)."""
    value = request.form.get("interval")
    if value in (None, ""):
        return None
    if value not in ("month", "year"):
        raise InvalidRequest(f"interval must be 'month' or 'year', not {value[:20]!r}")
    return value


@bp.post("/offers/<offer_id>/dismiss")
def offer_dismiss(offer_id: str) -> Page:
    """ "Not now": record the dismissal (a prompt's cooldown starts) and go back to the app."""
    session = get_session()
    offer, account_id = _offer_for_link(offer_id)
    if offer.status not in (OfferStatus.ACCEPTED, OfferStatus.PAID):
        offers.record_event(session, get_clock(), offer.id, "dismissed", account_id=account_id)
        session.commit()
    target = _return_url()
    if target:
        return redirect(target)
    # No app to go back to: the account's own billing page when the customer came from it.
    billing_url = _billing_link(account_id)
    prompted = offer.trigger is not OfferTrigger.PRICING_PAGE  # the customer's own look-up
    return render_template("billing_dismissed.html", billing_url=billing_url, cooldown=prompted)


@bp.get("/offers/<offer_id>/done")
def offer_done(offer_id: str) -> Page:
    """After a successful upgrade: what changed, what was charged, one post-purchase add-on."""
    offer, account_id = _offer_for_link(offer_id)
    applied = [c for c in _changes_of(offer.id) if c.status is ChangeStatus.APPLIED]
    session_id = request.args.get("session_id", "")
    if not applied and 0 < len(session_id) <= 255:
        # Back from Checkout: ask the processor, not the browser, whether it was paid (the
        # webhook may not have come yet); the offer page would ask to pay again.
        session = get_session()
        waiting = service.confirm_checkout(
            session, get_clock(), _provider(), account_id, session_id
        )
        session.commit()
        applied = [c for c in _changes_of(offer.id) if c.status is ChangeStatus.APPLIED]
        if not applied and waiting is not None:
            return render_template(
                "billing_declined.html",
                message=waiting,
                retry_url=request.full_path,
                return_url=_return_url(),
                status="pending",
            ), 202
    if not applied:
        return redirect(_offer_link(account_id, offer.id))
    return _success_page(applied[0], account_id)


def _success_page(change: BillingChange, account_id: str) -> Page:
    session = get_session()
    invoice = session.scalar(select(Invoice).where(Invoice.change_id == change.id))
    account = records.account_of(session, account_id)
    sub = account.subscription
    catalog = store.load(session).catalog
    tier = catalog.tier(sub.tier_id) if sub is not None else None
    follow: dict[str, Any] | None = None
    follow_id = (change.result or {}).get("follow_up_offer_id")
    if follow_id:
        offer = session.get(Offer, follow_id)
        addon = catalog.addon(offer.addon_id or "") if offer is not None else None
        if offer is not None and offer.status is OfferStatus.CREATED:
            offers.record_event(session, get_clock(), offer.id, "shown", account_id=account_id)
            session.commit()
        if offer is not None and addon is not None and offer.status is OfferStatus.SHOWN:
            follow = {
                "offer": offer,
                "addon": addon,
                "url": url_for(
                    "billing.addon_page",
                    addon_id=addon.id,
                    # Buying it needs no more than a token for that add-on, unless the
                    # customer came from the billing pages (and holds their token).
                    t=_billing_token(account_id)
                    or portal.account_token(current_app.config, account_id, only=addon.id),
                    offer=offer.id,
                    return_url=_return_url(),
                ),
                "dismiss_url": _offer_url(offer, account_id, "billing.offer_dismiss"),
            }
    return render_template(
        "billing_success.html",
        change=change,
        invoice=invoice,
        subscription=sub,
        tier=tier,
        follow=follow,
        return_url=_return_url(),
        message=_success_message(change, tier),
        manage_url=_billing_link(account_id),
    )


def _success_message(change: BillingChange, tier: Any) -> str:
    name = tier.name if tier is not None else "your plan"
    return {
        "upgrade": f"You are now on {name}.",
        "subscribe": f"You are now on {name}.",
        "checkout": f"You are now on {name}.",
        "interval": f"{name} is now billed yearly.",
        "addon": "Your add-on is active.",
    }.get(change.kind, "Done.")


# ---- the account's billing page ------------------------------------------------------------


def _account_id() -> str:
    """The account the billing page's token is for. A token limited to one add-on (the
    cross-sell after a paid offer) opens that add-on's page and its outcome only."""
    token = request.values.get("t", "")
    try:
        account_id, only = portal.read_account_grant(current_app.config, token)
    except Forbidden:
        account_id, only = portal.read_account_grant(
            current_app.config, token, max_age=portal.CHECKOUT_RETURN_MAX_AGE
        )
        _back_from_checkout(account_id)
    if only is not None:
        args = request.view_args or {}
        if not (
            (request.endpoint == "billing.addon_page" and args.get("addon_id") == only)
            or request.endpoint == "billing.change_page"
        ):
            raise Forbidden(portal.ONLY_ADDON)
    g.billing_only = only
    return account_id


def _back_from_checkout(account_id: str) -> None:
    """An expired link is still good on the way back from a Checkout page the customer may
    have paid hours after it was opened: when its `session_id` names a checkout of this
    account (Stripe puts it in the return URL). Forbidden otherwise."""
    session_id = request.args.get("session_id", "")
    expired = Forbidden("This link has expired. Open it again from the app.")
    if (
        request.method != "GET"
        or request.endpoint not in ("billing.account_page", "billing.offer_done")
        or not 0 < len(session_id) <= 255
    ):
        raise expired  # the return pages only: they confirm the payment, then link on
    since = get_clock().now() - timedelta(seconds=portal.CHECKOUT_RETURN_MAX_AGE)
    if not service.checkout_exists(get_session(), account_id, session_id, since):
        raise expired


def _token(account_id: str) -> str:
    """A fresh token for the next page, with the same reach as the request's."""
    return portal.account_token(current_app.config, account_id, only=g.get("billing_only"))


def _ctx(account_id: str) -> dict[str, Any]:
    return {"token": _token(account_id), "return_url": _return_url()}


def _done(result: service.FlowResult, account_id: str) -> Page:
    if result.status is service.FlowStatus.REDIRECT and result.redirect_url:
        return redirect(result.redirect_url)
    if result.status is service.FlowStatus.DONE:
        token = _token(account_id)
        return redirect(
            url_for(
                "billing.change_page", change_id=result.change.id, t=token, return_url=_return_url()
            )
        )
    code = 402 if result.status is service.FlowStatus.DECLINED else 503
    return render_template(
        "billing_declined.html",
        message=result.message,
        status=result.status.value,
        retry_url=_home(account_id),
        return_url=_return_url(),
    ), code


def _submit(
    account_id: str,
    flow: Callable[[], service.FlowResult],
    outcome: Callable[[service.FlowResult, str], Page] | None = None,
) -> tuple[Page | None, str | None]:
    """Run a form's flow: (its outcome page, None), or (None, why) when the quoted price (or
    the loss a downgrade page showed) no longer holds; nothing is changed then and the caller
    shows the form as it is now."""
    session = get_session()
    try:
        result = flow()
        session.commit()
    except service.QuoteExpired as exc:
        session.rollback()
        return None, exc.message
    except IntegrityError:
        # The same form submitted twice at once: the other request wrote this change first.
        session.rollback()
        return None, "This is already being done: reload the page in a moment to see it."
    return (outcome or _done)(result, account_id), None


def _urls(account_id: str) -> service.Urls:
    link = _home(account_id)
    return service.Urls(success_url=link, cancel_url=link)


def _home(account_id: str) -> str:
    """Where a billing flow returns: the billing page, or for a token limited to one add-on,
    that add-on's page."""
    only = g.get("billing_only")
    if only is None:
        return portal.account_link(current_app.config, account_id, _return_url())
    path = url_for(
        "billing.addon_page", addon_id=only, t=_token(account_id), return_url=_return_url()
    )
    return str(current_app.config["BASE_URL"]).rstrip("/") + path


def _at() -> datetime:
    raw = request.form.get("at", "")
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise service.QuoteExpired(
            "The form is missing its quote time: here is the current price."
        ) from None
    if value.tzinfo is None:
        raise service.QuoteExpired("The quote time has no timezone: here is the current price.")
    return value


def _amount() -> int:
    raw = request.form.get("amount", "")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 15:  # not "²" or "٣": int() refuses
        raise service.QuoteExpired("The form is missing its amount: here is the current price.")
    return int(raw)


@bp.get("/billing")
def account_page() -> Page:
    """The account's plan, scheduled changes and what can be changed."""
    session = get_session()
    account_id = _account_id()
    confirmed = None
    session_id = request.args.get("session_id", "")
    if 0 < len(session_id) <= 255:  # back from Checkout: confirm with the processor, not the URL
        confirmed = service.confirm_checkout(
            session, get_clock(), _provider(), account_id, session_id
        )
        session.commit()
    account = records.account_of(session, account_id)
    sub = records.live_subscription(account)
    catalog = store.load(session).catalog
    state = records.state_of(session, sub) if sub is not None else None
    current = catalog.tier(sub.tier_id) if sub is not None else catalog.free_tier
    lower: list[Tier] = []
    higher: list[Tier] = []
    # By the billing rules (a legacy tier sits anywhere): every "Upgrade to" link can be quoted.
    direction = downgrade.directions(session, catalog, sub) if sub is not None else None
    for tier in catalog.listed_tiers:
        if tier.free or tier.contact_sales or current is None or tier.id == current.id:
            continue
        if direction is not None:
            way = direction(tier)
            if way is not None:
                (higher if way == "up" else lower).append(tier)
        else:
            (higher if tier.order > current.order else lower).append(tier)
    addons = [a for a in catalog.addons if current is not None and a.purchasable_by(current)]
    invoices = session.scalars(
        select(Invoice)
        .where(Invoice.account_id == account_id)
        .order_by(Invoice.id.desc())
        .limit(12)
    ).all()
    return render_template(
        "billing_account.html",
        account=account,
        sub=sub,
        state=state,
        tier=current,
        catalog=catalog,
        lower=lower,
        higher=higher,
        addons=addons,
        invoices=invoices,
        owned={a.item_id for a in state.addons} if state else set(),
        removing=records.removed_addons(catalog, state) if state else set(),
        bought=service.one_time_bought(session, account_id, catalog),
        confirmed=confirmed,
        past_due=_past_due(sub, state),
        **_ctx(account_id),
    )


def _past_due(sub: Any, state: Any) -> dict[str, Any] | None:
    """After a failed payment: since when, until when the plan is kept, and where to pay."""
    if sub is None or sub.status is not SubscriptionStatus.PAST_DUE:
        return None
    try:
        url = _provider().payment_url(state)
    except TiergateError:  # the processor is unreachable: say so without the link
        url = None
    kept_until = records.grace_ends_at(sub)
    return {
        "since": sub.past_due_since,
        "kept_until": kept_until,
        "fallen_back": get_clock().now() >= kept_until,
        "payment_url": url,
    }


@bp.get("/billing/upgrade")
def upgrade_page() -> Page:
    """An upgrade the signed-in customer chose (the pricing page, the billing page): a first
    plan goes to checkout; a paid account gets an offer for that tier, quoted and paid like
    the gate's own (trigger `pricing_page`)."""
    session, clock = get_session(), get_clock()
    account_id = _account_id()
    tier_id = request.args.get("tier", "")
    account = records.account_of(session, account_id)
    sub = records.live_subscription(account)
    if sub is None:
        interval = request.args.get("interval", "month")
        return redirect(
            url_for(
                "billing.checkout_page",
                t=request.args["t"],
                tier=tier_id,
                interval=interval,
                currency=request.args.get("currency") or None,
                return_url=_return_url(),
            )
        )
    from gating import service as gate
    from gating.api import gate_settings

    config = current_app.config
    blocked = service.past_due_block(session, sub, clock.now())
    if blocked is not None:
        raise Conflict(blocked)
    entitlements = gate.load_entitlements(session, clock, account_id, gate_settings())
    if entitlements.tier is None:
        raise Conflict("This account has no plan to upgrade from: see the billing page.")
    held = cast(offers.Entitlements, entitlements)  # its tier is known now
    offer = offers.offer_for_tier(
        session, clock, account=account, entitlements=held, tier_id=tier_id
    )
    session.commit()
    return redirect(
        portal.offer_link(config, account_id, offer.id, _return_url(), billing=request.args["t"])
    )


@bp.route("/billing/checkout", methods=["GET", "POST"])
def checkout_page() -> Page:
    """A first paid subscription: the price, the trial, then confirm."""
    session, clock = get_session(), get_clock()
    account_id = _account_id()
    tier_id = request.values.get("tier", "")
    interval = request.values.get("interval", "month")
    catalog = store.load(session).catalog
    currency = request.values.get("currency") or catalog.default_currency
    code = request.values.get("code", "").strip()[:64] or None
    code_error, code_status = None, 422
    attempt = None
    try:
        if code is not None:
            attempt = service.claim_code_try(session, clock, account_id, code)
            session.commit()  # the try counts, whatever happens next
        plan, quote, trial_days = service.checkout_quote(
            session, clock, account_id, tier_id, interval, currency.lower(), code
        )
    except InvalidRequest as exc:
        if code is None:
            raise
        if isinstance(exc, service.TooManyCodes):
            session.rollback()
            code_status = 429
        elif attempt is not None and not (isinstance(exc.details, dict) and "code" in exc.details):
            service.code_accepted(session, attempt)  # refused for another reason than the code
            session.commit()
        # A code that does not apply: say why, and show the price without it.
        code_error, code = exc.message, None
        plan, quote, trial_days = service.checkout_quote(
            session, clock, account_id, tier_id, interval, currency.lower()
        )
    else:
        if attempt is not None:  # the code applies: not a refused try
            service.code_accepted(session, attempt)
            session.commit()
    if code is not None:  # shown as the catalog spells it
        promo = service.promotion_with_code(catalog, code)
        code = promo.code if promo is not None and promo.code else code
    notice = None
    if request.method == "POST" and code_error is None:
        done, notice = _submit(
            account_id,
            lambda: service.checkout(
                session,
                clock,
                _provider(),
                account_id,
                tier_id,
                interval,
                currency.lower(),
                expected_amount_due=_amount(),
                urls=_urls(account_id),
                code=code,
            ),
        )
        if done is not None:
            return done
    first = service.first_charge_after_trial(session, clock, plan, quote, code)
    ctx = _ctx(account_id)
    return render_template(
        "billing_checkout.html",
        plan=plan,
        quote=quote,
        first_charge=first,
        renewal=_checkout_renewal(account_id, catalog, plan, quote, code),
        yearly=_checkout_yearly(account_id, catalog, plan, code, ctx),
        trial_days=trial_days,
        currency=currency.lower(),
        notice=notice,
        code=code,
        code_error=code_error,
        **ctx,
    ), (code_status if code_error else 409 if notice else 200)


def _discount(catalog: Catalog, plan: Price, code: str | None, at: datetime) -> Discount | None:
    """The promotion the checkout of `plan` gives (its quote has checked the code)."""
    interval = plan.interval or "month"
    return service.checkout_discount(catalog, plan.item_id, interval, plan.currency, at, code)


def _checkout_renewal(
    account_id: str, catalog: Catalog, plan: Price, quote: Quote, code: str | None
) -> dict[str, Any]:
    """The plan's next renewal after today's charge, or after a trial after its first charge
    (UPSELL 5): its amount and day, as billing renews the subscription the checkout starts (a
    promotion for the first period only is not in it; the credit left after today is)."""
    start = quote.period_start  # when the subscription starts, and its promotion is given
    trial = quote.trial_end is not None
    state = SubscriptionState(
        plan=plan,
        addons=(),
        status="trialing" if trial else "active",
        period_start=quote.period_start,
        period_end=quote.period_end,
        trial_end=quote.trial_end,
        running_discount=running(
            _discount(catalog, plan, code, start), plan, start, charged=not trial
        ),
        balance=quote.ending_balance,
    )
    renewing, amount = ManualBilling(), 0
    for _ in range(2 if trial else 1):  # a trial: its first charge, then the renewal after it
        done = renewing.renew(RenewRequest("checkout-renewal", Customer(account_id), state, None))
        assert done.subscription is not None and done.charge is not None  # (not canceled)
        state, amount = done.subscription, done.charge.amount_due
    return {"amount": amount, "at": state.period_start}


def _checkout_yearly(
    account_id: str, catalog: Catalog, plan: Price, code: str | None, ctx: dict[str, Any]
) -> dict[str, Any] | None:
    """The one alternative to a monthly plan (UPSELL 7): the same tier paid yearly, with its
    saving and what it costs today (or after the trial), quoted as its own checkout page
    quotes it; with the typed code where the code applies to it. None: the plan is yearly,
    or the tier is not sold yearly in this currency."""
    tier = catalog.tier(plan.item_id)
    yearly = tier.price("year", plan.currency) if tier is not None else None
    if plan.interval != "month" or yearly is None:
        return None
    session, clock = get_session(), get_clock()
    kept = code

    def quoted(typed: str | None) -> tuple[Price, Quote, int]:
        return service.checkout_quote(
            session, clock, account_id, plan.item_id, "year", plan.currency, typed
        )

    try:
        year_plan, quote, _ = quoted(code)
    except InvalidRequest:
        if code is None:
            return None  # not sold yearly after all
        kept = None  # the code is for monthly billing only: the yearly price without it
        year_plan, quote, _ = quoted(None)
    discount = _discount(catalog, year_plan, kept, quote.period_start)
    discounted = any(line.amount < 0 for line in quote.lines)
    first = service.first_charge_after_trial(session, clock, year_plan, quote, kept)
    url = url_for(
        "billing.checkout_page",
        t=ctx["token"],
        tier=plan.item_id,
        interval="year",
        currency=plan.currency,
        code=kept,
        return_url=ctx["return_url"],
    )
    return {
        "amount": year_plan.amount,
        "saving": yearly_saving(plan.amount, year_plan.amount),
        "due_today": quote.amount_due,
        "first_charge": first[0] if first else None,
        "trial_end": quote.trial_end,
        "promotion": first[1] if first else discount.name if discounted and discount else None,
        "code": kept,
        "code_left_out": code if kept is None else None,
        "url": url,
    }


@bp.route("/billing/yearly", methods=["GET", "POST"])
def yearly_page() -> Page:
    """Switch monthly -> yearly now, prorated, with the amount due today shown first."""
    session, clock = get_session(), get_clock()
    account_id = _account_id()
    notice = None
    if request.method == "POST":
        done, notice = _submit(
            account_id,
            lambda: service.switch_to_yearly(
                session,
                clock,
                _provider(),
                account_id,
                proration_date=_at(),
                expected_amount_due=_amount(),
                urls=_urls(account_id),
            ),
        )
        if done is not None:
            return done
    at = clock.now()
    quote, withheld = service.yearly_quote(session, clock, account_id, at, _provider())
    after_trial = None
    if quote.trial_end is not None:  # nothing is charged today: the yearly price is, then
        after_trial = _yearly_after_trial(account_id, at, promoted=withheld is None)
    return render_template(
        "billing_yearly.html",
        quote=quote,
        withheld=withheld,
        after_trial=after_trial,
        at=at.isoformat(),
        notice=notice,
        **_ctx(account_id),
    ), (409 if notice else 200)


def _yearly_after_trial(account_id: str, at: datetime, *, promoted: bool) -> int:
    """What switching to yearly during a trial charges when the trial ends: the yearly plan and
    add-ons (with the catalog's yearly promotion unless the provider withholds it)."""
    session = get_session()
    _, sub = records.live_or_conflict(session, account_id)
    state = records.state_of(session, sub)
    catalog = store.load(session).catalog
    tier = catalog.tier(sub.tier_id)
    plan = records.tier_price(catalog, sub.tier_id, "year", sub.currency)
    addons = records.reprice(catalog, state.addons, "year", sub.currency)
    promo = catalog.automatic_promotion(tier, "year", sub.currency, at) if tier else None
    discount = records.discount_for(catalog, promo.id, sub.currency) if promo else None
    switched = replace(state, plan=plan, addons=addons, next_plan=None, next_addons=None)
    return renewal_quote(switched, discount if promoted else None).amount_due


@bp.route("/billing/downgrade", methods=["GET", "POST"])
def downgrade_page() -> Page:
    """A downgrade (or yearly -> monthly) at the period end: the loss spelled out, then confirm.
    A confirm from a page computed for another state of the plan schedules nothing: the page
    is shown again (409) with the loss as it is now."""
    session, clock = get_session(), get_clock()
    account_id = _account_id()
    tier_id = request.values.get("tier", "")
    interval = request.values.get("interval") or None
    notice = None
    if request.method == "POST":
        done, notice = _submit(
            account_id,
            lambda: downgrade.confirm_downgrade(
                session, clock, _provider(), account_id, tier_id, interval, shown=_shown()
            ),
            _scheduled_page,
        )
        if done is not None:
            return done
    preview = downgrade.downgrade_preview(session, clock, account_id, tier_id, interval)
    return render_template(
        "billing_downgrade.html",
        preview=preview,
        tier_id=tier_id,
        interval=preview.interval,
        notice=notice,
        **_ctx(account_id),
    ), (409 if notice else 200)


@bp.route("/billing/cancel", methods=["GET", "POST"])
def cancel_page() -> Page:
    """Cancel at the period end: the loss spelled out, then confirm (refused as a downgrade's
    is, when the page no longer matches the plan)."""
    session, clock = get_session(), get_clock()
    account_id = _account_id()
    notice = None
    if request.method == "POST":
        done, notice = _submit(
            account_id,
            lambda: downgrade.cancel(session, clock, _provider(), account_id, shown=_shown()),
            _scheduled_page,
        )
        if done is not None:
            return done
    preview = downgrade.downgrade_preview(session, clock, account_id, None)
    return render_template(
        "billing_downgrade.html",
        preview=preview,
        tier_id="",
        interval=preview.interval,
        notice=notice,
        **_ctx(account_id),
    ), (409 if notice else 200)


def _shown() -> str:
    """The fingerprint of the loss the confirmed page showed ("": a page without one)."""
    return request.form.get("shown", "")


@bp.post("/billing/resume")
def resume_page() -> Page:
    """Keep the current plan: clear a scheduled downgrade or cancellation. Its form carries no
    fingerprint: whatever was scheduled since the page was opened, resuming keeps the plan the
    account is on now and charges nothing, and the change can be scheduled again."""
    session, clock = get_session(), get_clock()
    account_id = _account_id()
    result = downgrade.resume(session, clock, _provider(), account_id)
    session.commit()
    return _scheduled_page(result, account_id)


def _scheduled_page(result: service.FlowResult, account_id: str) -> Page:
    if result.status is not service.FlowStatus.DONE:
        return _done(result, account_id)
    return render_template("billing_scheduled.html", message=result.message, **_ctx(account_id))


@bp.route("/billing/addons/<addon_id>", methods=["GET", "POST"])
def addon_page(addon_id: str) -> Page:
    """Buy an add-on: eligibility, the amount due today, then confirm."""
    session, clock = get_session(), get_clock()
    account_id = _account_id()
    notice = None
    if request.method == "POST":
        done, notice = _submit(
            account_id,
            lambda: service.buy_addon(
                session,
                clock,
                _provider(),
                account_id,
                addon_id,
                proration_date=_at(),
                expected_amount_due=_amount(),
                urls=_urls(account_id),
                offer_id=request.form.get("offer") or None,
            ),
        )
        if done is not None:
            return done
    at = clock.now()
    price, due = service.addon_quote(session, clock, account_id, addon_id, at)
    offer_id = request.values.get("offer") or None
    dismiss_url = None
    if offer_id:  # from the post-purchase cross-sell
        offer = offers.get_offer(session, offer_id, account_id=account_id)
        if offer.addon_id != addon_id or offer.to_tier_id is not None:
            raise NotFound(f"Offer {offer_id!r} is not an offer for this add-on.")
        if offer.status is OfferStatus.SHOWN and request.method == "GET":  # the click
            offers.record_event(session, clock, offer.id, "clicked", account_id=account_id)
            session.commit()
        follow_up = offer.trigger is OfferTrigger.POST_PURCHASE and offer.addon_id == addon_id
        if follow_up and offer.status not in offers.DONE:  # its "Not now" is recorded
            dismiss_url = _offer_url(offer, account_id, "billing.offer_dismiss")
    catalog = store.load(session).catalog
    addon = catalog.addon(addon_id)
    sub = records.live_subscription(records.account_of(session, account_id))
    return render_template(
        "billing_addon.html",
        price=price,
        due=due,
        addon=addon,
        withdrawn=_withdrawn(catalog, sub, price.name) if price.interval else None,
        # During a trial a recurring add-on is free too, first charged with the plan at its end.
        trial_end=sub.trial_end
        if sub is not None
        and sub.status is SubscriptionStatus.TRIALING
        and sub.trial_end is not None
        and sub.trial_end > clock.now()
        else None,
        at=at.isoformat(),
        offer_id=offer_id,
        dismiss_url=dismiss_url,
        notice=notice,
        bought=service.one_time_bought(session, account_id, catalog).get(addon_id),
        **_ctx(account_id),
    ), (409 if notice else 200)


def _withdrawn(catalog: Catalog, sub: Subscription | None, name: str) -> str | None:
    """What adding a recurring add-on now withdraws: a change of plan takes effect at once
    (prorated), so a cancellation or move scheduled for the period end no longer happens, and
    an add-on the customer removed ends now (credited) instead of at the period end."""
    if sub is None:
        return None
    day = f"{sub.current_period_end:%B} {sub.current_period_end.day}"
    said = []
    if sub.cancel_at_period_end:
        said.append(
            f"Your plan is set to end on {day}. Adding {name} keeps it: "
            "the cancellation is withdrawn."
        )
    elif sub.scheduled_tier_id or sub.scheduled_interval:
        tier = catalog.tier(sub.scheduled_tier_id or sub.tier_id)
        move = tier.name if tier is not None else sub.scheduled_tier_id
        billed = f", billed {sub.scheduled_interval}ly" if sub.scheduled_interval else ""
        said.append(
            f"Your move to {move}{billed} on {day} is withdrawn if you add {name}: "
            "you stay on your current plan."
        )
    removed = records.removed_addons(catalog, records.state_of(get_session(), sub))
    if removed:
        names = sorted((a.name if (a := catalog.addon(i)) else i) for i in removed)
        ends = "ends" if len(names) == 1 else "end"
        said.append(
            f"{' and '.join(names)}, which you removed, {ends} now instead of on {day} if you "
            f"add {name}; the unused time is credited in the amount due today."
        )
    return " ".join(said) or None


@bp.post("/billing/addons/<addon_id>/remove")
def addon_remove(addon_id: str) -> Page:
    """Remove a recurring add-on at the period end."""
    session, clock = get_session(), get_clock()
    account_id = _account_id()
    result = service.remove_addon(session, clock, _provider(), account_id, addon_id)
    session.commit()
    return _scheduled_page(result, account_id)


@bp.post("/billing/addons/<addon_id>/keep")
def addon_keep(addon_id: str) -> Page:
    """Keep a recurring add-on the customer removed, before the period end."""
    session, clock = get_session(), get_clock()
    account_id = _account_id()
    result = service.keep_addon(session, clock, _provider(), account_id, addon_id)
    session.commit()
    return _scheduled_page(result, account_id)


@bp.get("/billing/changes/<change_id>")
def change_page(change_id: str) -> Page:
    """The success page of an account flow."""
    account_id = _account_id()
    change = get_session().get(BillingChange, change_id)
    if change is None or change.account_id != account_id:
        raise NotFound(f"Change {change_id!r} does not exist for this account.")
    only = g.get("billing_only")
    if only is not None and (change.kind != "addon" or change.request.get("addon") != only):
        raise Forbidden(portal.ONLY_ADDON)  # a token for one add-on: that purchase's outcome
    return _success_page(change, account_id)
