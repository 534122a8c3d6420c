"""What changed between two catalogs, for review before publishing. Pure: no Flask, no database.

`diff_catalogs(old, new)` returns structured `Change`s; `render` and `summary` turn them into
text such as `pro.prices.month: usd 29.00 -> 32.00` and `pro.api_calls: 100,000 -> 150,000`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from tiers.checks import money
from tiers.model import NOT_INCLUDED, Catalog, Feature, FeatureKind, Grant, Tier

ADDED, REMOVED, CHANGED = "added", "removed", "changed"
_MARK = {ADDED: "+", REMOVED: "-", CHANGED: "~"}
_TIER_FIELDS = ("tagline", "trial_days", "recommended", "hidden", "contact_sales")
_OFFER_FIELDS = {
    "nudge_threshold_percent": ("nudge_threshold", "%"),
    "dismissal_cooldown_days": ("dismissal_cooldown_days", ""),
    "price_jump_guard_percent": ("price_jump_guard", "%"),
    "quote_valid_minutes": ("quote_valid_minutes", ""),
    "contact_sales_url": ("contact_sales_url", ""),
}


@dataclass(frozen=True)
class Change:
    action: str  # added | removed | changed
    area: str  # catalog | currency | offers | feature | tier | price | limit | addon | promotion
    path: str  # where: "pro.prices.month.usd", "pro.api_calls", "offers.nudge_threshold"
    old: str | None = None  # formatted old value (None when added)
    new: str | None = None  # formatted new value (None when removed)

    @property
    def text(self) -> str:
        """One human-readable line, e.g. `pro.prices.month: usd 29.00 -> 32.00`."""
        if self.area == "price":
            where, currency = self.path.rsplit(".", 1)
            old = self.old.split(" ", 1)[1] if self.old else None
            new = self.new.split(" ", 1)[1] if self.new else None
            if self.action == CHANGED:
                return f"{where}: {currency} {old} -> {new}"
            return f"{where}: {currency} {new or old} {self.action}"
        if self.action == CHANGED:
            return f"{self.path}: {self.old} -> {self.new}"
        value = self.new if self.action == ADDED else self.old
        label = (
            f"{self.area} {self.action}" if self.area in _NAMED else f"{self.path} {self.action}"
        )
        if self.area in _NAMED:
            return f"{label}: {self.path}" + (f" ({value})" if value else "")
        return f"{label}: {value}" if value else label


_NAMED = ("tier", "addon", "promotion", "feature", "currency")


def diff_catalogs(old: Catalog | None, new: Catalog) -> list[Change]:
    """Every difference from `old` (None: nothing published yet) to `new`, in catalog order."""
    if old is None:
        # Offer settings always exist; listing them as changed from defaults would be noise.
        old = Catalog(name=new.name, currencies=(), features={}, tiers=(), offers=new.offers)
    return _Differ(old, new).run()


def render(changes: list[Change]) -> str:
    """One line per change, marked + (added), - (removed) or ~ (changed)."""
    if not changes:
        return "no changes"
    return "\n".join(f"{_MARK[c.action]} {c.text}" for c in changes)


def summary(changes: list[Change]) -> str:
    """A one-line count, e.g. `3 changes: 1 tier added, 2 prices changed`."""
    if not changes:
        return "no changes"
    counts = Counter((c.area, c.action) for c in changes)
    parts = [f"{n} {_plural(area, n)} {action}" for (area, action), n in counts.items()]
    return f"{len(changes)} change{'s' if len(changes) != 1 else ''}: " + ", ".join(parts)


_NOUNS = {
    "catalog": ("catalog setting", "catalog settings"),
    "offers": ("offer setting", "offer settings"),
    "currency": ("currency", "currencies"),
    "addon": ("add-on", "add-ons"),
}


def _plural(area: str, n: int) -> str:
    singular, plural = _NOUNS.get(area, (area, area + "s"))
    return singular if n == 1 else plural


def _order(what: str, old: list[str], new: list[str]) -> list[Change]:
    """A change of the order of the entries both versions have (none when it is the same)."""
    kept_old = [key for key in old if key in new]
    kept_new = [key for key in new if key in old]
    if kept_old == kept_new:
        return []
    return [Change(CHANGED, "catalog", what, ", ".join(kept_old), ", ".join(kept_new))]


class _Differ:
    def __init__(self, old: Catalog, new: Catalog) -> None:
        self.old, self.new = old, new

    def run(self) -> list[Change]:
        old, new = self.old, self.new
        changes: list[Change] = []
        if old.name != new.name:
            changes.append(Change(CHANGED, "catalog", "name", old.name, new.name))
        changes += self.keyed("currency", _same(old.currencies), _same(new.currencies), None)
        changes += self.offers()
        changes += self.keyed("feature", dict(old.features), dict(new.features), self.feature)
        changes += self.keyed("tier", _by_id(old.tiers), _by_id(new.tiers), self.tier)
        changes += _order("tier order", [t.id for t in old.tiers], [t.id for t in new.tiers])
        changes += self.keyed("addon", _by_id(old.addons), _by_id(new.addons), self.item)
        changes += self.keyed(
            "promotion", _by_id(old.promotions), _by_id(new.promotions), self.item
        )
        # Order is shown too: the pricing table's rows and columns, the default currency (the
        # first), and which of two promotions applies (the first).
        if old.currencies and new.currencies and old.currencies[0] != new.currencies[0]:
            first = (old.currencies[0].upper(), new.currencies[0].upper())
            changes.append(Change(CHANGED, "catalog", "default currency", *first))
        else:
            changes += _order("currency order", list(old.currencies), list(new.currencies))
        changes += _order("feature order", list(old.features), list(new.features))
        changes += _order("add-on order", [a.id for a in old.addons], [a.id for a in new.addons])
        changes += _order(
            "promotion order", [p.id for p in old.promotions], [p.id for p in new.promotions]
        )
        return changes

    def keyed(
        self, area: str, old: Mapping[str, Any], new: Mapping[str, Any], detail: Any
    ) -> list[Change]:
        changes = [
            Change(REMOVED, area, key, old=_label(item))
            for key, item in old.items()
            if key not in new
        ]
        for key, item in new.items():
            if key not in old:
                changes.append(Change(ADDED, area, key, new=_label(item)))
            elif old[key] != item and detail is not None:
                changes += detail(area, key, old[key], item)
        return changes

    def offers(self) -> list[Change]:
        changes = []
        for attr, (key, unit) in _OFFER_FIELDS.items():
            before, after = getattr(self.old.offers, attr), getattr(self.new.offers, attr)
            if before != after:
                changes.append(
                    Change(
                        CHANGED, "offers", f"offers.{key}", _show(before, unit), _show(after, unit)
                    )
                )
        return changes

    def feature(self, area: str, fid: str, old: Feature, new: Feature) -> list[Change]:
        changes = []
        for attr in ("name", "kind", "resets", "group", "description", "unit", "unit_plural"):
            before, after = getattr(old, attr), getattr(new, attr)
            if before != after:
                changes.append(Change(CHANGED, area, f"{fid}.{attr}", _show(before), _show(after)))
        return changes

    def tier(self, area: str, tid: str, old: Tier, new: Tier) -> list[Change]:
        changes = []
        if old.name != new.name:
            changes.append(Change(CHANGED, area, f"{tid} renamed", repr(old.name), repr(new.name)))
        for attr in _TIER_FIELDS:
            before, after = getattr(old, attr), getattr(new, attr)
            if before != after:
                changes.append(Change(CHANGED, area, f"{tid}.{attr}", _show(before), _show(after)))
        changes += _prices(f"{tid}.prices", _by_value(old.prices), _by_value(new.prices))
        changes += self.grants("limit", tid, old.features, new.features, absent=NOT_INCLUDED)
        return changes

    def item(self, area: str, item_id: str, old: Any, new: Any) -> list[Change]:
        """Add-ons and promotions: field by field in their canonical document form."""
        section = area + "s"
        empty = Catalog(name="", currencies=(), features={}, tiers=())
        old_doc = replace(empty, **{section: (old,)}).to_document()[section][0]
        new_doc = replace(empty, **{section: (new,)}).to_document()[section][0]
        changes = []
        for key, value in new_doc.items():
            if key == "prices":
                changes += _prices(f"{item_id}.prices", old_doc["prices"], value)
            elif key == "grants":
                changes += self.grants(area, f"{item_id}.grants", old.grants, new.grants, None)
            elif key == "amount_off" and old_doc.get(key) != value:
                before = {key: old_doc.get(key) or {}}  # per currency, in its own units
                found = _prices(item_id, before, {key: value or {}})
                changes += [replace(c, area=area) for c in found]
            elif old_doc.get(key) != value:
                before = _show(old_doc.get(key))
                changes.append(Change(CHANGED, area, f"{item_id}.{key}", before, _show(value)))
        return changes

    def grants(
        self,
        area: str,
        prefix: str,
        old: Mapping[str, Grant],
        new: Mapping[str, Grant],
        absent: Grant | None,
    ) -> list[Change]:
        changes = []
        for fid in dict.fromkeys([*old, *new]):
            before, after = old.get(fid, absent), new.get(fid, absent)
            if before != after:
                feature = self.new.feature(fid) or self.old.feature(fid)
                kind = feature.kind if feature else FeatureKind.COUNTER
                changes.append(
                    Change(
                        CHANGED, area, f"{prefix}.{fid}", _grant(before, kind), _grant(after, kind)
                    )
                )
        return changes


def _same(values: Any) -> dict[str, Any]:
    return {v: v for v in values}


def _by_id(items: Any) -> dict[str, Any]:
    return {item.id: item for item in items}


def _by_value(prices: Mapping[Any, Mapping[str, int]]) -> dict[str, Mapping[str, int]]:
    return {str(getattr(i, "value", i)): p for i, p in prices.items()}


def _label(item: Any) -> str | None:
    name = getattr(item, "name", None)
    return name if name and name != getattr(item, "id", None) else None


def _prices(
    path: str, old: Mapping[str, Mapping[str, int]], new: Mapping[str, Mapping[str, int]]
) -> list[Change]:
    changes = []
    for interval in dict.fromkeys([*old, *new]):
        before, after = old.get(interval, {}), new.get(interval, {})
        for currency in dict.fromkeys([*before, *after]):
            a, b = before.get(currency), after.get(currency)
            where = f"{path}.{interval}.{currency}"
            if a is None and b is not None:
                changes.append(Change(ADDED, "price", where, new=money(b, currency)))
            elif b is None and a is not None:
                changes.append(Change(REMOVED, "price", where, old=money(a, currency)))
            elif a != b and a is not None and b is not None:
                changes.append(
                    Change(CHANGED, "price", where, money(a, currency), money(b, currency))
                )
    return changes


def _grant(grant: Grant | None, kind: FeatureKind) -> str:
    if grant is None:
        return "none"
    if kind is FeatureKind.BOOLEAN:
        return "included" if grant.enabled else "not included"
    if not grant.enabled:
        return "not included"
    text = "unlimited" if grant.limit is None else f"{grant.limit:,}"
    extras = []
    if grant.nudge_at is not None:
        extras.append(f"nudge at {grant.nudge_at:,}")
    if grant.overage:
        extras.append(f"+{grant.overage:,} overage")
    return text + (f" ({', '.join(extras)})" if extras else "")


def _show(value: Any, unit: str = "") -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}{unit}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return str(value)
