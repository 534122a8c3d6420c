"""The catalog in Stripe: one Product per tier/add-on and one Price per amount, by lookup key.

A Stripe Price is addressed by `billing.provider.Price.lookup_key`
("tiergate:tier:pro:month:usd:2900"): item, interval, currency AND amount. Stripe amounts are
immutable, so a new amount in a newer catalog is a new Price under a new key; the old Price
stays active for grandfathered subscriptions, and the Price a customer is charged always has
exactly the quoted amount. A key that points at a Price with other terms (edited by hand in
the dashboard) gets a new Price, and the key moves to it (`transfer_lookup_key`).

`plan(client, published)` lists what would change; `apply(client, actions)` does it with
idempotency keys derived from the parameters, so running it twice changes nothing the second
time. The provider calls `ensure_price` for a Price the sync has not created yet.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import stripe
from stripe.params import (
    CouponCreateParams,
    PriceCreateParams,
    ProductCreateParams,
    ProductUpdateParams,
    PromotionCodeCreateParams,
)

from billing.provider import ItemKind, Price
from billing.stripe_errors import stripe_errors
from tiers.model import AddOnBilling, Catalog, Promotion
from tiers.store import Published

TAG = {"tiergate": "1"}


def product_id(kind: ItemKind, item_id: str) -> str:
    """Our Stripe Product id for a tier or add-on (Stripe accepts ids chosen by the caller)."""
    return f"tg_{kind.value}_{item_id}"


def item_of_product(pid: object) -> str | None:
    """The tier or add-on id of one of our Product ids (None for any other product)."""
    if not isinstance(pid, str):
        return None
    for kind in ItemKind:
        prefix = product_id(kind, "")
        if pid.startswith(prefix) and len(pid) > len(prefix):
            return pid[len(prefix) :]
    return None


def catalog_prices(catalog: Catalog) -> list[Price]:
    """Every price the catalog sells: paid tiers per interval/currency, add-ons per billing."""
    prices = []
    for tier in catalog.tiers:
        if tier.free:
            continue
        for per, amounts in tier.prices.items():
            for currency, amount in amounts.items():
                prices.append(Price(ItemKind.TIER, tier.id, tier.name, per.value, currency, amount))
    for addon in catalog.addons:
        for key, amounts in addon.prices.items():
            interval = None if addon.billing is AddOnBilling.ONE_TIME else key
            for currency, amount in amounts.items():
                prices.append(
                    Price(ItemKind.ADDON, addon.id, addon.name, interval, currency, amount)
                )
    return prices


@dataclass(frozen=True)
class Action:
    """One change the sync makes in Stripe, printable for the dry run."""

    kind: Literal[
        "create_product",
        "update_product",
        "create_price",
        "create_coupon",
        "create_promotion_code",
        "deactivate_promotion_code",
    ]
    description: str
    target: str  # product id or lookup key
    params: Mapping[str, Any] = field(default_factory=dict)

    def idempotency_key(self) -> str:
        digest = hashlib.sha256(json.dumps(self.params, sort_keys=True).encode()).hexdigest()[:16]
        return f"tiergate-sync:{self.kind}:{self.target}:{digest}"


def plan(
    client: stripe.StripeClient, published: Published, now: datetime | None = None
) -> list[Action]:
    """What must change in Stripe so that it sells exactly the published catalog's prices, and
    takes exactly its running promotion codes at Checkout."""
    with stripe_errors("reading products and prices"):
        products = {p.id: p for p in client.v1.products.list({"limit": 100}).auto_paging_iter()}
        by_key = {
            p.lookup_key: p
            for p in client.v1.prices.list({"limit": 100, "active": True}).auto_paging_iter()
            if p.lookup_key
        }
    actions: list[Action] = []
    seen: set[str] = set()
    for price in catalog_prices(published.catalog):
        pid = product_id(price.kind, price.item_id)
        if pid not in seen:
            seen.add(pid)
            actions += _product_actions(products.get(pid), price, published.version)
        existing = by_key.get(price.lookup_key)
        if existing is None or not matches(existing, price):
            actions.append(_price_action(price, published.version, moved=existing is not None))
    return actions + _code_actions(client, published.catalog, now or datetime.now(UTC))


def apply(client: stripe.StripeClient, actions: Iterable[Action]) -> None:
    """Carry out the planned actions, in order (products before their prices)."""
    for action in actions:
        options: stripe.RequestOptions = {"idempotency_key": action.idempotency_key()}
        with stripe_errors(action.description.lower()):
            if action.kind == "create_product":
                client.v1.products.create(_as_product_create(action.params), options)
            elif action.kind == "update_product":
                client.v1.products.update(action.target, _as_product_update(action.params), options)
            elif action.kind == "create_price":
                client.v1.prices.create(_as_price_create(action.params), options)
            elif action.kind == "create_coupon":
                client.v1.coupons.create(_as_coupon_create(action.params), options)
            elif action.kind == "create_promotion_code":
                client.v1.promotion_codes.create(_as_code_create(action.params), options)
            else:
                client.v1.promotion_codes.update(action.target, {"active": False}, options)


def ensure_price(client: stripe.StripeClient, price: Price, version: int | None) -> stripe.Price:
    """The active Stripe Price for `price` (by lookup key), created with its Product if missing."""
    with stripe_errors(f"looking up the Stripe price {price.lookup_key}"):
        found = client.v1.prices.list({"lookup_keys": [price.lookup_key], "limit": 1}).data
    if found and matches(found[0], price):
        return found[0]
    pid = product_id(price.kind, price.item_id)
    with stripe_errors(f"looking up the Stripe product {pid}"):
        try:
            product: stripe.Product | None = client.v1.products.retrieve(pid)
        except stripe.InvalidRequestError as exc:
            if exc.code != "resource_missing":
                raise
            product = None
    actions = [a for a in _product_actions(product, price, version) if a.kind != "update_product"]
    apply(client, [*actions, _price_action(price, version, moved=bool(found))])
    with stripe_errors(f"looking up the Stripe price {price.lookup_key}"):
        return client.v1.prices.list({"lookup_keys": [price.lookup_key], "limit": 1}).data[0]


def matches(existing: stripe.Price, price: Price) -> bool:
    """Whether a Stripe Price charges exactly `price` (amount, currency, interval, product)."""
    recurring = existing.recurring.interval if existing.recurring else None
    return (
        existing.active
        and existing.unit_amount == price.unit_amount
        and existing.currency == price.currency
        and recurring == price.interval
        and _product_of(existing) == product_id(price.kind, price.item_id)
    )


def _product_of(existing: stripe.Price) -> str:
    product = existing.product
    return product if isinstance(product, str) else product.id


def _product_actions(
    existing: stripe.Product | None, price: Price, version: int | None
) -> list[Action]:
    pid = product_id(price.kind, price.item_id)
    metadata = {**TAG, "tiergate_kind": price.kind.value, "tiergate_item": price.item_id}
    params: dict[str, Any]
    if existing is None:
        params = {"id": pid, "name": price.name, "metadata": metadata}
        return [Action("create_product", f"Create product {pid} ({price.name})", pid, params)]
    if existing.name != price.name or not existing.active:
        params = {"name": price.name, "active": True, "metadata": metadata}
        return [Action("update_product", f"Rename product {pid} to {price.name!r}", pid, params)]
    return []


def _price_action(price: Price, version: int | None, *, moved: bool) -> Action:
    metadata = {
        **TAG,
        "tiergate_kind": price.kind.value,
        "tiergate_item": price.item_id,
        "tiergate_interval": price.interval or "once",
    }
    if version is not None:
        metadata["tiergate_catalog_version"] = str(version)
    params: dict[str, Any] = {
        "product": product_id(price.kind, price.item_id),
        "currency": price.currency,
        "unit_amount": price.unit_amount,
        "nickname": price.name,
        "lookup_key": price.lookup_key,
        "metadata": metadata,
    }
    if price.interval is not None:
        params["recurring"] = {"interval": price.interval}
    if moved:
        params["transfer_lookup_key"] = True
    per = f" per {price.interval}" if price.interval else " once"
    verb = "Move" if moved else "Create"
    what = f"{price.unit_amount} {price.currency}{per}"
    return Action(
        "create_price",
        f"{verb} price {price.lookup_key} ({what})"
        + (" to a new Price: the old one has other terms" if moved else ""),
        price.lookup_key,
        params,
    )


# ---- promotion codes ------------------------------------------------------------------------


def code_notes(catalog: Catalog, now: datetime) -> list[str]:
    """Why a catalog promotion code is not (yet) in Stripe; it still works on tiergate's page."""
    notes = []
    for promo in catalog.promotions:
        if promo.code is None:
            continue
        why = _unsyncable(catalog, promo, now)
        if why:
            notes.append(f"Code {promo.code} ({promo.id}) is not put into Stripe: {why}.")
    return notes


def _unsyncable(catalog: Catalog, promo: Promotion, now: datetime) -> str | None:
    if promo.ends_at is not None and now >= promo.ends_at:
        return "it has ended"
    if promo.starts_at is not None and now < promo.starts_at:
        return f"it starts on {promo.starts_at:%Y-%m-%d}; run the sync again then"
    tiers = [t for t in catalog.tiers if not t.free and not t.contact_sales]
    tiers = [t for t in tiers if not promo.tiers or t.id in promo.tiers]
    sold = {interval for t in tiers for interval in t.prices}
    if promo.intervals and not sold <= set(promo.intervals):
        return "a Stripe code cannot be limited to some billing intervals of a plan"
    if promo.percent_off is None and len(promo.amount_off) != 1:
        return "an amount-off code is put into Stripe for one currency only"
    return None


def _coupon_params(catalog: Catalog, promo: Promotion) -> dict[str, Any]:
    tiers = [t.id for t in catalog.tiers if not t.free and not t.contact_sales]
    products = sorted(
        product_id(ItemKind.TIER, tier) for tier in tiers if not promo.tiers or tier in promo.tiers
    )
    params: dict[str, Any] = {
        "duration": promo.duration,
        "applies_to": {"products": products},
        "name": promo.name[:40],
        "metadata": {**TAG, "tiergate_promotion": promo.id},
    }
    if promo.percent_off is not None:
        params["percent_off"] = promo.percent_off
    else:
        [(currency, amount)] = promo.amount_off.items()
        params["amount_off"], params["currency"] = amount, currency
    if promo.duration == "repeating":
        params["duration_in_months"] = promo.duration_in_months
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
    return {"id": f"tg_code_{promo.id}_{digest}", **params}


def _code_actions(client: stripe.StripeClient, catalog: Catalog, now: datetime) -> list[Action]:
    """Coupons and promotion codes for the catalog's running codes; retired codes deactivated."""
    with stripe_errors("reading coupons and promotion codes"):
        coupons = {c.id for c in client.v1.coupons.list({"limit": 100}).auto_paging_iter()}
        live = [
            code
            for code in client.v1.promotion_codes.list(
                {"limit": 100, "active": True}
            ).auto_paging_iter()
            if _tagged(code)
        ]
    actions: list[Action] = []
    handled: set[str] = set()  # live codes kept as they are, or retired for new terms
    for promo in catalog.promotions:
        if promo.code is None or _unsyncable(catalog, promo, now):
            continue
        coupon = _coupon_params(catalog, promo)
        expires = int(promo.ends_at.timestamp()) if promo.ends_at else None
        matching = [c for c in live if c.code.casefold() == promo.code.casefold()]
        handled.update(c.id for c in matching)
        if any(_coupon_of(c) == coupon["id"] and c.expires_at == expires for c in matching):
            continue
        if coupon["id"] not in coupons:
            actions.append(
                Action(
                    "create_coupon",
                    f"Create coupon {coupon['id']} ({promo.name})",
                    coupon["id"],
                    coupon,
                )
            )
        code: dict[str, Any] = {
            "code": promo.code,
            "promotion": {"type": "coupon", "coupon": coupon["id"]},
            "metadata": {**TAG, "tiergate_promotion": promo.id},
        }
        if expires is not None:
            code["expires_at"] = expires
        # The same code with other terms is retired first: active codes are unique in Stripe.
        actions += [
            Action(
                "deactivate_promotion_code",
                f"Deactivate promotion code {old.code} ({old.id}): its terms changed",
                old.id,
                {"active": False},
            )
            for old in matching
        ]
        actions.append(
            Action(
                "create_promotion_code",
                f"Create promotion code {promo.code} for coupon {coupon['id']}",
                promo.code,
                code,
            )
        )
    actions += [
        Action(
            "deactivate_promotion_code",
            f"Deactivate promotion code {c.code} ({c.id}): no running catalog promotion has it",
            c.id,
            {"active": False},
        )
        for c in live
        if c.id not in handled
    ]
    return actions


def _tagged(code: Any) -> bool:
    meta: Any = getattr(code, "metadata", None) or {}  # the SDK's StripeObject is not a dict
    plain = meta.to_dict() if hasattr(meta, "to_dict") else dict(meta)
    return plain.get("tiergate") == "1"


def _coupon_of(code: stripe.PromotionCode) -> str | None:
    promotion = getattr(code, "promotion", None)
    coupon = getattr(promotion, "coupon", None) if promotion is not None else None
    return coupon if isinstance(coupon, str) else getattr(coupon, "id", None)


# The actions hold plain dicts (printable, hashable into keys); these say which SDK type each is.
def _as_product_create(params: Mapping[str, Any]) -> ProductCreateParams:
    return ProductCreateParams(
        id=params["id"], name=params["name"], metadata=dict(params["metadata"])
    )


def _as_product_update(params: Mapping[str, Any]) -> ProductUpdateParams:
    return ProductUpdateParams(
        name=params["name"], active=params["active"], metadata=dict(params["metadata"])
    )


def _as_price_create(params: Mapping[str, Any]) -> PriceCreateParams:
    created = PriceCreateParams(
        product=params["product"],
        currency=params["currency"],
        unit_amount=params["unit_amount"],
        nickname=params["nickname"],
        lookup_key=params["lookup_key"],
        metadata=dict(params["metadata"]),
    )
    if "recurring" in params:
        created["recurring"] = {"interval": params["recurring"]["interval"]}
    if params.get("transfer_lookup_key"):
        created["transfer_lookup_key"] = True
    return created


def _as_coupon_create(params: Mapping[str, Any]) -> CouponCreateParams:
    created = CouponCreateParams(
        id=params["id"],
        duration=params["duration"],
        applies_to={"products": list(params["applies_to"]["products"])},
        name=params["name"],
        metadata=dict(params["metadata"]),
    )
    if "percent_off" in params:
        created["percent_off"] = float(params["percent_off"])
    else:
        created["amount_off"] = params["amount_off"]
        created["currency"] = params["currency"]
    if params.get("duration_in_months"):
        created["duration_in_months"] = params["duration_in_months"]
    return created


def _as_code_create(params: Mapping[str, Any]) -> PromotionCodeCreateParams:
    created = PromotionCodeCreateParams(
        code=params["code"],
        promotion={"type": "coupon", "coupon": params["promotion"]["coupon"]},
        metadata=dict(params["metadata"]),
    )
    if "expires_at" in params:
        created["expires_at"] = params["expires_at"]
    return created
