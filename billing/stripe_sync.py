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
from typing import Any, Literal

import stripe
from stripe.params import PriceCreateParams, ProductCreateParams, ProductUpdateParams

from billing.provider import ItemKind, Price
from billing.stripe_errors import stripe_errors
from tiers.model import AddOnBilling, Catalog
from tiers.store import Published

TAG = {"tiergate": "1"}


def product_id(kind: ItemKind, item_id: str) -> str:
    """Our Stripe Product id for a tier or add-on (Stripe accepts ids chosen by the caller)."""
    return f"tg_{kind.value}_{item_id}"


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

    kind: Literal["create_product", "update_product", "create_price"]
    description: str
    target: str  # product id or lookup key
    params: Mapping[str, Any] = field(default_factory=dict)

    def idempotency_key(self) -> str:
        digest = hashlib.sha256(json.dumps(self.params, sort_keys=True).encode()).hexdigest()[:16]
        return f"tiergate-sync:{self.kind}:{self.target}:{digest}"


def plan(client: stripe.StripeClient, published: Published) -> list[Action]:
    """What must change in Stripe so that it sells exactly the published catalog's prices."""
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
    return actions


def apply(client: stripe.StripeClient, actions: Iterable[Action]) -> None:
    """Carry out the planned actions, in order (products before their prices)."""
    for action in actions:
        options: stripe.RequestOptions = {"idempotency_key": action.idempotency_key()}
        with stripe_errors(action.description.lower()):
            if action.kind == "create_product":
                client.v1.products.create(_as_product_create(action.params), options)
            elif action.kind == "update_product":
                client.v1.products.update(action.target, _as_product_update(action.params), options)
            else:
                client.v1.prices.create(_as_price_create(action.params), options)


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
