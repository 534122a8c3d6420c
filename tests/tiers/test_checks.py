"""tiers/checks.py (with the schema): each rule, one broken demo catalog, one precise issue.

Every case changes one thing in examples/catalog.yaml and asserts that exactly one issue is
reported, at the expected path, with the expected message: a rule that also fired elsewhere
(a cascade) would fail the case as surely as a rule that did not fire.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tiers.checks import did_you_mean, money
from tiers.loader import CatalogInvalid, CatalogIssue, load_catalog_text

DEMO = yaml.safe_load((Path(__file__).parents[2] / "examples" / "catalog.yaml").read_text())
ORDER = "a higher tier must not give less (reorder the tiers or hide one)"
ID_RULE = (
    "is not a valid id: use lower-case letters, digits and underscores, starting with a letter "
    "(at most 64 characters)"
)


def issues_after(change: Callable[[dict[str, Any]], Any]) -> list[CatalogIssue]:
    doc = copy.deepcopy(DEMO)
    change(doc)
    with pytest.raises(CatalogInvalid) as info:
        load_catalog_text(yaml.safe_dump(doc, sort_keys=False), "demo.yaml")
    return info.value.issues


def tier(doc: dict[str, Any], tier_id: str) -> dict[str, Any]:
    return next(t for t in doc["tiers"] if t["id"] == tier_id)


def addon(doc: dict[str, Any], addon_id: str) -> dict[str, Any]:
    return next(a for a in doc["addons"] if a["id"] == addon_id)


def promo(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["promotions"][0]


def setitem(target: Callable[[dict[str, Any]], dict[str, Any]], key: str, value: Any):
    return lambda doc: target(doc).__setitem__(key, value)


def delitem(target: Callable[[dict[str, Any]], dict[str, Any]], key: str):
    return lambda doc: target(doc).__delitem__(key)


def _without_tiers(doc: dict[str, Any]) -> None:
    doc["tiers"], doc["addons"], doc["promotions"] = [], [], []


def _two_recommended(doc: dict[str, Any]) -> None:
    tier(doc, "business")["recommended"] = True


def _hidden_recommended(doc: dict[str, Any]) -> None:
    del tier(doc, "pro")["recommended"]
    tier(doc, "team_legacy")["recommended"] = True


def _sales_recommended(doc: dict[str, Any]) -> None:
    del tier(doc, "pro")["recommended"]
    tier(doc, "enterprise")["recommended"] = True


def _amount_in_unknown_currency(doc: dict[str, Any]) -> None:
    del promo(doc)["percent_off"]
    promo(doc)["amount_off"] = {"gbp": 500}


def _two_promotions_one_code(doc: dict[str, Any]) -> None:
    promo(doc)["code"] = "LAUNCH"
    doc["promotions"].append({**promo(doc), "id": "launch_again", "code": "launch"})


PRO = lambda d: tier(d, "pro")  # noqa: E731
STARTER = lambda d: tier(d, "starter")  # noqa: E731
BUSINESS = lambda d: tier(d, "business")  # noqa: E731
FEATURES = lambda d: d["features"]  # noqa: E731

CASES: list[tuple[str, Callable[[dict[str, Any]], Any], str, str]] = [
    (
        "duplicate tier id",
        setitem(lambda d: tier(d, "team_legacy"), "id", "free"),
        "tiers[5].id",
        "duplicate tier id 'free' (also tiers[0])",
    ),
    (
        "duplicate add-on id",
        setitem(lambda d: addon(d, "seat_pack"), "id", "onboarding"),
        "addons[2].id",
        "duplicate add-on id 'onboarding' (also addons[1])",
    ),
    (
        "duplicate promotion id",
        lambda d: d["promotions"].append(copy.deepcopy(promo(d))),
        "promotions[1].id",
        "duplicate promotion id 'yearly_launch' (also promotions[0])",
    ),
    (
        "unknown feature in a tier",
        lambda d: STARTER(d)["features"].__setitem__("pdf_exports", True),
        "tiers[1].features.pdf_exports",
        "unknown feature 'pdf_exports': did you mean 'pdf_export'?",
    ),
    (
        "unknown feature in an add-on grant",
        setitem(lambda d: addon(d, "seat_pack"), "grants", {"seat": 5}),
        "addons[2].grants.seat",
        "unknown feature 'seat': did you mean 'seats'?",
    ),
    (
        "unknown feature in suggested_with",
        lambda d: addon(d, "onboarding")["suggested_with"].__setitem__(
            "features", ["automation_run"]
        ),
        "addons[1].suggested_with.features[0]",
        "unknown feature 'automation_run': did you mean 'automation_runs'?",
    ),
    (
        "add-on available to an unknown tier",
        setitem(lambda d: addon(d, "extended_support"), "available_to", ["starter", "pr"]),
        "addons[0].available_to[1]",
        "unknown tier 'pr': did you mean 'pro'?",
    ),
    (
        "add-on included in an unknown tier",
        setitem(lambda d: addon(d, "extended_support"), "included_in", ["busines", "enterprise"]),
        "addons[0].included_in[0]",
        "unknown tier 'busines': did you mean 'business'?",
    ),
    (
        "add-on suggested with an unknown tier",
        lambda d: addon(d, "extended_support")["suggested_with"].__setitem__("tiers", ["prof"]),
        "addons[0].suggested_with.tiers[0]",
        "unknown tier 'prof': did you mean 'pro'?",
    ),
    (
        "higher tier with a lower limit",
        lambda d: BUSINESS(d)["features"].__setitem__("seats", 20),
        "tiers[3].features.seats",
        f"'business' grants 20 seats but the lower tier 'pro' grants 25: {ORDER}",
    ),
    (
        "higher tier with a limited value below an unlimited one",
        lambda d: tier(d, "enterprise")["features"].__setitem__("projects", 500),
        "tiers[4].features.projects",
        f"'enterprise' grants 500 projects but the lower tier 'business' grants unlimited: {ORDER}",
    ),
    (
        "higher tier removing a boolean feature",
        lambda d: BUSINESS(d)["features"].__delitem__("pdf_export"),
        "tiers[3].features.pdf_export",
        "'business' does not include pdf_export but the lower tier 'pro' does: "
        "a higher tier must not remove a feature (reorder the tiers or hide one)",
    ),
    (
        "float price",
        lambda d: STARTER(d)["prices"]["month"].__setitem__("usd", 9.5),
        "tiers[1].prices.month.usd",
        "prices are integer minor units: write 950 for 9.5",
    ),
    (
        "string price",
        lambda d: STARTER(d)["prices"]["month"].__setitem__("usd", "9.00"),
        "tiers[1].prices.month.usd",
        "prices are integer minor units: write 900 for 9.00",
    ),
    (
        "boolean price",
        lambda d: STARTER(d)["prices"]["month"].__setitem__("usd", True),
        "tiers[1].prices.month.usd",
        "prices are integer minor units (1999 for 19.99), not true",
    ),
    (
        "negative price",
        lambda d: STARTER(d)["prices"]["month"].__setitem__("usd", -900),
        "tiers[1].prices.month.usd",
        "must not be negative, not -900",
    ),
    (
        "negative limit",
        lambda d: STARTER(d)["features"].__setitem__("projects", -1),
        "tiers[1].features.projects",
        "must not be negative, not -1",
    ),
    (
        "negative trial days",
        setitem(STARTER, "trial_days", -14),
        "tiers[1].trial_days",
        "must not be negative, not -14",
    ),
    (
        "price in an undeclared currency",
        lambda d: STARTER(d)["prices"]["month"].__setitem__("eru", 900),
        "tiers[1].prices.month.eru",
        "currency 'eru' is not declared in `currencies` (usd, eur): did you mean 'eur'?",
    ),
    (
        "paid tier missing a declared currency",
        lambda d: STARTER(d)["prices"]["year"].__delitem__("eur"),
        "tiers[1].prices.year",
        "no eur price: every declared currency (usd, eur) needs a price for each interval sold",
    ),
    (
        "yearly price above twelve monthly prices",
        lambda d: STARTER(d)["prices"]["year"].__setitem__("usd", 12000),
        "tiers[1].prices.year.usd",
        "the yearly price usd 120.00 is more than 12 x the monthly price usd 9.00 (usd 108.00)",
    ),
    (
        "contact-sales tier with prices",
        setitem(lambda d: tier(d, "enterprise"), "prices", {"month": {"usd": 1, "eur": 1}}),
        "tiers[4].prices",
        "tier 'enterprise' is contact_sales, so it has no self-serve price: "
        "remove `prices` or `contact_sales`",
    ),
    (
        "two recommended tiers",
        _two_recommended,
        "tiers[3].recommended",
        "only one tier may be recommended: 'pro' (tiers[2]) already is",
    ),
    (
        "hidden tier recommended",
        _hidden_recommended,
        "tiers[5].recommended",
        "a hidden tier cannot be recommended: it is never shown",
    ),
    (
        "contact-sales tier recommended",
        _sales_recommended,
        "tiers[4].recommended",
        "a contact_sales tier cannot be recommended: "
        "the highlighted tier must be buyable in one click",
    ),
    (
        "counter without resets",
        lambda d: d["features"]["api_calls"].__delitem__("resets"),
        "features.api_calls",
        "counter feature 'api_calls' needs `resets`: month, day or billing_period "
        "(use type: gauge for a total that never resets)",
    ),
    (
        "gauge with resets",
        lambda d: d["features"]["projects"].__setitem__("resets", "month"),
        "features.projects.resets",
        "a gauge feature never resets: remove `resets` "
        "(use type: counter for a per-period allowance)",
    ),
    (
        "boolean feature given a number",
        lambda d: BUSINESS(d)["features"].__setitem__("sso", 3),
        "tiers[3].features.sso",
        "'sso' is a boolean feature: write true or false, not 3",
    ),
    (
        "metered feature given true",
        lambda d: STARTER(d)["features"].__setitem__("projects", True),
        "tiers[1].features.projects",
        "'projects' is a metered (gauge) feature: write a limit (a whole number, 0 for none, "
        "or 'unlimited'), not true",
    ),
    (
        "limit written as a word",
        lambda d: STARTER(d)["features"].__setitem__("projects", "unlimted"),
        "tiers[1].features.projects",
        "must be true, false, a whole number or 'unlimited', not the text 'unlimted': "
        "did you mean 'unlimited'?",
    ),
    (
        "nudge_at above the limit",
        lambda d: PRO(d)["features"].__setitem__("api_calls", {"limit": 100, "nudge_at": 200}),
        "tiers[2].features.api_calls.nudge_at",
        "nudge_at 200 is above the limit 100",
    ),
    (
        "negative nudge_at",
        lambda d: PRO(d)["features"].__setitem__("api_calls", {"limit": 100000, "nudge_at": -5}),
        "tiers[2].features.api_calls.nudge_at",
        "must not be negative, not -5",
    ),
    (
        "nudge threshold outside 1..99 %",
        lambda d: d["offers"].__setitem__("nudge_threshold", "0%"),
        "offers.nudge_threshold",
        "must be between 1 % and 99 %, not 0 %",
    ),
    (
        "price jump guard outside 0..1000 %",
        lambda d: d["offers"].__setitem__("price_jump_guard", 1001),
        "offers.price_jump_guard",
        "must be between 0 % and 1,000 %, not 1,001 %",
    ),
    (
        "promotion with neither percent_off nor amount_off",
        lambda d: promo(d).__delitem__("percent_off"),
        "promotions[0]",
        "give exactly one of percent_off or amount_off (neither given)",
    ),
    (
        "promotion with both percent_off and amount_off",
        lambda d: promo(d).__setitem__("amount_off", {"usd": 500}),
        "promotions[0]",
        "give exactly one of percent_off or amount_off (both given)",
    ),
    (
        "percent_off outside 1..100",
        lambda d: promo(d).__setitem__("percent_off", 120),
        "promotions[0].percent_off",
        "must be between 1 and 100, not 120",
    ),
    (
        "promotion ending when it starts",
        lambda d: promo(d).__setitem__("ends_at", promo(d)["starts_at"]),
        "promotions[0].ends_at",
        "ends_at 2026-01-01T00:00:00Z is not after starts_at 2026-01-01T00:00:00Z",
    ),
    (
        "amount_off in an undeclared currency",
        _amount_in_unknown_currency,
        "promotions[0].amount_off.gbp",
        "currency 'gbp' is not declared in `currencies` (usd, eur)",
    ),
    (
        "promotion for an unknown tier",
        lambda d: promo(d).__setitem__("tiers", ["pro", "busines"]),
        "promotions[0].tiers[1]",
        "unknown tier 'busines': did you mean 'business'?",
    ),
    (
        "promotion for a tier without a price",
        lambda d: promo(d).__setitem__("tiers", ["free"]),
        "promotions[0].tiers[0]",
        "tier 'free' has no self-serve price to discount",
    ),
    (
        "promotion code with a space",
        lambda d: promo(d).__setitem__("code", "SPRING 10"),
        "promotions[0].code",
        "code 'SPRING 10' must be 2 to 64 letters, digits, '-' or '_', starting with a letter or "
        "digit",
    ),
    (
        "two promotions with one code",
        _two_promotions_one_code,
        "promotions[1].code",
        "code 'launch' is also promotions[0].code (customers type codes in any letter case)",
    ),
    (
        "repeating promotion without a number of months",
        lambda d: promo(d).__setitem__("duration", "repeating"),
        "promotions[0].duration_in_months",
        "duration: repeating needs duration_in_months",
    ),
    (
        "one-time add-on priced per month",
        setitem(lambda d: addon(d, "onboarding"), "prices", {"month": {"usd": 100, "eur": 100}}),
        "addons[1].prices.month",
        "a one_time add-on is priced under `once`, not `month` (or set billing: recurring)",
    ),
    (
        "recurring add-on priced once",
        setitem(lambda d: addon(d, "seat_pack"), "prices", {"once": {"usd": 100, "eur": 100}}),
        "addons[2].prices.once",
        "a recurring add-on is priced per month or year, not `once` (or set billing: one_time)",
    ),
    (
        "add-on without prices",
        delitem(lambda d: addon(d, "seat_pack"), "prices"),
        "addons[2].prices",
        "an add-on needs at least one price",
    ),
    (
        "recurring add-on with no yearly price for a tier sold yearly",
        lambda d: addon(d, "extended_support")["prices"].pop("year"),
        "addons[0].prices",
        "no year price, but tier 'starter', which can buy this add-on, is sold yearly: a "
        "recurring add-on renews with the plan, so add a year price (or limit available_to)",
    ),
    (
        "currency code that is not 3 letters",
        lambda d: d["currencies"].append("US$"),
        "currencies[2]",
        "'US$' is not a currency code: use a 3-letter ISO 4217 code like usd or eur",
    ),
    (
        "currency code unknown to babel",
        lambda d: d["currencies"].append("qqq"),
        "currencies[2]",
        "'qqq' is not a known ISO 4217 currency",
    ),
    (
        "currency listed twice",
        lambda d: d["currencies"].append("usd"),
        "currencies[2]",
        "currency 'usd' is listed twice",
    ),
    ("no tiers at all", _without_tiers, "tiers", "a catalog needs at least one tier"),
    (
        "tier id with capitals and a dash",
        setitem(lambda d: tier(d, "team_legacy"), "id", "Team-Legacy"),
        "tiers[5].id",
        f"'Team-Legacy' {ID_RULE}",
    ),
    (
        "feature id starting with a digit",
        lambda d: d["features"].__setitem__("2fa", {"type": "boolean"}),
        "features.2fa",
        f"'2fa' {ID_RULE}",
    ),
    (
        "contact_sales_url that is not http(s)",
        lambda d: d["offers"].__setitem__("contact_sales_url", "mailto:sales@trackly.example"),
        "offers.contact_sales_url",
        "must be an http:// or https:// URL, not 'mailto:sales@trackly.example'",
    ),
    (
        "contact-sales tier without a contact_sales_url",
        lambda d: d["offers"].__delitem__("contact_sales_url"),
        "offers.contact_sales_url",
        "tier 'enterprise' (tiers[4]) is contact_sales: set offers.contact_sales_url "
        "so its button leads somewhere",
    ),
    (
        "unknown tier field",
        setitem(STARTER, "trial_day", 3),
        "tiers[1].trial_day",
        "unknown field 'trial_day': did you mean 'trial_days'?",
    ),
    (
        "unknown feature field",
        lambda d: d["features"]["seats"].__setitem__("units", "seat"),
        "features.seats.units",
        "unknown field 'units': did you mean 'unit'?",
    ),
    (
        "unknown price interval",
        lambda d: STARTER(d)["prices"].__setitem__("monthly", STARTER(d)["prices"].pop("month")),
        "tiers[1].prices.monthly",
        "'monthly' is not one of month, year: did you mean 'month'?",
    ),
    (
        "unknown feature type",
        lambda d: d["features"]["sso"].__setitem__("type", "bool"),
        "features.sso.type",
        "'bool' is not one of boolean, counter, gauge: did you mean 'boolean'?",
    ),
    (
        "yes/no written as text",
        setitem(STARTER, "hidden", "no"),
        "tiers[1].hidden",
        "must be true or false, not the text 'no'",
    ),
]


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_broken_catalog_reports_exactly_one_precise_issue(change, path, message):
    assert issues_after(change) == [CatalogIssue(path, message)]


def test_there_are_at_least_twenty_distinct_rules_covered():
    assert len({message for *_, message in CASES}) >= 20


def test_boolean_mapping_form_accepts_enabled_only():
    def change(doc):
        BUSINESS(doc)["features"]["sso"] = {"enabled": True, "limit": 5}

    assert issues_after(change) == [
        CatalogIssue(
            "tiers[3].features.sso.limit",
            "'sso' is a boolean feature: it has no limit, only `enabled`",
        )
    ]


def test_hidden_legacy_tier_may_give_less_than_listed_tiers():
    doc = copy.deepcopy(DEMO)
    tier(doc, "team_legacy")["features"]["projects"] = 1
    assert load_catalog_text(yaml.safe_dump(doc)).tier("team_legacy").grant("projects").limit == 1


def test_did_you_mean_stays_silent_when_nothing_is_close():
    assert did_you_mean("zzz", ["projects", "seats"]) == ""
    assert did_you_mean("seat", ["projects", "seats"]) == ": did you mean 'seats'?"


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [(2900, "usd", "usd 29.00"), (1234567, "eur", "eur 12,345.67"), (500, "jpy", "jpy 500"),
     (-250, "usd", "usd -2.50")],
)  # fmt: skip
def test_money_uses_the_currency_decimals(amount, currency, shown):
    assert money(amount, currency) == shown


def test_a_promotion_for_a_hidden_tier_is_refused():
    def hide_business(doc):
        tier(doc, "business")["hidden"] = True
        tier(doc, "business").pop("recommended", None)

    issues = issues_after(hide_business)
    assert (
        CatalogIssue(
            "promotions[0].tiers[1]",
            "tier 'business' is hidden: it is never listed or offered, so its price is not "
            "self-serve and the promotion could never apply to it",
        )
        in issues
    )


def test_a_monthly_only_add_on_is_fine_for_tiers_sold_only_monthly():
    def monthly_only(doc: dict[str, Any]) -> None:
        addon(doc, "extended_support")["prices"].pop("year")
        for tid in ("starter", "pro"):
            tier(doc, tid)["prices"].pop("year")
        for promotion in doc["promotions"]:
            promotion["tiers"] = [t for t in promotion.get("tiers", []) if t != "pro"] or [
                "business"
            ]

    doc = copy.deepcopy(DEMO)
    monthly_only(doc)
    load_catalog_text(yaml.safe_dump(doc, sort_keys=False), "demo.yaml")
