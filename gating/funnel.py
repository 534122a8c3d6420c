"""The offer funnel for the product team (UPSELL 10): conversion per trigger and feature.

The cohort is the offers created in [since, until); each counts once per step it reached by
`until`. A later step implies the earlier ones (a customer cannot click an offer they were not
shown, and an offer accepted through the API was clicked), so `shown >= clicked >= accepted >=
paid` always holds. An offer taken into a trial is paid when the trial's first charge is
paid, not when the trial starts (billing.records.invoice_settled). Conversion is paid / shown
in integer basis points (rounded down). The monthly recurring revenue added by a paid offer is
its new recurring amount (less a `forever` promotion) minus the old one, each normalised per
month (a yearly amount // 12), summed per currency.

An offer quoted again from another (its price expired, or the customer typed a promotion code)
continues that offer: the customer saw one offer, so the chain counts once, with every step any
of its offers reached, under the first offer's trigger and feature.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gating.models import Offer, OfferEvent, OfferStatus
from tiergate.clock import Clock
from tiergate.exceptions import InvalidRequest
from tiers import store
from tiers.model import Catalog
from tiers.money import format_money

# Each step and the events that prove it was reached.
STEPS: dict[str, tuple[OfferStatus, ...]] = {
    "shown": (
        OfferStatus.SHOWN,
        OfferStatus.CLICKED,
        OfferStatus.DISMISSED,
        OfferStatus.ACCEPTED,
        OfferStatus.PAID,
    ),
    "clicked": (OfferStatus.CLICKED, OfferStatus.ACCEPTED, OfferStatus.PAID),
    "dismissed": (OfferStatus.DISMISSED,),
    "accepted": (OfferStatus.ACCEPTED, OfferStatus.PAID),
    "paid": (OfferStatus.PAID,),
}


@dataclass
class FunnelRow:
    """The funnel of one group of offers (a trigger, a feature, or both, or all)."""

    trigger: str | None
    feature: str | None
    created: int = 0
    shown: int = 0
    clicked: int = 0
    dismissed: int = 0
    accepted: int = 0
    paid: int = 0
    mrr_added: dict[str, int] = field(default_factory=dict)  # currency -> minor units per month

    @property
    def conversion_bp(self) -> int | None:
        """paid / shown in basis points (10000 = 100 %), rounded down; None when none was shown."""
        return self.paid * 10000 // self.shown if self.shown else None

    def to_json(self) -> dict[str, object]:
        return {
            "trigger": self.trigger,
            "feature": self.feature,
            "created": self.created,
            "shown": self.shown,
            "clicked": self.clicked,
            "dismissed": self.dismissed,
            "accepted": self.accepted,
            "paid": self.paid,
            "conversion_bp": self.conversion_bp,
            "mrr_added": dict(sorted(self.mrr_added.items())),
        }


@dataclass(frozen=True)
class Funnel:
    since: datetime
    until: datetime
    total: FunnelRow
    by_trigger: tuple[FunnelRow, ...]
    by_feature: tuple[FunnelRow, ...]
    by_trigger_and_feature: tuple[FunnelRow, ...]


def funnel(session: Session, *, since: datetime, until: datetime) -> Funnel:
    """Offers created in [since, until): counts per step, conversion and recurring revenue added."""
    if since.tzinfo is None or until.tzinfo is None:
        raise InvalidRequest("since and until must be timezone-aware (UTC) datetimes")
    if until <= since:
        raise InvalidRequest(
            f"until ({until.isoformat()}) must be after since ({since.isoformat()})"
        )
    offers = list(
        session.scalars(
            select(Offer)
            .where(Offer.created_at >= since, Offer.created_at < until)
            .order_by(Offer.created_at, Offer.id)
        )
    )
    offers = _rooted_in_window(session, offers, since)
    reached: dict[str, set[OfferStatus]] = defaultdict(set)
    for offer_id, kind in session.execute(
        select(OfferEvent.offer_id, OfferEvent.type)
        .join(Offer, Offer.id == OfferEvent.offer_id)
        .where(Offer.created_at >= since, Offer.created_at < until, OfferEvent.created_at < until)
    ):
        reached[offer_id].add(kind)
    catalogs: dict[int, Catalog] = {}
    total = FunnelRow(None, None)
    groups: dict[tuple[str, str | None, str | None], FunnelRow] = {}
    for offer, chain in _chains(offers).items():
        trigger, feature = offer.trigger.value, offer.feature_id
        rows = [
            total,
            _row(groups, ("t", trigger, None)),
            _row(groups, ("f", None, feature)),
            _row(groups, ("tf", trigger, feature)),
        ]
        events = set().union(*(reached[link.id] for link in chain))
        paid = next((link for link in chain if OfferStatus.PAID in reached[link.id]), None)
        added = _mrr_added(session, catalogs, paid) if paid is not None else 0
        for row in rows:
            _count(row, events)
            if added:
                row.mrr_added[offer.currency] = row.mrr_added.get(offer.currency, 0) + added
    return Funnel(
        since,
        until,
        total,
        _sorted(r for k, r in groups.items() if k[0] == "t"),
        _sorted(r for k, r in groups.items() if k[0] == "f"),
        _sorted(r for k, r in groups.items() if k[0] == "tf"),
    )


def _chains(offers: list[Offer]) -> dict[Offer, list[Offer]]:
    """Each first offer with the offers quoted again from it (an expired price re-quoted, a
    code typed), in the order made: the customer saw one offer, so it counts once."""
    by_id = {offer.id: offer for offer in offers}
    chains: dict[Offer, list[Offer]] = {}
    for offer in offers:  # oldest first: an origin is placed before the offers made from it
        first, seen = offer, {offer.id}
        while (origin := _origin(first)) in by_id and origin not in seen:
            first = by_id[origin]
            seen.add(origin)
        chains.setdefault(first, []).append(offer)
    return chains


def _rooted_in_window(session: Session, offers: list[Offer], since: datetime) -> list[Offer]:
    """The offers less those quoted again from an offer made before the window: that first
    offer's chain was counted in its own window (a customer saw one offer)."""
    by_id = {offer.id: offer for offer in offers}
    older: dict[str, bool] = {}  # offer id -> its chain began before `since`

    def began_before(offer_id: str, depth: int = 0) -> bool:
        if offer_id in older:
            return older[offer_id]
        offer = by_id.get(offer_id) or session.get(Offer, offer_id)
        if offer is None or depth > 50:  # an origin gone (or a loop): the chain starts here
            return False
        origin = _origin(offer)
        if origin is not None and began_before(origin, depth + 1):
            result = True
        else:
            result = offer.created_at < since and offer_id not in by_id
        older[offer_id] = result
        return result

    return [offer for offer in offers if not began_before(offer.id)]


def _origin(offer: Offer) -> str | None:
    details = offer.details or {}
    origin = details.get("requoted_from") or details.get("code_from")
    return origin if isinstance(origin, str) else None


def _row(
    groups: dict[tuple[str, str | None, str | None], FunnelRow],
    key: tuple[str, str | None, str | None],
) -> FunnelRow:
    if key not in groups:
        groups[key] = FunnelRow(key[1], key[2])
    return groups[key]


def _count(row: FunnelRow, events: set[OfferStatus]) -> None:
    row.created += 1
    for step, proofs in STEPS.items():
        if events.intersection(proofs):
            setattr(row, step, getattr(row, step) + 1)


def _sorted(rows: Iterable[FunnelRow]) -> tuple[FunnelRow, ...]:
    return tuple(sorted(rows, key=lambda r: (r.trigger or "", r.feature or "")))


def _per_month(amount: int, interval: str | None) -> int:
    return amount // 12 if interval == "year" else amount


def _mrr_added(session: Session, catalogs: dict[int, Catalog], offer: Offer) -> int:
    """New recurring minus old recurring, both per month (yearly // 12)."""
    if offer.new_recurring_amount is None:
        return 0
    amount = offer.new_recurring_amount
    off = _forever_off(session, catalogs, offer, offer.promotion_id, amount)
    new = _per_month(amount - off, offer.interval)
    details = offer.details or {}
    yearly = details.get("yearly_alternative")
    if details.get("accepted_interval") == "year" and isinstance(yearly, dict):
        amount = int(yearly["recurring_amount"])  # the alternative was taken
        promotion = yearly.get("promotion") or {}
        off = _forever_off(session, catalogs, offer, promotion.get("id"), amount)
        new = _per_month(amount - off, "year")
    addon = details.get("accepted_addon")  # the recurring add-on taken with the offer
    if isinstance(addon, dict) and isinstance(addon.get("recurring_amount"), int):
        new += _per_month(addon["recurring_amount"], addon.get("interval"))
    if offer.to_tier_id is None:  # an add-on offer adds to what the account pays
        return new
    old_ref = details.get("from") or {}
    old = old_ref.get("recurring_amount") if isinstance(old_ref, dict) else None
    if not isinstance(old, int):
        old = _catalog_price(session, catalogs, offer)
    else:  # what the account paid that the move ends: less a forever promotion, plus add-ons
        old += int(old_ref.get("ending_addons_amount") or 0)
        old -= int(old_ref.get("promotion_off") or 0)
    return new - _per_month(old, offer.from_interval)


def _forever_off(
    session: Session, catalogs: dict[int, Catalog], offer: Offer, promotion_id: Any, amount: int
) -> int:
    """What a `forever` promotion takes off every renewal of `amount` (a `once` or `repeating`
    one ends, so the recurring revenue is the price's)."""
    if not isinstance(promotion_id, str):
        return 0
    catalog = _catalog(session, catalogs, offer.catalog_version)
    promo = next((p for p in catalog.promotions if p.id == promotion_id), None)
    if promo is None or promo.duration != "forever":
        return 0
    return promo.discount(amount, offer.currency)


def _catalog(session: Session, catalogs: dict[int, Catalog], version: int) -> Catalog:
    if version not in catalogs:
        catalogs[version] = store.load(session, version).catalog
    return catalogs[version]


def _catalog_price(session: Session, catalogs: dict[int, Catalog], offer: Offer) -> int:
    """The old tier's price when the offer did not record it (offers made outside offer_for)."""
    if not offer.from_tier_id or not offer.from_interval:
        return 0
    tier = _catalog(session, catalogs, offer.catalog_version).tier(offer.from_tier_id)
    return (tier.price(offer.from_interval, offer.currency) or 0) if tier else 0


DEFAULT_WINDOW = timedelta(days=30)


def funnel_window(
    session: Session, clock: Clock, since: datetime | None, until: datetime | None
) -> Funnel:
    """The funnel over [since, until), by default the last 30 days up to and including now."""
    until = until or clock.now() + timedelta(microseconds=1)
    return funnel(session, since=since or until - DEFAULT_WINDOW, until=until)


def funnel_json(result: Funnel) -> dict[str, object]:
    return {
        "since": result.since,
        "until": result.until,
        "total": result.total.to_json(),
        "by_trigger": [r.to_json() for r in result.by_trigger],
        "by_feature": [r.to_json() for r in result.by_feature],
        "by_trigger_and_feature": [r.to_json() for r in result.by_trigger_and_feature],
    }


def funnel_text(result: Funnel) -> str:
    """A plain table for the terminal: one line per trigger and per feature."""
    header = (
        f"{'':24} {'offers':>7} {'shown':>6} {'clicked':>8} {'dismissed':>9} "
        f"{'paid':>5} {'conv.':>7}  MRR added (per month)"
    )
    lines = [
        f"Offers created {result.since:%Y-%m-%d %H:%M} to {result.until:%Y-%m-%d %H:%M} UTC",
        header,
    ]

    def line(label: str, row: FunnelRow) -> str:
        bp = row.conversion_bp
        conv = "-" if bp is None else f"{bp // 100}.{bp % 100:02d}%"
        mrr = ", ".join(format_money(a, c) for c, a in sorted(row.mrr_added.items())) or "-"
        return (
            f"{label[:24]:24} {row.created:>7} {row.shown:>6} {row.clicked:>8} "
            f"{row.dismissed:>9} {row.paid:>5} {conv:>7}  {mrr}"
        )

    lines.append(line("all offers", result.total))
    lines += [line(f"trigger {r.trigger}", r) for r in result.by_trigger]
    lines += [
        line(f"feature {r.feature}" if r.feature else "no feature (cross-sell)", r)
        for r in result.by_feature
    ]
    return "\n".join(lines)
