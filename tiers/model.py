"""The catalog domain model: plain frozen dataclasses, no Flask, no database, no floats.

A catalog is loaded from the product team's YAML (tiers/loader.py validates it), stored as a
canonical JSON document per published version (`to_document` / `from_document`), and read by the
gate, the offer policy, billing and the pricing table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

FORMAT_VERSION = 1


class FeatureKind(StrEnum):
    BOOLEAN = "boolean"  # on or off (SSO, audit log)
    COUNTER = "counter"  # metered, resets each period (API calls per month)
    GAUGE = "gauge"  # metered, never resets; set or changed (+/-) (projects, seats)


class ResetPeriod(StrEnum):
    MONTH = "month"  # calendar month, UTC
    DAY = "day"  # calendar day, UTC
    BILLING_PERIOD = "billing_period"  # the account's current billing period


class Interval(StrEnum):
    MONTH = "month"
    YEAR = "year"


class AddOnBilling(StrEnum):
    RECURRING = "recurring"  # an extra subscription item, billed each interval
    ONE_TIME = "one_time"  # charged once (onboarding package)


ONE_TIME_PRICE_KEY = "once"


@dataclass(frozen=True)
class Feature:
    id: str
    name: str
    kind: FeatureKind
    group: str = "Features"
    description: str = ""
    unit: str | None = None  # singular, e.g. "project"
    unit_plural: str | None = None  # e.g. "projects"
    resets: ResetPeriod | None = None  # counters only

    @property
    def metered(self) -> bool:
        return self.kind is not FeatureKind.BOOLEAN

    def units(self, n: int | None) -> str:
        """'project' or 'projects' for n (None means unlimited, plural)."""
        singular = self.unit or self.name.lower()
        plural = self.unit_plural or (singular if self.unit is None else singular + "s")
        return singular if n == 1 else plural


@dataclass(frozen=True)
class Grant:
    """What a tier (or add-on) grants for one feature.

    Boolean features: `enabled`. Metered features: `limit` units (None = unlimited; 0 = not
    included), an optional absolute `nudge_at` soft limit (None: the catalog's nudge threshold
    percent applies) and an `overage` allowance of units usable beyond the limit.
    """

    enabled: bool
    limit: int | None = 0
    nudge_at: int | None = None
    overage: int = 0

    @property
    def unlimited(self) -> bool:
        return self.enabled and self.limit is None


NOT_INCLUDED = Grant(enabled=False, limit=0)


@dataclass(frozen=True)
class Tier:
    id: str
    name: str
    order: int
    tagline: str = ""
    # interval -> currency -> amount in minor units. Empty for a free tier and contact-sales tiers.
    prices: Mapping[Interval, Mapping[str, int]] = field(default_factory=dict)
    trial_days: int = 0
    features: Mapping[str, Grant] = field(default_factory=dict)
    recommended: bool = False
    hidden: bool = False  # legacy: still serves existing subscribers, never offered or listed
    contact_sales: bool = False

    @property
    def free(self) -> bool:
        return not self.contact_sales and not self.prices

    @property
    def self_serve(self) -> bool:
        return not self.contact_sales and not self.hidden

    def grant(self, feature_id: str) -> Grant:
        return self.features.get(feature_id, NOT_INCLUDED)

    def price(self, interval: Interval | str, currency: str) -> int | None:
        """Recurring price in minor units; 0 for a free tier; None when not sold that way."""
        if self.free:
            return 0
        return self.prices.get(Interval(interval), {}).get(currency.lower())

    def intervals(self) -> list[Interval]:
        return [i for i in Interval if i in self.prices]


@dataclass(frozen=True)
class AddOn:
    id: str
    name: str
    billing: AddOnBilling
    description: str = ""
    # interval (or "once" for one-time) -> currency -> amount in minor units
    prices: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    available_to: tuple[str, ...] = ()  # tier ids that may buy it; empty = every paid tier
    included_in: tuple[str, ...] = ()  # tier ids that get it at no charge
    grants: Mapping[str, Grant] = field(default_factory=dict)  # metered limits add to the tier's
    support_level: str | None = None
    suggested_with_features: tuple[str, ...] = ()
    suggested_with_tiers: tuple[str, ...] = ()

    def price(self, interval: Interval | str | None, currency: str) -> int | None:
        key = ONE_TIME_PRICE_KEY if self.billing is AddOnBilling.ONE_TIME else str(interval)
        return self.prices.get(key, {}).get(currency.lower())

    def purchasable_by(self, tier: Tier) -> bool:
        if tier.id in self.included_in:
            return False
        if self.available_to:
            return tier.id in self.available_to
        return not tier.free


@dataclass(frozen=True)
class Promotion:
    id: str
    name: str
    description: str = ""
    percent_off: int | None = None  # 1..100
    amount_off: Mapping[str, int] = field(default_factory=dict)  # currency -> minor units
    tiers: tuple[str, ...] = ()  # empty = every paid tier
    intervals: tuple[Interval, ...] = ()  # empty = every interval
    starts_at: datetime | None = None
    ends_at: datetime | None = None  # None = no end: never shown as "limited time"
    duration: str = "once"  # once | forever | repeating (Stripe coupon durations)
    duration_in_months: int | None = None
    code: str | None = None  # customer-facing promotion code; None = applied automatically

    def active(self, now: datetime) -> bool:
        if self.starts_at and now < self.starts_at:
            return False
        return not (self.ends_at and now >= self.ends_at)

    def applies_to(self, tier_id: str, interval: Interval | str) -> bool:
        if self.tiers and tier_id not in self.tiers:
            return False
        return not (self.intervals and Interval(interval) not in self.intervals)

    def discount(self, amount: int, currency: str) -> int:
        """The discount on `amount` minor units: percent rounds half up, never exceeds amount."""
        if self.percent_off is not None:
            off = (amount * self.percent_off + 50) // 100
        else:
            off = self.amount_off.get(currency.lower(), 0)
        return max(0, min(off, amount))

    def takes_off(self, tier: Tier, interval: Interval | str, currency: str) -> int:
        """What it takes off `tier`'s price in `interval` and `currency` (0: it does not apply:
        another tier or interval, a free or contact-sales tier, no amount in that currency)."""
        price = tier.price(interval, currency)
        if tier.free or tier.contact_sales or price is None:
            return 0
        return self.discount(price, currency) if self.applies_to(tier.id, interval) else 0


@dataclass(frozen=True)
class OfferSettings:
    nudge_threshold_percent: int = 80
    dismissal_cooldown_days: int = 7
    price_jump_guard_percent: int = 25
    quote_valid_minutes: int = 30
    contact_sales_url: str | None = None


@dataclass(frozen=True)
class Catalog:
    name: str
    currencies: tuple[str, ...]  # lower-case ISO 4217; the first is the default
    features: Mapping[str, Feature]  # in display order
    tiers: tuple[Tier, ...]  # in tier order, lowest first
    addons: tuple[AddOn, ...] = ()
    promotions: tuple[Promotion, ...] = ()
    offers: OfferSettings = field(default_factory=OfferSettings)

    @property
    def default_currency(self) -> str:
        return self.currencies[0]

    def tier(self, tier_id: str) -> Tier | None:
        return next((t for t in self.tiers if t.id == tier_id), None)

    def addon(self, addon_id: str) -> AddOn | None:
        return next((a for a in self.addons if a.id == addon_id), None)

    def feature(self, feature_id: str) -> Feature | None:
        return self.features.get(feature_id)

    @property
    def free_tier(self) -> Tier | None:
        return next((t for t in self.tiers if t.free and not t.hidden), None)

    @property
    def listed_tiers(self) -> tuple[Tier, ...]:
        """Tiers shown on the pricing table and offered: every tier that is not hidden."""
        return tuple(t for t in self.tiers if not t.hidden)

    def active_promotions(self, now: datetime) -> list[Promotion]:
        return [p for p in self.promotions if p.active(now)]

    def automatic_promotion(
        self, tier: Tier, interval: Interval | str, currency: str, now: datetime
    ) -> Promotion | None:
        """The promotion applied without a code to `tier` in `interval` and `currency` at `now`:
        of the running ones that take something off its price, the one that takes off the most
        (the first in the catalog on a tie). One per subscription, as Stripe applies one
        coupon. The pricing page, the offers and the checkout all ask this one question."""
        best, most = None, 0
        for promo in self.active_promotions(now):
            off = promo.takes_off(tier, interval, currency) if promo.code is None else 0
            if off > most:
                best, most = promo, off
        return best

    # --- canonical JSON document -------------------------------------------------------------

    def to_document(self) -> dict[str, Any]:
        """The canonical, JSON-serialisable form stored with each published version."""
        return {
            "format": FORMAT_VERSION,
            "name": self.name,
            "currencies": list(self.currencies),
            "offers": {
                "nudge_threshold": self.offers.nudge_threshold_percent,
                "dismissal_cooldown_days": self.offers.dismissal_cooldown_days,
                "price_jump_guard": self.offers.price_jump_guard_percent,
                "quote_valid_minutes": self.offers.quote_valid_minutes,
                "contact_sales_url": self.offers.contact_sales_url,
            },
            "features": {
                f.id: {
                    "name": f.name,
                    "type": f.kind.value,
                    "group": f.group,
                    "description": f.description,
                    "unit": f.unit,
                    "unit_plural": f.unit_plural,
                    "resets": f.resets.value if f.resets else None,
                }
                for f in self.features.values()
            },
            "tiers": [
                {
                    "id": t.id,
                    "name": t.name,
                    "tagline": t.tagline,
                    "prices": {i.value: dict(p) for i, p in t.prices.items()},
                    "trial_days": t.trial_days,
                    "features": {fid: _grant_doc(g) for fid, g in t.features.items()},
                    "recommended": t.recommended,
                    "hidden": t.hidden,
                    "contact_sales": t.contact_sales,
                }
                for t in self.tiers
            ],
            "addons": [
                {
                    "id": a.id,
                    "name": a.name,
                    "description": a.description,
                    "billing": a.billing.value,
                    "prices": {k: dict(v) for k, v in a.prices.items()},
                    "available_to": list(a.available_to),
                    "included_in": list(a.included_in),
                    "grants": {fid: _grant_doc(g) for fid, g in a.grants.items()},
                    "support_level": a.support_level,
                    "suggested_with": {
                        "features": list(a.suggested_with_features),
                        "tiers": list(a.suggested_with_tiers),
                    },
                }
                for a in self.addons
            ],
            "promotions": [
                {
                    "id": p.id,
                    "name": p.name,
                    "description": p.description,
                    "percent_off": p.percent_off,
                    "amount_off": dict(p.amount_off),
                    "tiers": list(p.tiers),
                    "intervals": [i.value for i in p.intervals],
                    "starts_at": _iso(p.starts_at),
                    "ends_at": _iso(p.ends_at),
                    "duration": p.duration,
                    "duration_in_months": p.duration_in_months,
                    "code": p.code,
                }
                for p in self.promotions
            ],
        }

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Catalog:
        """Build from a canonical document (or an already-validated YAML mapping).

        Trusts its input: validation with file/path messages is tiers/loader.py's job.
        """
        offers = doc.get("offers") or {}
        features = {
            fid: Feature(
                id=fid,
                name=spec.get("name") or fid.replace("_", " ").capitalize(),
                kind=FeatureKind(spec.get("type", "boolean")),
                group=spec.get("group") or "Features",
                description=spec.get("description") or "",
                unit=spec.get("unit"),
                unit_plural=spec.get("unit_plural"),
                resets=ResetPeriod(spec["resets"]) if spec.get("resets") else None,
            )
            for fid, spec in (doc.get("features") or {}).items()
        }
        tiers = tuple(
            Tier(
                id=t["id"],
                name=t.get("name") or t["id"].capitalize(),
                order=index,
                tagline=t.get("tagline") or "",
                prices={
                    Interval(i): {c.lower(): int(a) for c, a in p.items()}
                    for i, p in (t.get("prices") or {}).items()
                },
                trial_days=int(t.get("trial_days") or 0),
                features={
                    fid: parse_grant(value, features[fid].kind)
                    for fid, value in (t.get("features") or {}).items()
                },
                recommended=bool(t.get("recommended")),
                hidden=bool(t.get("hidden")),
                contact_sales=bool(t.get("contact_sales")),
            )
            for index, t in enumerate(doc.get("tiers") or [])
        )
        addons = tuple(
            AddOn(
                id=a["id"],
                name=a.get("name") or a["id"],
                billing=AddOnBilling(a.get("billing", "recurring")),
                description=a.get("description") or "",
                prices={
                    k: {c.lower(): int(v) for c, v in p.items()}
                    for k, p in (a.get("prices") or {}).items()
                },
                available_to=tuple(a.get("available_to") or ()),
                included_in=tuple(a.get("included_in") or ()),
                grants={
                    fid: parse_grant(value, features[fid].kind)
                    for fid, value in (a.get("grants") or {}).items()
                },
                support_level=a.get("support_level"),
                suggested_with_features=tuple(
                    (a.get("suggested_with") or {}).get("features") or ()
                ),
                suggested_with_tiers=tuple((a.get("suggested_with") or {}).get("tiers") or ()),
            )
            for a in doc.get("addons") or []
        )
        promotions = tuple(
            Promotion(
                id=p["id"],
                name=p.get("name") or p["id"],
                description=p.get("description") or "",
                percent_off=p.get("percent_off"),
                amount_off={c.lower(): int(v) for c, v in (p.get("amount_off") or {}).items()},
                tiers=tuple(p.get("tiers") or ()),
                intervals=tuple(Interval(i) for i in p.get("intervals") or ()),
                starts_at=parse_instant(p.get("starts_at")),
                ends_at=parse_instant(p.get("ends_at")),
                duration=p.get("duration") or "once",
                duration_in_months=p.get("duration_in_months"),
                code=p.get("code"),
            )
            for p in doc.get("promotions") or []
        )
        currencies = tuple(c.lower() for c in doc.get("currencies") or ())
        return cls(
            name=doc.get("name") or "Catalog",
            currencies=currencies,
            features=features,
            tiers=tiers,
            addons=addons,
            promotions=promotions,
            offers=OfferSettings(
                nudge_threshold_percent=int(_pct(offers.get("nudge_threshold", 80))),
                dismissal_cooldown_days=int(offers.get("dismissal_cooldown_days", 7)),
                price_jump_guard_percent=int(_pct(offers.get("price_jump_guard", 25))),
                quote_valid_minutes=int(offers.get("quote_valid_minutes", 30)),
                contact_sales_url=offers.get("contact_sales_url"),
            ),
        )


UNLIMITED = "unlimited"


def parse_grant(value: Any, kind: FeatureKind) -> Grant:
    """A tier's value for one feature: `true`/`false`, an integer, `unlimited`, or a mapping
    `{limit, nudge_at, overage}` (also `{enabled}` for booleans)."""
    if isinstance(value, Mapping):
        if kind is FeatureKind.BOOLEAN:
            return Grant(enabled=bool(value.get("enabled", True)), limit=None)
        limit = value.get("limit", 0)
        limit = None if limit in (None, UNLIMITED) else int(limit)
        return Grant(
            enabled=limit is None or limit > 0,
            limit=limit,
            nudge_at=value.get("nudge_at"),
            overage=int(value.get("overage") or 0),
        )
    if kind is FeatureKind.BOOLEAN:
        return Grant(enabled=bool(value), limit=None)
    if value == UNLIMITED or value is None:
        return Grant(enabled=True, limit=None)
    if value is True:
        return Grant(enabled=True, limit=None)
    if value is False:
        return NOT_INCLUDED
    return Grant(enabled=int(value) > 0, limit=int(value))


def _grant_doc(grant: Grant) -> dict[str, Any]:
    return {
        "enabled": grant.enabled,
        "limit": grant.limit,
        "nudge_at": grant.nudge_at,
        "overage": grant.overage,
    }


def _pct(value: Any) -> int:
    if isinstance(value, str) and value.endswith("%"):
        return int(value[:-1])
    return int(value)


def parse_instant(value: Any) -> datetime | None:
    """An ISO date or datetime as aware UTC (a bare date is midnight UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None
