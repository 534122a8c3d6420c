"""The pricing comparison table as a view model: pure, built from a Catalog, no Flask.

The page (templates/pricing.html) and `GET /v1/catalog` both render this one model, so the HTML
table and the JSON a host app renders its own table from never disagree. Prices for both
intervals are always present (the page switches between them without a reload); `interval`
says which one is selected.

Plan buttons lead only where the caller says (`PlanLinks`): this module builds no URLs. A button
with nowhere to go is disabled with a note saying why, never a link to nowhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass, replace
from datetime import datetime
from enum import Enum
from typing import Any

from tiers.model import (
    AddOn,
    AddOnBilling,
    Catalog,
    Feature,
    FeatureKind,
    Interval,
    Promotion,
    ResetPeriod,
    Tier,
)
from tiers.money import (
    DEFAULT_LOCALE,
    YearlySaving,
    currency_name,
    format_count,
    format_money,
    monthly_equivalent,
    yearly_saving,
)

RESET_SUFFIX = {
    ResetPeriod.MONTH: " / month",
    ResetPeriod.DAY: " / day",
    ResetPeriod.BILLING_PERIOD: " / billing period",
}
INTERVAL_ADJECTIVE = {Interval.MONTH: "monthly", Interval.YEAR: "yearly"}


@dataclass(frozen=True)
class PromotionPrice:
    """A promotion applied to one tier price: what is really charged, and for how long."""

    promotion_id: str
    name: str
    amount: int
    text: str  # "$232.00 for the first year, then $290.00 / year"
    code: str | None
    limited_time: bool


@dataclass(frozen=True)
class PriceView:
    interval: str
    amount: int | None  # minor units; 0 for a free tier; None: custom or not sold this way
    text: str  # "$29.00", "Free", "Custom", "Monthly billing only"
    per: str  # "/ month", "/ year", "" for free and custom
    monthly_equivalent: int | None = None  # yearly prices only
    monthly_equivalent_text: str = ""  # "$24.17 / month, billed yearly"
    saving: YearlySaving | None = None  # yearly prices only
    saving_text: str = ""  # "2 months free"
    promotion: PromotionPrice | None = None


@dataclass(frozen=True)
class CallToAction:
    label: str  # "Start free", "Start 14-day trial", "Upgrade", "Contact sales", ...
    href: str | None  # None: the customer's own plan, or nowhere to go (`note` says why)
    kind: str  # "primary" (the recommended tier's; with none, every move up) | "secondary"
    # | "current"
    note: str = ""  # why a button without `href` is disabled
    # `href` carries the page's interval: a first plan is bought at it; a subscriber's
    # upgrade is quoted at the plan's own interval with the yearly price as its alternative
    # (one primary offer, one alternative). A page that switches the interval without a
    # reload changes it there. A move down keeps the subscription's own.
    follows_interval: bool = False


LinkTo = Callable[[str, str], str]  # (tier id, interval) -> URL


@dataclass(frozen=True)
class PlanLinks:
    """Where the plan buttons lead, as the page's caller knows it.

    `upgrade` and `downgrade` serve a known account (the page opened with a signed link):
    tiergate's checkout, billing or downgrade pages. `signup` serves a visitor: the host app's
    sign-up page. Contact-sales tiers lead to the catalog's `contact_sales_url`."""

    upgrade: LinkTo | None = None
    downgrade: LinkTo | None = None
    signup: LinkTo | None = None
    # For a known account: "up" / "down" / None for each tier, as its billing can move it (an
    # upgrade quoted now, a change at the period end, or neither, say from a legacy plan to
    # a dearer tier lacking one of its features), or NOT_SOLD at the plan's interval.
    # None: ranked by price on the page.
    moves: Callable[[str], str | None] | None = None
    # False for an account that has had a plan: one trial per account, so none is offered.
    trials: bool = True


NO_MOVE_NOTE = "Your plan includes something this plan does not: contact us to change to it."
NOT_SOLD = "not_sold"  # a move: the tier is not sold at the plan's billing interval
NOT_SOLD_NOTE = (
    "This plan is not sold with your billing interval: switch your billing interval first, "
    "or contact us."
)


# Why a button is disabled when the caller gave no destination for it.
NO_SIGNUP_NOTE = "Sign up in the app to choose this plan."
NO_ACCOUNT_NOTE = "Change plans from Billing in the app."
NO_SALES_NOTE = "Contact us to discuss this plan."


@dataclass(frozen=True)
class TierColumn:
    id: str
    name: str
    tagline: str
    free: bool
    contact_sales: bool
    trial_days: int
    trial_text: str  # "14-day free trial" or ""
    recommended: bool
    current: bool
    prices: dict[str, PriceView]  # interval -> price, both intervals
    cta: CallToAction

    @property
    def badge(self) -> str:
        return "Your plan" if self.current else "Recommended" if self.recommended else ""


@dataclass(frozen=True)
class Cell:
    tier_id: str
    text: str  # "10 projects", "Unlimited", "100,000 API calls / month", "Included"
    included: bool
    boolean: bool  # render a checkmark (or a dash) with `text` as accessible text


@dataclass(frozen=True)
class FeatureRow:
    id: str
    name: str
    description: str
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class FeatureGroup:
    name: str
    rows: tuple[FeatureRow, ...]


@dataclass(frozen=True)
class AddOnView:
    id: str
    name: str
    description: str
    billing: str
    prices: dict[str, str]  # interval (or "once") -> "$49.00 / month", "$299.00 one-time"
    included_in: tuple[str, ...]  # listed tier names
    available_to: tuple[str, ...]  # listed tier names that may buy it
    notes: tuple[str, ...]  # "Included in Business and Enterprise", "Available on Starter and Pro"


@dataclass(frozen=True)
class PromotionBanner:
    id: str
    name: str
    description: str
    limited_time: bool  # only when the promotion really ends
    ends_at: datetime | None
    ends_text: str  # "Ends March 31, 2027, 00:00 UTC" or ""
    code: str | None


@dataclass(frozen=True)
class PricingTable:
    catalog_name: str
    interval: str
    currency: str
    currencies: tuple[str, ...]
    currency_names: dict[str, str]  # "usd" -> "US Dollar"
    intervals: tuple[str, ...]  # intervals any listed tier is sold at
    tiers: tuple[TierColumn, ...]
    groups: tuple[FeatureGroup, ...]
    addons: tuple[AddOnView, ...]
    promotions: tuple[PromotionBanner, ...]
    best_saving_text: str  # "Save up to 2 months" or ""
    current_tier_unlisted: str | None  # name of the customer's hidden (legacy) tier

    def to_json(self) -> dict[str, Any]:
        """The JSON form served by GET /v1/catalog (`table`)."""
        document: dict[str, Any] = _jsonable(self)
        return document


@dataclass(frozen=True)
class Options:
    interval: Interval
    currency: str
    problems: tuple[str, ...]  # per ignored query parameter: what is wrong, and the fallback
    errors: tuple[str, ...] = ()  # the same, without the fallback (for a strict API answer)


def resolve_options(catalog: Catalog, interval: str | None, currency: str | None) -> Options:
    """Interval and currency from query parameters; a bad value falls back and is explained."""
    problems: list[str] = []
    errors: list[str] = []
    chosen_interval = Interval.MONTH
    if interval:
        try:
            chosen_interval = Interval(interval.strip().lower())
        except ValueError:
            errors.append(f"Unknown billing interval '{interval}': use month or year.")
            problems.append(f"{errors[-1]} Showing monthly prices.")
    chosen_currency = catalog.default_currency
    if currency:
        if currency.strip().lower() in catalog.currencies:
            chosen_currency = currency.strip().lower()
        else:
            offered = ", ".join(c.upper() for c in catalog.currencies)
            errors.append(f"Prices are not available in '{currency}' (offered: {offered}).")
            problems.append(f"{errors[-1]} Showing {catalog.default_currency.upper()}.")
    return Options(chosen_interval, chosen_currency, tuple(problems), tuple(errors))


def build_pricing_table(
    catalog: Catalog,
    *,
    interval: Interval | str,
    currency: str,
    now: datetime,
    current_tier_id: str | None = None,
    recommended_tier_id: str | None = None,
    links: PlanLinks | None = None,
    locale: str = DEFAULT_LOCALE,
    held: Tier | None = None,
) -> PricingTable:
    """The comparison table of the catalog's listed tiers for one interval and currency.
    `held`: the customer's tier as their own (grandfathered) catalog version prices it, so
    their column states what they pay."""
    interval = Interval(interval)
    currency = currency.lower()
    listed = catalog.listed_tiers
    current = catalog.tier(current_tier_id) if current_tier_id else None
    recommended = _recommended(listed, recommended_tier_id, current, currency)
    promotions = catalog.active_promotions(now)
    columns = tuple(
        _column(
            catalog,
            tier,
            interval=interval,
            currency=currency,
            promotions=promotions,
            recommended=recommended,
            current=current,
            links=links or PlanLinks(),
            locale=locale,
            priced=held if held is not None and held.id == tier.id else tier,
        )
        for tier in listed
    )
    return PricingTable(
        catalog_name=catalog.name,
        interval=interval.value,
        currency=currency,
        currencies=catalog.currencies,
        currency_names={c: currency_name(c, locale) for c in catalog.currencies},
        intervals=tuple(i.value for i in Interval if any(i in t.prices for t in listed)),
        tiers=columns,
        groups=_groups(catalog, listed, locale),
        addons=tuple(_addon(a, listed, currency, locale) for a in catalog.addons),
        promotions=tuple(_banner(p) for p in promotions if _advertised(p, listed, currency)),
        best_saving_text=_best_saving(columns),
        current_tier_unlisted=current.name if current is not None and current.hidden else None,
    )


# --- tiers -------------------------------------------------------------------------------------


def _recommended(
    listed: tuple[Tier, ...], asked: str | None, current: Tier | None, currency: str
) -> Tier | None:
    """The tier to highlight: the one asked for, else the catalog's choice, else the next one up.

    A customer is never recommended their own tier or one below it (rule 8: the value of the
    higher tier); then the cheapest listed tier above theirs is, if there is one."""

    def above_current(tier: Tier) -> bool:
        return current is None or _rank(tier, currency) > _rank(current, currency)

    choices = [t for t in listed if t.id == asked] + [t for t in listed if t.recommended]
    chosen = next((t for t in choices if above_current(t)), None)
    if chosen is None and current is not None:
        higher = [t for t in listed if above_current(t)]
        chosen = min(higher, key=lambda t: _rank(t, currency), default=None)
    return chosen


def _column(
    catalog: Catalog,
    tier: Tier,
    *,
    interval: Interval,
    currency: str,
    promotions: list[Promotion],
    recommended: Tier | None,
    current: Tier | None,
    links: PlanLinks,
    locale: str,
    priced: Tier,
) -> TierColumn:
    prices = {
        i.value: _price(priced, i, currency, promotions, locale)
        for i in (Interval.MONTH, Interval.YEAR)
    }
    is_current = current is not None and current.id == tier.id
    offered = tier.trial_days and not tier.contact_sales and links.trials
    trial = tier.trial_days if offered else 0
    return TierColumn(
        id=tier.id,
        name=tier.name,
        tagline=tier.tagline,
        free=tier.free,
        contact_sales=tier.contact_sales,
        trial_days=trial,
        trial_text=f"{trial}-day free trial" if trial else "",
        recommended=recommended is not None and recommended.id == tier.id,
        current=is_current,
        prices=prices,
        cta=_cta(catalog, tier, current, trial, currency, interval, links, recommended),
    )


def _price(
    tier: Tier, interval: Interval, currency: str, promotions: list[Promotion], locale: str
) -> PriceView:
    if tier.contact_sales:
        return PriceView(interval.value, None, "Custom", "")
    if tier.free:
        return PriceView(interval.value, 0, "Free", "")
    amount = tier.price(interval, currency)
    if amount is None:
        other = next(iter(tier.intervals()), interval)
        return PriceView(
            interval.value, None, f"{INTERVAL_ADJECTIVE[other].capitalize()} billing only", ""
        )
    view = PriceView(
        interval.value, amount, format_money(amount, currency, locale), f"/ {interval}"
    )
    if interval is Interval.YEAR:
        equivalent = monthly_equivalent(amount)
        monthly = tier.price(Interval.MONTH, currency)
        saving = yearly_saving(monthly, amount) if monthly is not None else None
        view = replace(
            view,
            monthly_equivalent=equivalent,
            monthly_equivalent_text=f"{format_money(equivalent, currency, locale)} / month, "
            "billed yearly",
            saving=saving,
            saving_text=saving.text(currency, locale) if saving else "",
        )
    promotion = _best_promotion(tier, interval, amount, currency, promotions, locale)
    return replace(view, promotion=promotion)


def _best_promotion(
    tier: Tier,
    interval: Interval,
    amount: int,
    currency: str,
    promotions: list[Promotion],
    locale: str,
) -> PromotionPrice | None:
    # One coupon per subscription (as in Stripe): the automatic one that saves the most, which
    # is the one charged (Catalog.automatic_promotion); without one, the best code to type.
    candidates = [(p.takes_off(tier, interval, currency), p) for p in promotions]
    candidates = [(off, p) for off, p in candidates if off > 0]
    automatic = [(off, p) for off, p in candidates if p.code is None]
    if not candidates:
        return None
    off, promo = max(automatic or candidates, key=lambda c: c[0])  # the first on a tie
    charged = amount - off
    regular = f"{format_money(amount, currency, locale)} / {interval}"
    first = format_money(charged, currency, locale)
    if promo.duration == "forever":
        text = f"{first} / {interval}"
    elif promo.duration == "repeating" and promo.duration_in_months:
        span = _repeating_span(promo.duration_in_months, interval)
        text = f"{first} / {interval} {span}, then {regular}"
    else:
        text = f"{first} for the first {interval}, then {regular}"
    if promo.code:
        text += f" with code {promo.code}"
    return PromotionPrice(
        promo.id, promo.name, charged, text, promo.code, promo.ends_at is not None
    )


def _repeating_span(months: int, interval: Interval) -> str:
    if interval is Interval.YEAR:
        years = -(-months // 12)
        return "for the first year" if years == 1 else f"for the first {years} years"
    return "for the first month" if months == 1 else f"for the first {months} months"


def _advertised(promotion: Promotion, listed: tuple[Tier, ...], currency: str) -> bool:
    """Whether the page may carry the promotion's banner: only when it takes something off a
    listed tier's price in the page's currency (rule 6: no discount the customer cannot get).
    Either interval counts: the page switches between them without a reload."""
    return any(promotion.takes_off(t, i, currency) > 0 for t in listed for i in Interval)


def _cta(
    catalog: Catalog,
    tier: Tier,
    current: Tier | None,
    trial: int,
    currency: str,
    interval: Interval,
    links: PlanLinks,
    recommended: Tier | None,
) -> CallToAction:
    is_recommended = recommended is not None and recommended.id == tier.id

    def emphasis(moves_up: bool) -> str:
        # One primary button (rule 7): the recommended tier's; without one, every move up's.
        return "primary" if is_recommended or (moves_up and recommended is None) else "secondary"

    if current is not None and tier.id == current.id:  # before contact sales: their own plan
        return CallToAction("Your plan", None, "current")
    if tier.contact_sales:
        url = catalog.offers.contact_sales_url
        return CallToAction("Contact sales", url, emphasis(False), "" if url else NO_SALES_NOTE)
    if links.moves is not None:  # the account's billing says which way each tier is
        move = links.moves(tier.id)
        if move == "up":
            return _link("Upgrade", emphasis(True), links.upgrade, tier, interval)
        if move == "down":
            switch = _link(f"Switch to {tier.name}", "secondary", links.downgrade, tier, interval)
            return replace(switch, follows_interval=False)
        note = NOT_SOLD_NOTE if move == NOT_SOLD else NO_MOVE_NOTE
        return CallToAction(f"Switch to {tier.name}", None, "secondary", note)
    if current is not None:
        if _rank(tier, currency) <= _rank(current, currency):  # never the recommended one
            switch = _link(f"Switch to {tier.name}", "secondary", links.downgrade, tier, interval)
            return replace(switch, follows_interval=False)
        return _link("Upgrade", emphasis(True), links.upgrade, tier, interval)
    # A visitor: they start at the host app's sign-up, when the caller gave one.
    if tier.free:
        return _link("Start free", emphasis(False), links.signup, tier, interval, NO_SIGNUP_NOTE)
    label = f"Start {trial}-day trial" if trial else "Upgrade"
    return _link(label, emphasis(True), links.signup, tier, interval, NO_SIGNUP_NOTE)


def _link(
    label: str,
    kind: str,
    link_to: LinkTo | None,
    tier: Tier,
    interval: Interval,
    missing: str = NO_ACCOUNT_NOTE,
) -> CallToAction:
    """A button to `link_to`'s page for `tier`, or disabled with `missing` when there is none."""
    if link_to is None:
        return CallToAction(label, None, kind, missing)
    return CallToAction(label, link_to(tier.id, interval.value), kind, follows_interval=True)


def _rank(tier: Tier, currency: str) -> tuple[int, int]:
    """Up or down from the current tier: by yearly spend, since a legacy tier sits anywhere."""
    if tier.contact_sales:
        return (1, 0)
    monthly = tier.price(Interval.MONTH, currency)
    yearly = tier.price(Interval.YEAR, currency)
    spend = 12 * monthly if monthly is not None else yearly
    return (0, spend if spend is not None else tier.order)


def _best_saving(columns: tuple[TierColumn, ...]) -> str:
    """The yearly switch's label: "2 months free" when every saving is whole months."""
    savings = [s for c in columns if (s := c.prices[Interval.YEAR.value].saving) is not None]
    if not savings:
        return ""
    if all(s.months_free is not None for s in savings):
        best = max(s.months_free or 0 for s in savings)
        return f"Up to {best} month{'s' if best > 1 else ''} free"
    return f"Save up to {max(s.percent for s in savings)} %"


# --- features ----------------------------------------------------------------------------------


def _groups(catalog: Catalog, tiers: tuple[Tier, ...], locale: str) -> tuple[FeatureGroup, ...]:
    grouped: dict[str, list[FeatureRow]] = {}
    for feature in catalog.features.values():
        cells = tuple(_cell(feature, tier, locale) for tier in tiers)
        row = FeatureRow(feature.id, feature.name, feature.description, cells)
        grouped.setdefault(feature.group, []).append(row)
    return tuple(FeatureGroup(name, tuple(rows)) for name, rows in grouped.items())


def _cell(feature: Feature, tier: Tier, locale: str) -> Cell:
    grant = tier.grant(feature.id)
    if feature.kind is FeatureKind.BOOLEAN or not grant.enabled:
        text = "Included" if grant.enabled else "Not included"
        return Cell(tier.id, text, grant.enabled, boolean=True)
    if grant.limit is None:
        return Cell(tier.id, "Unlimited", True, boolean=False)
    text = f"{format_count(grant.limit, locale)} {feature.units(grant.limit)}"
    if feature.kind is FeatureKind.COUNTER and feature.resets is not None:
        text += RESET_SUFFIX[feature.resets]
    return Cell(tier.id, text, True, boolean=False)


# --- add-ons and promotions --------------------------------------------------------------------


def _addon(addon: AddOn, tiers: tuple[Tier, ...], currency: str, locale: str) -> AddOnView:
    prices: dict[str, str] = {}
    for key, by_currency in addon.prices.items():
        amount = by_currency.get(currency)
        if amount is None:
            continue
        per = "one-time" if addon.billing is AddOnBilling.ONE_TIME else f"/ {key}"
        prices[key] = f"{format_money(amount, currency, locale)} {per}"
    included = tuple(t.name for t in tiers if t.id in addon.included_in)
    available = tuple(t.name for t in tiers if addon.purchasable_by(t) and not t.contact_sales)
    notes = []
    if included:
        notes.append(f"Included in {_and(included)}")
    if available:
        notes.append(f"Available on {_and(available)}")
    return AddOnView(
        id=addon.id,
        name=addon.name,
        description=addon.description,
        billing=addon.billing.value,
        prices=prices,
        included_in=included,
        available_to=available,
        notes=tuple(notes),
    )


def _banner(promotion: Promotion) -> PromotionBanner:
    ends = promotion.ends_at
    return PromotionBanner(
        id=promotion.id,
        name=promotion.name,
        description=promotion.description,
        limited_time=ends is not None,
        ends_at=ends,
        ends_text=f"Ends {ends:%B} {ends.day}, {ends:%Y, %H:%M} UTC" if ends else "",
        code=promotion.code,
    )


def _and(names: tuple[str, ...]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        out = {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
        if isinstance(value, TierColumn):
            out["badge"] = value.badge
        return out
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Enum):
        return value.value
    return value
