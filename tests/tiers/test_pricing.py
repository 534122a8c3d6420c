"""tiers/pricing.py: the comparison table view model, built from the demo catalog and variants."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest

from tests.conftest import DEMO_CATALOG
from tiers.loader import load_catalog_file
from tiers.model import Interval, Promotion, ResetPeriod
from tiers.pricing import (
    NO_ACCOUNT_NOTE,
    NO_SALES_NOTE,
    NO_SIGNUP_NOTE,
    CallToAction,
    PlanLinks,
    build_pricing_table,
    resolve_options,
)

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog_file(DEMO_CATALOG)[0]


def table_of(catalog, **kwargs):
    options = {"interval": "month", "currency": "usd", "now": NOW, **kwargs}
    return build_pricing_table(catalog, **options)


def column(table, tier_id):
    return next(t for t in table.tiers if t.id == tier_id)


def cells(table, feature_id):
    row = next(r for g in table.groups for r in g.rows if r.id == feature_id)
    return {c.tier_id: c for c in row.cells}


def test_listed_tiers_side_by_side_in_catalog_order_without_the_hidden_legacy_tier(catalog):
    table = table_of(catalog)
    assert [t.id for t in table.tiers] == ["free", "starter", "pro", "business", "enterprise"]


def test_monthly_prices_are_formatted_for_the_currency(catalog):
    usd, eur = table_of(catalog), table_of(catalog, currency="eur")
    assert column(usd, "pro").prices["month"].text == "$29.00"
    assert column(usd, "pro").prices["month"].per == "/ month"
    assert column(eur, "pro").prices["month"].text == "€27.00"
    assert column(eur, "business").prices["year"].text == "€750.00"


def test_free_tier_shows_free_and_zero_and_contact_sales_shows_custom(catalog):
    table = table_of(catalog)
    free, enterprise = column(table, "free"), column(table, "enterprise")
    assert (free.prices["month"].text, free.prices["month"].amount) == ("Free", 0)
    assert (enterprise.prices["year"].text, enterprise.prices["year"].amount) == ("Custom", None)
    assert enterprise.cta.label == "Contact sales"
    assert enterprise.cta.href == catalog.offers.contact_sales_url


def test_yearly_price_carries_monthly_equivalent_and_saving(catalog):
    year = column(table_of(catalog, interval="year"), "pro").prices["year"]
    assert (year.text, year.per) == ("$290.00", "/ year")
    assert year.monthly_equivalent == 2417
    assert year.monthly_equivalent_text == "$24.17 / month, billed yearly"
    assert year.saving.amount == 5800 and year.saving.months_free == 2
    assert year.saving_text == "2 months free"


def test_a_saving_that_is_not_whole_months_shows_exact_amount_and_percent(catalog):
    pro = catalog.tier("pro")
    odd = dataclasses.replace(pro, prices={**pro.prices, Interval.YEAR: {"usd": 29200, "eur": 1}})
    changed = dataclasses.replace(
        catalog, tiers=tuple(odd if t.id == "pro" else t for t in catalog.tiers)
    )
    year = column(table_of(changed, interval="year"), "pro").prices["year"]
    assert year.saving_text == "Save $56.00 (16 %)"
    assert table_of(changed).best_saving_text == "Save up to 16 %"


def test_switch_label_says_months_free_when_every_saving_is_whole_months(catalog):
    assert table_of(catalog).best_saving_text == "Up to 2 months free"


def test_ctas_name_the_next_step(catalog):
    table = table_of(catalog)
    labels = {t.id: t.cta.label for t in table.tiers}
    assert labels == {
        "free": "Start free",
        "starter": "Start 14-day trial",
        "pro": "Start 14-day trial",
        "business": "Upgrade",
        "enterprise": "Contact sales",
    }
    assert column(table, "pro").trial_text == "14-day free trial"


def test_current_tier_is_marked_and_ctas_point_up_or_down_from_it(catalog):
    table = table_of(catalog, current_tier_id="pro")
    pro = column(table, "pro")
    assert pro.current and pro.badge == "Your plan"
    assert (pro.cta.label, pro.cta.href) == ("Your plan", None)
    assert column(table, "business").cta.label == "Upgrade"
    assert column(table, "starter").cta.label == "Switch to Starter"


def test_a_legacy_current_tier_is_named_but_not_listed(catalog):
    table = table_of(catalog, current_tier_id="team_legacy")
    assert table.current_tier_unlisted == "Team (legacy)"
    assert not any(t.current for t in table.tiers)
    # Team (legacy) costs 15.00 a month: Starter (9.00) is down, Pro (29.00) is up.
    assert column(table, "starter").cta.label == "Switch to Starter"
    assert column(table, "pro").cta.label == "Upgrade"


def test_recommended_is_the_catalogs_choice_unless_overridden(catalog):
    assert [t.id for t in table_of(catalog).tiers if t.recommended] == ["pro"]
    override = table_of(catalog, recommended_tier_id="business")
    assert [t.id for t in override.tiers if t.recommended] == ["business"]
    hidden = table_of(catalog, recommended_tier_id="team_legacy")
    assert [t.id for t in hidden.tiers if t.recommended] == ["pro"]


def recommended(table):
    return [t.id for t in table.tiers if t.recommended]


def primary(table):
    return {t.id: t.cta.label for t in table.tiers if t.cta.kind == "primary"}


def test_a_customer_is_never_recommended_their_own_tier_or_one_below_it(catalog):
    # Business ($79) is above the catalog's Pro ($29): the next tier up is recommended instead.
    business = table_of(catalog, current_tier_id="business")
    assert recommended(business) == ["enterprise"]
    assert primary(business) == {"enterprise": "Contact sales"}
    assert column(business, "pro").cta == CallToAction(
        "Switch to Pro", None, "secondary", NO_ACCOUNT_NOTE
    )
    # A host app's `recommended` at or below the current tier is ignored the same way.
    asked_down = table_of(catalog, current_tier_id="business", recommended_tier_id="starter")
    assert recommended(asked_down) == ["enterprise"]
    # On Pro itself: Business (the next one up) is the recommended and only primary button.
    pro = table_of(catalog, current_tier_id="pro")
    assert recommended(pro) == ["business"]
    assert primary(pro) == {"business": "Upgrade"}
    # Nothing above Enterprise: nothing is recommended, nothing is pushed.
    enterprise = table_of(catalog, current_tier_id="enterprise")
    assert recommended(enterprise) == [] and primary(enterprise) == {}


def test_recommendations_above_the_current_tier_stay_as_chosen(catalog):
    assert recommended(table_of(catalog, current_tier_id="starter")) == ["pro"]
    asked = table_of(catalog, current_tier_id="starter", recommended_tier_id="business")
    assert recommended(asked) == ["business"] and primary(asked) == {"business": "Upgrade"}
    # Team (legacy) costs $15.00 a month, ranked by price although it sits last in the catalog:
    # Pro ($29.00) is above it.
    legacy = table_of(catalog, current_tier_id="team_legacy")
    assert recommended(legacy) == ["pro"] and primary(legacy) == {"pro": "Upgrade"}


def test_a_visitor_has_one_primary_button_the_recommended_tiers(catalog):
    assert primary(table_of(catalog)) == {"pro": "Start 14-day trial"}


def test_an_enterprise_customer_sees_their_own_plan_not_contact_sales(catalog):
    table = table_of(catalog, current_tier_id="enterprise")
    enterprise = column(table, "enterprise")
    assert enterprise.current and enterprise.badge == "Your plan"
    assert (enterprise.cta.label, enterprise.cta.href, enterprise.cta.kind) == (
        "Your plan",
        None,
        "current",
    )
    assert column(table, "business").cta.label == "Switch to Business"


def test_without_links_plan_buttons_are_disabled_with_the_reason_never_a_dead_link(catalog):
    for table in (table_of(catalog), table_of(catalog, current_tier_id="starter")):
        hrefs = {t.id: t.cta.href for t in table.tiers}
        assert "#" not in hrefs.values() and "" not in hrefs.values()
    visitor = table_of(catalog)
    assert {t.id: t.cta.note for t in visitor.tiers} == {
        "free": NO_SIGNUP_NOTE,
        "starter": NO_SIGNUP_NOTE,
        "pro": NO_SIGNUP_NOTE,
        "business": NO_SIGNUP_NOTE,
        "enterprise": "",
    }
    assert column(visitor, "enterprise").cta.href == "https://trackly.example/contact-sales"
    customer = table_of(catalog, current_tier_id="starter")
    assert column(customer, "free").cta.note == NO_ACCOUNT_NOTE  # Switch to Free
    assert column(customer, "pro").cta.note == NO_ACCOUNT_NOTE  # Upgrade
    assert column(customer, "starter").cta.note == ""  # Your plan: nothing to explain


def test_a_contact_sales_tier_without_a_url_is_disabled_with_the_reason(catalog):
    offers = dataclasses.replace(catalog.offers, contact_sales_url=None)
    table = table_of(dataclasses.replace(catalog, offers=offers))
    cta = column(table, "enterprise").cta
    assert (cta.label, cta.href, cta.note) == ("Contact sales", None, NO_SALES_NOTE)


def test_plan_buttons_lead_where_the_caller_says(catalog):
    links = PlanLinks(
        upgrade=lambda tier, interval: f"/billing/checkout?tier={tier}&interval={interval}",
        downgrade=lambda tier, interval: f"/billing/downgrade?tier={tier}",
        signup=lambda tier, interval: f"https://app.example/signup?plan={tier}&interval={interval}",
    )
    visitor = table_of(catalog, interval="year", links=links)
    assert column(visitor, "pro").cta.href == "https://app.example/signup?plan=pro&interval=year"
    assert column(visitor, "free").cta.href == "https://app.example/signup?plan=free&interval=year"
    customer = table_of(catalog, current_tier_id="pro", links=links)
    assert {t.id: t.cta.href for t in customer.tiers} == {
        "free": "/billing/downgrade?tier=free",
        "starter": "/billing/downgrade?tier=starter",
        "pro": None,
        "business": "/billing/checkout?tier=business&interval=month",
        "enterprise": "https://trackly.example/contact-sales",
    }
    assert all(t.cta.note == "" for t in customer.tiers)


def test_the_json_table_says_why_a_button_is_disabled(catalog):
    pro = table_of(catalog).to_json()["tiers"][2]
    assert pro["cta"] == {
        "label": "Start 14-day trial",
        "href": None,
        "kind": "primary",
        "note": NO_SIGNUP_NOTE,
        "follows_interval": False,
    }


def test_feature_rows_are_grouped_in_catalog_order(catalog):
    groups = [(g.name, [r.id for r in g.rows]) for g in table_of(catalog).groups]
    assert groups == [
        ("Workspace", ["projects", "seats", "storage_gb"]),
        ("Automation", ["api_calls", "automation_runs"]),
        ("Reporting", ["pdf_export"]),
        ("Security", ["audit_log", "sso"]),
    ]


def test_cells_are_written_for_people(catalog):
    table = table_of(catalog)
    assert cells(table, "projects")["starter"].text == "10 projects"
    assert cells(table, "projects")["business"].text == "Unlimited"
    assert cells(table, "storage_gb")["free"].text == "1 GB"
    # Pro's API calls have an overage allowance: a soft limit, so not shown.
    assert cells(table, "api_calls")["pro"].text == "100,000 API calls / month"
    assert cells(table, "automation_runs")["pro"].text == "10,000 runs / billing period"
    assert cells(table, "api_calls")["enterprise"].text == "Unlimited"
    sso = cells(table, "sso")
    assert (sso["business"].boolean, sso["business"].included, sso["business"].text) == (
        True,
        True,
        "Included",
    )
    assert (sso["pro"].included, sso["pro"].text) == (False, "Not included")


def test_daily_counters_say_per_day(catalog):
    api = catalog.features["api_calls"]
    daily = dataclasses.replace(api, resets=ResetPeriod.DAY)
    changed = dataclasses.replace(catalog, features={**catalog.features, "api_calls": daily})
    assert cells(table_of(changed), "api_calls")["starter"].text == "10,000 API calls / day"


def test_addons_are_listed_with_prices_and_included_notes(catalog):
    addons = {a.id: a for a in table_of(catalog).addons}
    support = addons["extended_support"]
    assert support.prices == {"month": "$49.00 / month", "year": "$490.00 / year"}
    assert support.notes == ("Included in Business and Enterprise", "Available on Starter and Pro")
    assert addons["onboarding"].prices == {"once": "$299.00 one-time"}
    seat_pack = addons["seat_pack"]
    assert seat_pack.notes == ("Available on Starter, Pro and Business",)


def test_active_promotion_is_applied_honestly_with_its_end(catalog):
    table = table_of(catalog, interval="year")
    (banner,) = table.promotions
    assert banner.limited_time and banner.ends_text == "Ends March 31, 2027, 00:00 UTC"
    promo = column(table, "pro").prices["year"].promotion
    assert promo.amount == 23200
    assert promo.text == "$232.00 for the first year, then $290.00 / year"
    # The promotion is for yearly billing on Pro and Business only.
    assert column(table, "pro").prices["month"].promotion is None
    assert column(table, "starter").prices["year"].promotion is None


def test_a_promotion_is_not_shown_before_it_starts_or_after_it_ends(catalog):
    assert table_of(catalog, now=datetime(2025, 12, 31, tzinfo=UTC)).promotions == ()
    ended = table_of(catalog, interval="year", now=datetime(2027, 3, 31, tzinfo=UTC))
    assert ended.promotions == ()
    assert column(ended, "pro").prices["year"].promotion is None


def test_a_promotion_without_an_end_is_never_limited_time(catalog):
    forever = Promotion(id="forever", name="10 % off", percent_off=10, duration="forever")
    changed = dataclasses.replace(catalog, promotions=(forever,))
    table = table_of(changed)
    (banner,) = table.promotions
    assert not banner.limited_time and banner.ends_text == ""
    promo = column(table, "starter").prices["month"].promotion
    assert (promo.text, promo.limited_time) == ("$8.10 / month", False)
    # "every paid tier": never the free or the contact-sales tier.
    assert column(table, "free").prices["month"].promotion is None
    assert column(table, "enterprise").prices["month"].promotion is None


def test_resolve_options_accepts_any_case_and_explains_bad_values(catalog):
    options = resolve_options(catalog, " YEAR ", "EUR")
    assert (options.interval, options.currency, options.problems) == (Interval.YEAR, "eur", ())
    options = resolve_options(catalog, "weekly", "gbp")
    assert (options.interval, options.currency) == (Interval.MONTH, "usd")
    assert options.problems == (
        "Unknown billing interval 'weekly': use month or year. Showing monthly prices.",
        "Prices are not available in 'gbp' (offered: USD, EUR). Showing USD.",
    )


def test_json_form_has_integers_and_strings_only_never_floats(catalog):
    document = table_of(catalog, interval="year").to_json()

    def walk(node):
        assert not isinstance(node, float), node
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    json.dumps(document)
    pro = document["tiers"][2]
    assert pro["badge"] == "Recommended"
    assert pro["prices"]["year"]["saving"] == {"amount": 5800, "percent": 16, "months_free": 2}
    assert document["promotions"][0]["ends_at"] == "2027-03-31T00:00:00Z"


def test_a_promotion_that_takes_nothing_off_in_this_currency_has_no_banner(catalog):
    usd_only = Promotion(
        id="welcome",
        name="2.00 off",
        amount_off={"usd": 200},
        ends_at=datetime(2027, 1, 31, tzinfo=UTC),
    )
    changed = dataclasses.replace(catalog, promotions=(usd_only,))
    assert table_of(changed, currency="eur").promotions == ()
    assert [p.id for p in table_of(changed, currency="usd").promotions] == ["welcome"]


def test_a_yearly_promotion_keeps_its_banner_on_the_monthly_table(catalog):
    # The page switches intervals without a reload, and the banner invites the switch.
    assert [p.id for p in table_of(catalog, interval="month").promotions] == ["yearly_launch"]
