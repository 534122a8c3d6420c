"""Semantic checks of a catalog document: references, tier order, prices, promotions.

Runs on the (possibly partial) data tiers/schema.py accepted, so every value seen here has the
right type; a value the schema rejected is simply absent and the checks that need it skip.
Pure: no Flask, no database.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tiers.model import UNLIMITED, FeatureKind, Grant, parse_grant


@dataclass(frozen=True)
class CatalogIssue:
    path: str  # e.g. "tiers[2].features.api_calls"
    message: str


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate nearest to `word` (difflib), or None when nothing is close."""
    return _closest(word, tuple(str(c) for c in candidates))


@functools.lru_cache(maxsize=4096)
def _closest(word: str, candidates: tuple[str, ...]) -> str | None:
    # Cached: a file repeats one misspelling in every tier, and each lookup compares the word
    # with every candidate (seconds for a few thousand references to a few hundred features).
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """ ": did you mean 'x'?" for the closest candidate, or '' when nothing is close."""
    match = closest(word, candidates)
    return f": did you mean '{match}'?" if match else ""


def money(amount: int, currency: str) -> str:
    """`usd 29.00` from minor units (the currency's own number of decimals)."""
    from tiers.money import decimals

    digits = decimals(currency)
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), 10**digits)
    fraction = f".{minor:0{digits}d}" if digits else ""
    return f"{currency.lower()} {sign}{major:,}{fraction}"


def run_checks(
    doc: Mapping[str, Any], *, unreadable_prices: Collection[str] = ()
) -> list[CatalogIssue]:
    """Every semantic problem of a schema-checked catalog document. `unreadable_prices`: ids of
    tiers whose prices were reported unreadable already (they are not tiers without prices)."""
    checker = _Checker(doc, unreadable_prices)
    checker.check()
    return checker.issues


class _Checker:
    def __init__(self, doc: Mapping[str, Any], unreadable_prices: Collection[str] = ()) -> None:
        self.doc = doc
        self.unreadable_prices = set(unreadable_prices)
        self.issues: list[CatalogIssue] = []
        self.currencies: list[str] | None = doc.get("currencies")
        raw_features = doc.get("features")
        self.features: dict[str, FeatureKind | None] | None = None
        if raw_features is not None:
            self.features = {
                fid: FeatureKind(spec["type"]) if "type" in spec else None
                for fid, spec in raw_features.items()
            }
        self.tiers: list[Mapping[str, Any]] = list(doc.get("tiers") or [])
        self.tier_ids = {t["id"] for t in self.tiers if "id" in t}

    def add(self, path: str, message: str) -> None:
        self.issues.append(CatalogIssue(path, message))

    def check(self) -> None:
        self.check_currencies()
        self.check_features()
        self.check_tiers()
        self.check_tier_order()
        self.check_addons()
        self.check_promotions()
        self.check_offers()

    # --- currencies and features ---------------------------------------------------------

    def check_currencies(self) -> None:
        if self.currencies is None:
            return
        if not self.currencies:
            self.add("currencies", "declare at least one currency, e.g. [usd]")
            self.currencies = None  # every price would look undeclared: one report is enough
            return
        seen: set[str] = set()
        for index, code in enumerate(self.currencies):
            if code in seen:
                self.add(f"currencies[{index}]", f"currency '{code}' is listed twice")
            seen.add(code)

    def check_features(self) -> None:
        for fid, spec in (self.doc.get("features") or {}).items():
            kind, resets = spec.get("type"), spec.get("resets")
            if kind == "counter" and not resets:
                self.add(
                    f"features.{fid}",
                    f"counter feature '{fid}' needs `resets`: month, day or billing_period "
                    "(use type: gauge for a total that never resets)",
                )
            elif kind in ("gauge", "boolean") and resets:
                self.add(
                    f"features.{fid}.resets",
                    f"a {kind} feature never resets: remove `resets` "
                    "(use type: counter for a per-period allowance)",
                )

    # --- tiers ---------------------------------------------------------------------------

    def check_tiers(self) -> None:
        if "tiers" in self.doc and not self.tiers:
            self.add("tiers", "a catalog needs at least one tier")
        self.check_duplicates("tiers", "tier", self.tiers)
        recommended: tuple[str, int] | None = None
        listed_free: tuple[str, int] | None = None
        for index, tier in enumerate(self.tiers):
            path = f"tiers[{index}]"
            tid = tier.get("id", "?")
            for fid, value in (tier.get("features") or {}).items():
                self.check_grant(f"{path}.features.{fid}", fid, value)
            prices = tier.get("prices") or {}
            free = (
                not prices and not tier.get("contact_sales") and tid not in self.unreadable_prices
            )
            if free and tier.get("trial_days"):
                self.add(
                    f"{path}.trial_days",
                    f"tier '{tid}' is free (no prices), so it has no trial: nothing is charged "
                    "after it. Remove trial_days, or give the tier prices",
                )
            if free and not tier.get("hidden"):
                if listed_free is not None:
                    self.add(
                        path,
                        f"only one listed tier may be free: '{listed_free[0]}' "
                        f"(tiers[{listed_free[1]}]) already is. Give this one prices, or hide it",
                    )
                else:
                    listed_free = (tid, index)
            if tier.get("contact_sales") and prices:
                self.add(
                    f"{path}.prices",
                    f"tier '{tid}' is contact_sales, so it has no self-serve price: "
                    "remove `prices` or `contact_sales`",
                )
            else:
                self.check_prices(
                    f"{path}.prices", prices, complete=bool(prices) and not tier.get("hidden")
                )
            if tier.get("recommended"):
                if tier.get("hidden"):
                    self.add(
                        f"{path}.recommended",
                        "a hidden tier cannot be recommended: it is never shown",
                    )
                elif tier.get("contact_sales"):
                    self.add(
                        f"{path}.recommended",
                        "a contact_sales tier cannot be recommended: "
                        "the highlighted tier must be buyable in one click",
                    )
                elif recommended is not None:
                    self.add(
                        f"{path}.recommended",
                        f"only one tier may be recommended: '{recommended[0]}' "
                        f"(tiers[{recommended[1]}]) already is",
                    )
                else:
                    recommended = (tid, index)

    def check_tier_order(self) -> None:
        """A higher listed tier never gives less than a lower listed one."""
        first = {t["id"]: i for i, t in reversed(list(enumerate(self.tiers))) if "id" in t}
        listed = [
            (i, t)
            for i, t in enumerate(self.tiers)
            if not t.get("hidden") and first.get(t.get("id")) == i  # a duplicate id is reported
        ]
        known = self.features or {}
        # A misspelt feature is already reported; do not also report the tier as giving less.
        misspelt = {
            index: {closest(f, known) for f in tier_features}
            for index, tier in listed
            if (tier_features := [f for f in tier.get("features") or {} if f not in known])
        }
        for fid, kind in known.items():
            if kind is None:
                continue
            best: tuple[Grant, str] | None = None
            for index, tier in listed:
                if fid in misspelt.get(index, ()):
                    continue
                value = (tier.get("features") or {}).get(
                    fid, False if kind is FeatureKind.BOOLEAN else 0
                )
                grant = self.grant_or_none(value, kind)
                if grant is None:
                    continue
                if best is not None and _rank(grant) < _rank(best[0]):
                    message = _less_message(fid, kind, tier["id"], grant, best)
                    self.add(f"tiers[{index}].features.{fid}", message)
                if best is None or _rank(grant) >= _rank(best[0]):  # name the nearest one
                    best = (grant, tier["id"])

    # --- add-ons and promotions ----------------------------------------------------------

    def check_addons(self) -> None:
        addons = list(self.doc.get("addons") or [])
        self.check_duplicates("addons", "add-on", addons)
        for index, addon in enumerate(addons):
            path = f"addons[{index}]"
            prices = addon.get("prices") or {}
            billing = addon.get("billing")
            if not prices:
                self.add(f"{path}.prices", "an add-on needs at least one price")
            for key in prices:
                if billing == "one_time" and key != "once":
                    self.add(
                        f"{path}.prices.{key}",
                        f"a one_time add-on is priced under `once`, not `{key}` "
                        "(or set billing: recurring)",
                    )
                elif billing == "recurring" and key == "once":
                    self.add(
                        f"{path}.prices.once",
                        "a recurring add-on is priced per month or year, not `once` "
                        "(or set billing: one_time)",
                    )
            self.check_prices(f"{path}.prices", prices, complete=True)
            if billing == "recurring" and prices and "once" not in prices:
                self.check_addon_intervals(path, addon, prices)
            for field in ("available_to", "included_in"):
                self.check_tier_refs(f"{path}.{field}", addon.get(field))
            included = set(addon.get("included_in") or [])
            for k, tid in enumerate(addon.get("available_to") or []):
                if tid in included:
                    self.add(
                        f"{path}.available_to[{k}]",
                        f"tier '{tid}' is also in included_in: it gets this add-on at no "
                        "charge, so it cannot buy it. List the tier in one of the two",
                    )
            for fid, value in (addon.get("grants") or {}).items():
                self.check_grant(f"{path}.grants.{fid}", fid, value)
            suggested = addon.get("suggested_with") or {}
            self.check_tier_refs(f"{path}.suggested_with.tiers", suggested.get("tiers"))
            if self.features is not None:
                for k, fid in enumerate(suggested.get("features") or []):
                    if fid not in self.features:
                        self.add(
                            f"{path}.suggested_with.features[{k}]",
                            f"unknown feature '{fid}'" + did_you_mean(fid, self.features),
                        )

    def check_addon_intervals(
        self, path: str, addon: Mapping[str, Any], prices: Mapping[str, Any]
    ) -> None:
        """A recurring add-on is priced at every interval a tier that can buy it is sold at:
        the add-on renews with the plan, so without it a customer who has the add-on could not
        switch to that interval (nor buy it there)."""
        priced = {_key(i) for i in prices}
        available = set(addon.get("available_to") or [])
        included = set(addon.get("included_in") or [])
        for tier in self.tiers:
            tid = tier.get("id")
            tier_prices = tier.get("prices")
            if (
                not isinstance(tier_prices, Mapping)
                or not tier_prices
                or tier.get("contact_sales")
                or tid in self.unreadable_prices
                or tid in included
                or (available and tid not in available)
            ):
                continue
            for interval in tier_prices:
                if _key(interval) not in priced:
                    self.add(
                        f"{path}.prices",
                        f"no {_key(interval)} price, but tier '{tid}', which can buy this "
                        f"add-on, is sold {_key(interval)}ly: a recurring add-on renews with "
                        f"the plan, so add a {_key(interval)} price (or limit available_to)",
                    )
                    priced.add(_key(interval))  # said once per interval

    def check_promotions(self) -> None:
        promotions = list(self.doc.get("promotions") or [])
        self.check_duplicates("promotions", "promotion", promotions)
        self.check_codes(promotions)
        tiers = {t["id"]: t for t in self.tiers if "id" in t}
        for index, promo in enumerate(promotions):
            path = f"promotions[{index}]"
            has_percent = promo.get("percent_off") is not None
            has_amount = bool(promo.get("amount_off"))
            if has_percent == has_amount:
                which = "both given" if has_percent else "neither given"
                self.add(path, f"give exactly one of percent_off or amount_off ({which})")
            for code, off in (promo.get("amount_off") or {}).items():
                self.check_currency_declared(f"{path}.amount_off.{code}", code)
                self.check_step(f"{path}.amount_off.{code}", code, off)
            self.check_tier_refs(f"{path}.tiers", promo.get("tiers"))
            for k, tid in enumerate(promo.get("tiers") or []):
                tier = tiers.get(tid)
                unpriced = tier is not None and not tier.get("prices")
                unpriced = unpriced and tid not in self.unreadable_prices
                if tier is not None and (tier.get("contact_sales") or unpriced):
                    self.add(
                        f"{path}.tiers[{k}]", f"tier '{tid}' has no self-serve price to discount"
                    )
                elif tier is not None and tier.get("hidden"):
                    self.add(
                        f"{path}.tiers[{k}]",
                        f"tier '{tid}' is hidden: it is never listed or offered, so its price "
                        "is not self-serve and the promotion could never apply to it",
                    )
            self.check_promotion_intervals(path, promo, tiers)
            starts, ends = promo.get("starts_at"), promo.get("ends_at")
            if starts and ends and ends <= starts:
                self.add(
                    f"{path}.ends_at",
                    f"ends_at {_iso(ends)} is not after starts_at {_iso(starts)}",
                )
            duration, months = promo.get("duration", "once"), promo.get("duration_in_months")
            if duration == "repeating" and months is None:
                self.add(
                    f"{path}.duration_in_months", "duration: repeating needs duration_in_months"
                )
            elif duration != "repeating" and months is not None:
                self.add(
                    f"{path}.duration_in_months",
                    f"duration_in_months only applies to duration: repeating, not {duration}",
                )

    def check_promotion_intervals(
        self, path: str, promo: Mapping[str, Any], tiers: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """Each interval a promotion names is sold by one of its tiers (else it never applies)."""
        named = [tiers[t] for t in promo.get("tiers") or [] if t in tiers]
        if any(t.get("id") in self.unreadable_prices for t in named or self.tiers):
            return
        sold = [
            {_key(i) for i in t.get("prices") or {}}
            for t in (named or self.tiers)
            if t.get("prices") and not t.get("contact_sales") and not t.get("hidden")
        ]
        if not sold:
            return  # no priced tier at all: said above
        for k, interval in enumerate(promo.get("intervals") or []):
            if not any(_key(interval) in intervals for intervals in sold):
                self.add(
                    f"{path}.intervals[{k}]",
                    f"none of this promotion's tiers is sold {_key(interval)}ly, so it could "
                    "never apply: remove the interval, or name a tier sold that way",
                )

    def check_codes(self, promotions: list[Mapping[str, Any]]) -> None:
        """Promotion codes are typed by customers: a plain word, one promotion each."""
        first: dict[str, int] = {}
        for index, promo in enumerate(promotions):
            code = promo.get("code")
            if not isinstance(code, str):
                continue
            path = f"promotions[{index}].code"
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{1,63}", code):
                self.add(
                    path,
                    f"code '{code}' must be 2 to 64 letters, digits, '-' or '_', "
                    "starting with a letter or digit",
                )
                continue
            if code.casefold() in first:
                self.add(
                    path,
                    f"code '{code}' is also promotions[{first[code.casefold()]}].code "
                    "(customers type codes in any letter case)",
                )
            else:
                first[code.casefold()] = index

    def check_offers(self) -> None:
        offers = self.doc.get("offers") or {}
        if offers.get("contact_sales_url"):
            return
        for index, tier in enumerate(self.tiers):
            if tier.get("contact_sales") and not tier.get("hidden"):
                self.add(
                    "offers.contact_sales_url",
                    f"tier '{tier.get('id')}' (tiers[{index}]) is contact_sales: set "
                    "offers.contact_sales_url so its button leads somewhere",
                )
                return

    # --- shared pieces -------------------------------------------------------------------

    def check_duplicates(self, section: str, noun: str, items: list[Mapping[str, Any]]) -> None:
        first: dict[str, int] = {}
        for index, item in enumerate(items):
            item_id = item.get("id")
            if item_id is None:
                continue
            if item_id in first:
                self.add(
                    f"{section}[{index}].id",
                    f"duplicate {noun} id '{item_id}' (also {section}[{first[item_id]}])",
                )
            else:
                first[item_id] = index

    def check_tier_refs(self, path: str, refs: list[str] | None) -> None:
        for k, tid in enumerate(refs or []):
            if tid not in self.tier_ids:
                self.add(f"{path}[{k}]", f"unknown tier '{tid}'" + did_you_mean(tid, self.tier_ids))

    def check_currency_declared(self, path: str, code: str) -> bool:
        if self.currencies is None or code in self.currencies:
            return True
        self.add(
            path,
            f"currency '{code}' is not declared in `currencies` ({', '.join(self.currencies)})"
            + did_you_mean(code, self.currencies),
        )
        return False

    def check_step(self, path: str, code: str, amount: Any) -> None:
        """An amount Stripe can charge: KWD and the other three-decimal currencies end in 0,
        ISK is whole krónur."""
        from tiers.money import step

        unit = step(code)
        if isinstance(amount, int) and amount % unit:
            fixed = amount - amount % unit
            options = f"{fixed} or {fixed + unit}" if fixed else f"{fixed + unit}"
            self.add(
                path,
                f"{code} amounts must be a multiple of {unit} minor units, as Stripe charges "
                f"them ({money(amount, code)} cannot be charged): write {options}",
            )

    def check_prices(self, path: str, prices: Mapping[str, Any], *, complete: bool) -> None:
        """Declared currencies only; every declared currency for each interval sold (when
        `complete`); a yearly price no dearer than twelve monthly ones."""
        for interval, amounts in prices.items():
            amounts = amounts or {}
            for code in amounts:
                self.check_currency_declared(f"{path}.{interval}.{code}", code)
                self.check_step(f"{path}.{interval}.{code}", code, amounts[code])
            if complete and self.currencies is not None:
                missing = [c for c in self.currencies if c not in amounts]
                if missing:
                    self.add(
                        f"{path}.{interval}",
                        f"no {', '.join(missing)} price: every declared currency "
                        f"({', '.join(self.currencies)}) needs a price for each interval sold",
                    )
        monthly, yearly = prices.get("month") or {}, prices.get("year") or {}
        for code, year_amount in yearly.items():
            month_amount = monthly.get(code)
            if month_amount is not None and year_amount > 12 * month_amount:
                self.add(
                    f"{path}.year.{code}",
                    f"the yearly price {money(year_amount, code)} is more than 12 x the monthly "
                    f"price {money(month_amount, code)} ({money(12 * month_amount, code)})",
                )

    def check_grant(self, path: str, fid: str, value: Any) -> None:
        if self.features is None:
            return
        if fid not in self.features:
            self.add(path, f"unknown feature '{fid}'" + did_you_mean(fid, self.features))
            return
        kind = self.features[fid]
        if kind is None:
            return
        problem = _grant_problem(fid, kind, value)
        if problem:
            self.add(path + problem[0], problem[1])

    @staticmethod
    def grant_or_none(value: Any, kind: FeatureKind) -> Grant | None:
        return None if _grant_problem("", kind, value) else parse_grant(value, kind)


def _grant_problem(fid: str, kind: FeatureKind, value: Any) -> tuple[str, str] | None:
    """(sub-path, message) when `value` does not suit a feature of `kind`, else None."""
    if kind is FeatureKind.BOOLEAN:
        if isinstance(value, bool):
            return None
        if isinstance(value, Mapping):
            extra = [k for k in value if k != "enabled" and value[k] not in (None, 0)]
            if not extra:
                return None
            return (
                f".{extra[0]}",
                f"'{fid}' is a boolean feature: it has no {extra[0]}, only `enabled`",
            )
        shown = f"'{value}'" if isinstance(value, str) else f"{value:,}"
        return "", f"'{fid}' is a boolean feature: write true or false, not {shown}"
    noun = f"metered ({kind.value})"
    if isinstance(value, bool):
        return (
            "",
            f"'{fid}' is a {noun} feature: write a limit (a whole number, 0 for none, "
            f"or 'unlimited'), not {str(value).lower()}",
        )
    if not isinstance(value, Mapping):
        return None
    if "limit" not in value:
        return "", f"'{fid}' is a {noun} feature: the mapping needs a `limit`"
    limit = value["limit"]
    limit = None if limit in (None, UNLIMITED) else limit
    enabled = value.get("enabled")
    if enabled is not None and enabled != (limit is None or limit > 0):
        return ".enabled", f"enabled: {str(enabled).lower()} contradicts limit {limit}"
    nudge_at = value.get("nudge_at")
    if nudge_at is not None:
        if limit is None:
            return ".nudge_at", "nudge_at needs a numeric limit, not 'unlimited'"
        if nudge_at > limit:
            return ".nudge_at", f"nudge_at {nudge_at:,} is above the limit {limit:,}"
    return None


def _rank(grant: Grant) -> float:
    if not grant.enabled:
        return 0
    return float("inf") if grant.limit is None else grant.limit


def _limit(grant: Grant) -> str:
    return "unlimited" if grant.limit is None else f"{grant.limit:,}"


def _less_message(
    fid: str, kind: FeatureKind, tier_id: str, grant: Grant, lower: tuple[Grant, str]
) -> str:
    lower_grant, lower_id = lower
    if kind is FeatureKind.BOOLEAN:
        return (
            f"'{tier_id}' does not include {fid} but the lower tier '{lower_id}' does: "
            "a higher tier must not remove a feature (reorder the tiers or hide one)"
        )
    return (
        f"'{tier_id}' grants {_limit(grant)} {fid} but the lower tier '{lower_id}' grants "
        f"{_limit(lower_grant)}: a higher tier must not give less (reorder the tiers or hide one)"
    )


def _iso(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z") if hasattr(value, "isoformat") else str(value)


def _key(value: Any) -> str:
    """An interval as written or as parsed (Interval.MONTH -> "month")."""
    return str(getattr(value, "value", value))
