"""gating/policy.py: which upgrade to offer, and its exact amounts. Table-driven, no database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from gating.policy import (
    NO_PLAN,
    Current,
    Need,
    OwnedAddOn,
    choose_post_purchase_addon,
    choose_upgrade,
)
from tests.conftest import DEMO_CATALOG
from tiers.loader import load_catalog_file
from tiers.model import (
    AddOn,
    AddOnBilling,
    Catalog,
    Feature,
    FeatureKind,
    Grant,
    Interval,
    OfferSettings,
    Promotion,
    Tier,
)

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
PERIOD = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
DEMO = load_catalog_file(DEMO_CATALOG)[0]


def tier(demo_id: str, catalog: Catalog = DEMO) -> Tier:
    found = catalog.tier(demo_id)
    assert found is not None
    return found


def addon(addon_id: str, catalog: Catalog = DEMO) -> AddOn:
    found = catalog.addon(addon_id)
    assert found is not None
    return found


def monthly(
    tier_id: str, currency: str = "usd", *, addons: tuple[str, ...] = (), **kw: object
) -> Current:
    """A paid monthly account on a demo tier, in the period Nov 1 .. Dec 1 2026."""
    return Current(
        tier(tier_id),
        currency,
        "month",
        *PERIOD,
        addons=tuple(OwnedAddOn(addon(a)) for a in addons),
        **kw,  # type: ignore[arg-type]
    )


FREE = Current(tier("free"), "usd")
NONE = Current(NO_PLAN, "usd")  # no plan at all: a catalog without a free tier
WITHOUT_FREE = replace(DEMO, tiers=tuple(t for t in DEMO.tiers if not t.free))


def projects(used: int, requested: int = 1) -> Need:
    return Need.units("projects", used, requested)


# ---- which tier -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "need", "expected"),
    [
        (FREE, projects(3), "starter"),
        (monthly("starter"), projects(10), "pro"),
        (monthly("starter"), projects(10, 40), "pro"),  # exactly Pro's 50
        (monthly("starter"), projects(10, 41), "business"),
        (monthly("starter"), Need.enable("sso"), "business"),
        (monthly("starter"), Need.enable("audit_log"), "pro"),
        (monthly("pro"), Need.units("api_calls", 100000, 1), "business"),  # overage is not sold
        (monthly("starter"), Need.units("seats", 5, 100), "enterprise"),
        (monthly("business"), Need.units("seats", 100, 1), "enterprise"),
    ],
)
def test_offers_the_cheapest_tier_above_that_unlocks_the_need(current, need, expected):
    plan = choose_upgrade(DEMO, current, need, NOW)
    assert plan is not None
    assert plan.to_tier.id == expected


def test_contact_sales_when_only_a_contact_sales_tier_satisfies_with_no_amounts():
    plan = choose_upgrade(DEMO, monthly("business"), Need.units("seats", 100, 1), NOW)
    assert plan is not None
    assert plan.contact_sales is True
    assert plan.contact_sales_url == "https://trackly.example/contact-sales"
    assert plan.amount_due_today is None and plan.new_recurring_amount is None
    assert plan.addon is None
    assert plan.reason.endswith("Enterprise includes unlimited seats: contact our sales team.")


def small_catalog(**changes: object) -> Catalog:
    """Three paid tiers where the higher-ranked 'mid' is cheaper than 'big'."""
    notes = Feature("notes", "Notes", FeatureKind.GAUGE, unit="note")
    share = Feature("share", "Sharing", FeatureKind.BOOLEAN)
    base = dict(
        name="Small",
        currencies=("usd",),
        features={"notes": notes, "share": share},
        tiers=(
            Tier(
                "basic",
                "Basic",
                0,
                prices={Interval.MONTH: {"usd": 1000}},
                features={"notes": Grant(True, 10)},
            ),
            Tier(
                "big",
                "Big",
                1,
                prices={Interval.MONTH: {"usd": 5000}},
                features={"notes": Grant(True, 100)},
            ),
            Tier(
                "mid",
                "Mid",
                2,
                prices={Interval.MONTH: {"usd": 3000}},
                features={"notes": Grant(True, 100)},
            ),
            Tier(
                "twin",
                "Twin",
                3,
                prices={Interval.MONTH: {"usd": 3000}},
                features={"notes": Grant(True, 100)},
            ),
        ),
        offers=OfferSettings(price_jump_guard_percent=25),
    )
    return Catalog(**{**base, **changes})  # type: ignore[arg-type]


def small(tier_id: str, catalog: Catalog | None = None) -> Current:
    catalog = catalog or small_catalog()
    return Current(tier(tier_id, catalog), "usd", "month", *PERIOD)


def test_cheapest_sufficient_tier_wins_over_rank_and_ties_go_to_the_lower_order():
    plan = choose_upgrade(small_catalog(), small("basic"), Need.units("notes", 10, 1), NOW)
    assert plan is not None
    assert plan.to_tier.id == "mid"  # 30.00 beats Big's 50.00; Twin ties at 30.00 but ranks later


def test_no_tier_unlocks_the_need_gives_no_offer():
    assert choose_upgrade(small_catalog(), small("basic"), Need.enable("share"), NOW) is None
    assert choose_upgrade(small_catalog(), small("basic"), Need.units("notes", 10, 91), NOW) is None
    assert choose_upgrade(DEMO, FREE, Need.enable("no_such_feature"), NOW) is None


def test_a_tier_not_sold_in_the_accounts_currency_or_interval_is_not_offered():
    eur_only = replace(tier("mid", small_catalog()), prices={Interval.MONTH: {"eur": 2000}})
    catalog = small_catalog(
        tiers=tuple(eur_only if t.id == "mid" else t for t in small_catalog().tiers)
    )
    plan = choose_upgrade(catalog, small("basic", catalog), Need.units("notes", 10, 1), NOW)
    assert plan is not None and plan.to_tier.id == "twin"


# ---- amounts ------------------------------------------------------------------------------


def test_paid_upgrade_is_prorated_from_now_over_the_current_period():
    # 15.5 of 30 days remain: credit 900 x 15.5/30 = 465, debit 2900 x 15.5/30 = 1498.33 -> 1498.
    plan = choose_upgrade(DEMO, monthly("starter"), projects(10), NOW)
    assert plan is not None
    assert (plan.interval, plan.currency) == ("month", "usd")
    assert plan.new_recurring_amount == 2900
    assert plan.amount_due_today == 1498 - 465
    assert plan.next_renewal_amount == 2900
    assert plan.next_renewal_at == PERIOD[1]
    assert plan.trial_end is None and plan.note is None


def test_eur_account_gets_eur_amounts():
    plan = choose_upgrade(DEMO, monthly("starter", "eur"), projects(10), NOW)
    assert plan is not None
    assert plan.currency == "eur"
    assert plan.new_recurring_amount == 2700
    assert plan.amount_due_today == 1395 - 465  # 2700 x 15.5/30 = 1395
    assert plan.yearly is not None and plan.yearly.recurring_amount == 27000


def test_yearly_account_gets_yearly_prices_and_no_yearly_alternative():
    year = (datetime(2026, 5, 15, 12, tzinfo=UTC), datetime(2027, 5, 15, 12, tzinfo=UTC))
    current = Current(tier("starter"), "usd", "year", *year)
    plan = choose_upgrade(DEMO, current, projects(10), NOW)
    assert plan is not None
    assert plan.interval == "year" and plan.new_recurring_amount == 29000
    # 181 of 365 days remain: credit 9000 x 181/365 = 4463.0, debit 29000 x 181/365 = 14380.8
    # -> 14381, and the 20 % yearly launch comes off the debit: 2876.2 -> 2876.
    assert plan.promotion is not None and plan.promotion.discount == 2876
    assert plan.amount_due_today == 14381 - 2876 - 4463
    assert plan.next_renewal_amount == 29000  # the promotion is for the first charge only
    assert plan.yearly is None


def test_free_account_pays_the_full_first_period_with_no_proration():
    plan = choose_upgrade(DEMO, FREE, projects(3), NOW)
    assert plan is not None
    assert plan.amount_due_today == 900
    assert plan.next_renewal_amount == 900
    assert plan.next_renewal_at == datetime(2026, 12, 15, 12, tzinfo=UTC)


def test_trialing_account_pays_nothing_today_and_the_plan_says_when_the_first_charge_is():
    trial_end = datetime(2026, 11, 20, tzinfo=UTC)
    current = monthly("starter", trial_end=trial_end)
    plan = choose_upgrade(DEMO, current, projects(10), NOW)
    assert plan is not None
    assert plan.amount_due_today == 0
    assert plan.trial_end == trial_end and plan.next_renewal_at == trial_end
    assert plan.next_renewal_amount == 2900
    assert plan.note is not None and "nothing is charged today" in plan.note
    assert "$29.00 is on November 20, 2026" in plan.note
    assert plan.yearly is not None and plan.yearly.amount_due_today == 0


def test_kept_recurring_add_ons_are_in_the_renewal_and_unchanged_so_not_prorated():
    plan = choose_upgrade(DEMO, monthly("starter", addons=("seat_pack",)), projects(10), NOW)
    assert plan is not None
    assert plan.amount_due_today == 1498 - 465
    assert plan.next_renewal_amount == 2900 + 2500


def test_add_on_grants_count_toward_the_need():
    # Starter has 5 seats, a seat pack 5 more: 10 used + 1 needs 11, which Pro (25 + 5) covers.
    current = monthly("starter", addons=("seat_pack",))
    plan = choose_upgrade(DEMO, current, Need.units("seats", 10, 1), NOW)
    assert plan is not None
    assert (plan.from_limit, plan.to_limit) == (10, 30)
    assert plan.usage_text == "10 of 10 seats used"


# ---- yearly alternative and promotions ----------------------------------------------------------


def test_monthly_account_sees_the_yearly_alternative_with_its_saving_and_promotion():
    plan = choose_upgrade(DEMO, monthly("starter"), projects(10), NOW)
    assert plan is not None and plan.yearly is not None
    yearly = plan.yearly
    assert yearly.recurring_amount == 29000
    # The cycle resets: credit the unused month (465), charge a year now minus 20 % (5800).
    assert yearly.amount_due_today == 29000 - 5800 - 465
    assert yearly.next_renewal_at == datetime(2027, 11, 15, 12, tzinfo=UTC)
    assert (yearly.saving_amount, yearly.saving_percent) == (34800 - 29000, 16)
    assert yearly.promotion is not None
    assert (yearly.promotion.id, yearly.promotion.discount) == ("yearly_launch", 5800)
    assert yearly.promotion.limited_time is True
    assert plan.promotion is None  # the launch promotion is for yearly billing only


def test_expired_promotion_is_not_shown_or_applied():
    later = datetime(2027, 4, 1, tzinfo=UTC)
    current = Current(
        tier("starter"),
        "usd",
        "month",
        datetime(2027, 3, 20, tzinfo=UTC),
        datetime(2027, 4, 20, tzinfo=UTC),
    )
    plan = choose_upgrade(DEMO, current, projects(10), later)
    assert plan is not None and plan.yearly is not None
    assert plan.yearly.promotion is None
    assert plan.yearly.amount_due_today == 29000 - round(900 * 19 / 31)


@pytest.mark.parametrize(
    ("promotion", "shown", "limited"),
    [
        (Promotion("p", "10 % off", percent_off=10), True, False),
        (
            Promotion("p", "10 % off", percent_off=10, ends_at=datetime(2027, 1, 1, tzinfo=UTC)),
            True,
            True,
        ),
        (
            Promotion("p", "later", percent_off=10, starts_at=datetime(2027, 1, 1, tzinfo=UTC)),
            False,
            False,
        ),
        (Promotion("p", "other tier", percent_off=10, tiers=("big",)), False, False),
        (Promotion("p", "yearly only", percent_off=10, intervals=(Interval.YEAR,)), False, False),
        (Promotion("p", "needs a code", percent_off=10, code="SAVE10"), False, False),
        (Promotion("p", "5 off", amount_off={"usd": 500}), True, False),
        (Promotion("p", "5 EUR off", amount_off={"eur": 500}), False, False),
    ],
)
def test_promotion_is_shown_only_when_active_and_applicable_and_limited_only_if_it_ends(
    promotion, shown, limited
):
    catalog = small_catalog(promotions=(promotion,))
    plan = choose_upgrade(catalog, small("basic", catalog), Need.units("notes", 10, 1), NOW)
    assert plan is not None
    assert (plan.promotion is not None) == shown
    without = choose_upgrade(small_catalog(), small("basic"), Need.units("notes", 10, 1), NOW)
    assert without is not None and without.amount_due_today is not None
    if plan.promotion is not None:
        assert plan.promotion.limited_time is limited
        assert plan.amount_due_today == without.amount_due_today - plan.promotion.discount
        assert plan.promotion.discount > 0
    else:
        assert plan.amount_due_today == without.amount_due_today


def test_forever_promotion_also_discounts_the_renewal():
    catalog = small_catalog(
        promotions=(Promotion("p", "10 %", percent_off=10, duration="forever"),)
    )
    plan = choose_upgrade(catalog, small("basic", catalog), Need.units("notes", 10, 1), NOW)
    assert plan is not None
    assert plan.next_renewal_amount == 2700


# ---- price-jump guard -----------------------------------------------------------------------


def test_jump_within_the_guard_has_no_message():
    catalog = small_catalog(
        tiers=(
            Tier(
                "basic",
                "Basic",
                0,
                prices={Interval.MONTH: {"usd": 1000}},
                features={"notes": Grant(True, 10)},
            ),
            Tier(
                "more",
                "More",
                1,
                prices={Interval.MONTH: {"usd": 1250}},
                features={"notes": Grant(True, 20)},
            ),
        )
    )
    plan = choose_upgrade(catalog, small("basic", catalog), Need.units("notes", 10, 1), NOW)
    assert plan is not None and plan.price_jump is not None
    assert (plan.price_jump.percent, plan.price_jump.exceeds_guard) == (25, False)
    assert plan.price_jump.message is None


def test_jump_over_the_guard_is_said_plainly_with_the_yearly_price_and_promotion():
    plan = choose_upgrade(DEMO, monthly("starter"), projects(10), NOW)
    assert plan is not None and plan.price_jump is not None
    assert plan.price_jump.percent == 223  # 2000 x 100 / 900 = 222.2, rounded up
    assert plan.price_jump.exceeds_guard is True
    assert plan.price_jump.message == (
        "Pro costs $29.00 / month, $20.00 more than Starter (+223 %). "
        "Paid yearly: $290.00 / year, saving $58.00 (16 %). "
        "20 % off your first year until March 31, 2027."
    )


def test_any_jump_from_the_free_tier_counts():
    plan = choose_upgrade(DEMO, FREE, projects(3), NOW)
    assert plan is not None and plan.price_jump is not None
    assert plan.price_jump.percent is None and plan.price_jump.exceeds_guard is True
    assert plan.price_jump.message is not None
    assert plan.price_jump.message.startswith("Starter costs $9.00 / month, $9.00 more than Free.")


def test_a_first_plan_from_no_plan_is_quoted_as_one_from_the_free_tier():
    """Nothing granted and nothing paid: the cheapest plan that unlocks the need, its full
    first period today, and the jump counted as from the free tier."""
    for need, expected in ((projects(0), "starter"), (Need.enable("audit_log"), "pro")):
        plan = choose_upgrade(WITHOUT_FREE, NONE, need, NOW)
        from_free = choose_upgrade(DEMO, FREE, need, NOW)
        assert plan is not None and from_free is not None
        assert plan.to_tier.id == from_free.to_tier.id == expected
        assert plan.from_tier is NO_PLAN and plan.interval == "month"
        amounts = ("amount_due_today", "next_renewal_amount", "next_renewal_at", "yearly")
        assert [getattr(plan, a) for a in amounts] == [getattr(from_free, a) for a in amounts]
        assert plan.price_jump is not None and plan.price_jump.exceeds_guard is True
        assert plan.price_jump.percent is None
    first = choose_upgrade(WITHOUT_FREE, replace(NONE, first_trial=True), projects(0), NOW)
    assert first is not None and first.amount_due_today == 0 and first.trial_end is not None


def test_the_jump_from_no_plan_states_the_new_price():
    plan = choose_upgrade(WITHOUT_FREE, NONE, projects(0), NOW)
    assert plan is not None and plan.price_jump is not None
    assert plan.price_jump.message == (
        "Starter costs $9.00 / month. Paid yearly: $90.00 / year, saving $18.00 (16 %)."
    )


# ---- add-ons --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "need", "expected"),
    [
        # feature match: a seat pack for a seats limit
        (monthly("starter"), Need.units("seats", 5, 1), ("seat_pack", 2500, "month")),
        # tier match: extended support is suggested with Pro
        (monthly("starter"), projects(10), ("extended_support", 4900, "month")),
        # feature match (onboarding) wins over the cheaper tier match (extended support)
        (monthly("starter"), Need.units("automation_runs", 1000, 1), ("onboarding", 29900, "once")),
        # already owned: nothing else is related
        (monthly("starter", addons=("extended_support",)), projects(10), None),
        # included in Business: not suggested; nothing else relates to SSO
        (monthly("starter"), Need.enable("sso"), None),
    ],
)
def test_at_most_one_related_add_on_is_suggested(current, need, expected):
    plan = choose_upgrade(DEMO, current, need, NOW)
    assert plan is not None
    got = plan.addon and (plan.addon.id, plan.addon.amount, plan.addon.interval)
    assert got == expected


def test_add_on_included_in_the_target_tier_is_not_suggested():
    support = AddOn(
        "support",
        "Support",
        AddOnBilling.RECURRING,
        prices={"month": {"usd": 100}},
        included_in=("mid",),
        suggested_with_features=("notes",),
    )
    catalog = small_catalog(addons=(support,))
    plan = choose_upgrade(catalog, small("basic", catalog), Need.units("notes", 10, 1), NOW)
    assert plan is not None and plan.to_tier.id == "mid"
    assert plan.addon is None


@pytest.mark.parametrize(
    ("tier_id", "owned", "expected"),
    [
        ("pro", (), "extended_support"),
        ("starter", (), "extended_support"),
        ("pro", ("extended_support",), None),
        ("business", (), None),
        ("free", (), None),
    ],
)
def test_post_purchase_cross_sell_is_a_support_add_on_the_tier_can_buy(tier_id, owned, expected):
    chosen = choose_post_purchase_addon(DEMO, tier(tier_id), set(owned), "month", "usd")
    assert (chosen.id if chosen else None) == expected
    assert choose_post_purchase_addon(DEMO, tier("pro"), set(), "month", "jpy") is None


# ---- words ----------------------------------------------------------------------------------


def test_limits_are_in_the_customers_usage_terms():
    plan = choose_upgrade(DEMO, monthly("starter"), projects(10), NOW)
    assert plan is not None
    assert plan.usage_text == "10 of 10 projects used"
    assert (plan.from_limit_text, plan.to_limit_text) == ("10 projects", "50 projects")
    assert plan.reason == (
        "Starter includes 10 projects and 10 are used; 1 more project requested. "
        "Pro includes 50 projects."
    )
    bigger = choose_upgrade(DEMO, monthly("starter"), projects(10, 45), NOW)
    assert bigger is not None and bigger.to_limit_text == "Unlimited projects"
    assert "55 more projects requested" not in bigger.reason
    assert "45 more projects requested" in bigger.reason
    sso = choose_upgrade(DEMO, monthly("starter"), Need.enable("sso"), NOW)
    assert sso is not None and sso.usage_text is None
    assert sso.to_limit_text == "Single sign-on (SAML) included"
    assert sso.from_limit_text == "Single sign-on (SAML) not included"
    calls = choose_upgrade(DEMO, monthly("starter"), Need.units("api_calls", 10000, 1), NOW)
    assert calls is not None and calls.usage_text == "10,000 of 10,000 API calls used"
    assert calls.to_limit_text == "100,000 API calls"


def test_a_need_with_no_plan_is_stated_without_naming_a_plan():
    plan = choose_upgrade(WITHOUT_FREE, NONE, projects(2), NOW)
    assert plan is not None
    assert (plan.usage_text, plan.from_limit_text) == ("2 projects used", "Projects not included")
    assert plan.reason == (
        "Without a plan, no projects are included and 2 are used; 1 more project requested. "
        "Starter includes 10 projects."
    )
    sso = choose_upgrade(WITHOUT_FREE, NONE, Need.enable("sso"), NOW)
    assert sso is not None
    assert sso.reason == "Single sign-on (SAML) needs a plan; Business includes it."


# ---- legacy ---------------------------------------------------------------------------------


def test_hidden_legacy_tier_is_offered_a_newest_catalog_tier_that_grants_at_least_as_much():
    plan = choose_upgrade(DEMO, monthly("team_legacy"), projects(20), NOW)
    assert plan is not None
    # Starter is cheaper but grants fewer projects and seats than Team: Pro is the upgrade.
    assert plan.to_tier.id == "pro"
    assert plan.from_tier.id == "team_legacy"
    assert plan.amount_due_today == 1498 - round(1500 * 15.5 / 30)
    assert plan.price_jump is not None and plan.price_jump.percent == 94


def test_pinned_tier_from_an_old_catalog_is_compared_by_grants_and_price_not_order():
    old_team = Tier(
        "team",
        "Team",
        9,
        prices={Interval.MONTH: {"usd": 1500}},
        features={"projects": Grant(True, 20), "seats": Grant(True, 10)},
    )
    current = Current(old_team, "usd", "month", *PERIOD)
    plan = choose_upgrade(DEMO, current, projects(20), NOW)
    assert plan is not None and plan.to_tier.id == "pro"
    assert plan.amount_due_today == 1498 - 775
