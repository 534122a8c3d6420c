"""Entitlement resolution from tier, add-ons, overrides and subscription status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml

from gating.entitlements import OverrideView, SubscriptionView, resolve
from tests.conftest import DEMO_CATALOG
from tiers.model import Catalog

NOW = datetime(2026, 11, 15, 12, tzinfo=UTC)
CATALOG = Catalog.from_document(yaml.safe_load(DEMO_CATALOG.read_text()))


def sub(tier="starter", status="active", **kw) -> SubscriptionView:
    values = dict(
        tier_id=tier,
        interval="month",
        currency="usd",
        status=status,
        catalog_version=1,
        period_start=NOW - timedelta(days=10),
        period_end=NOW + timedelta(days=20),
    )
    values.update(kw)
    return SubscriptionView(**values)


def ent(subscription=None, addons=(), overrides=(), catalog=CATALOG, now=NOW, grace=7):
    return resolve(
        newest=(2, catalog),
        pinned=(1, catalog) if subscription else None,
        subscription=subscription,
        addons=list(addons),
        overrides=list(overrides),
        now=now,
        grace_days=grace,
    )


def test_no_subscription_is_the_free_tier_of_the_newest_catalog():
    e = ent()
    assert (e.tier.id, e.catalog_version, e.status) == ("free", 2, "free")
    assert e.features["projects"].limit == 3
    assert not e.features["pdf_export"].enabled


def test_active_subscription_gets_its_pinned_tier():
    e = ent(sub("pro"))
    assert (e.tier.id, e.catalog_version) == ("pro", 1)
    assert e.features["api_calls"].limit == 100_000 and e.features["api_calls"].overage == 5000
    assert e.features["api_calls"].cap == 105_000


@pytest.mark.parametrize(
    ("subscription", "tier", "reason"),
    [
        (sub(status="trialing", trial_end=NOW + timedelta(days=1)), "starter", None),
        # billing turns a trial into its first paid period within a day of its end
        (sub(status="trialing", trial_end=NOW - timedelta(hours=23)), "starter", None),
        (sub(status="trialing", trial_end=NOW - timedelta(days=1)), "free", "trial_ended"),
        (sub(status="past_due", past_due_since=NOW - timedelta(days=6)), "starter", None),
        (
            sub(status="past_due", past_due_since=NOW - timedelta(days=8)),
            "free",
            "past_due_grace_expired",
        ),
        # canceled is ended: a cancellation at the period end stays active until then
        (sub(status="canceled"), "free", "canceled"),
        (sub(status="canceled", period_end=NOW - timedelta(seconds=1)), "free", "canceled"),
        (sub(cancel_at_period_end=True, period_end=NOW - timedelta(hours=1)), "free", "canceled"),
        (sub(status="incomplete"), "free", "incomplete"),
        (sub(status="unpaid"), "free", "unpaid"),
    ],
)
def test_status_decides_between_the_tier_and_the_free_fallback(subscription, tier, reason):
    e = ent(subscription)
    assert (e.tier.id, e.fallback_reason) == (tier, reason)


def test_a_trial_extension_override_is_billings_to_apply_not_the_gates():
    """A trial extension moves the subscription's trial_end in billing (the first charge moves
    with it): the gate reads the moved end and does not add the days a second time."""
    trial = sub(status="trialing", trial_end=NOW - timedelta(days=2))
    e = ent(trial, overrides=[OverrideView("trial_extension", days=3)])
    assert (e.tier.id, e.fallback_reason) == ("free", "trial_ended")


def test_addon_grants_add_to_the_tier_limit_times_quantity():
    e = ent(sub("starter"), addons=[("seat_pack", 2)])
    assert e.features["seats"].limit == 5 + 2 * 5
    assert e.features["seats"].source == "addon:seat_pack"


def test_custom_limit_override_replaces_the_limit_until_it_expires():
    override = OverrideView("limit", "projects", limit=500, expires_at=NOW + timedelta(days=1))
    assert ent(sub("starter"), overrides=[override]).features["projects"].limit == 500
    later = ent(sub("starter"), overrides=[override], now=NOW + timedelta(days=2))
    assert later.features["projects"].limit == 10


def test_unlimited_override_and_extra_feature():
    e = ent(
        sub("starter"),
        overrides=[OverrideView("limit", "projects", limit=None), OverrideView("feature", "sso")],
    )
    assert e.features["projects"].limit is None and e.features["projects"].enabled
    assert e.features["sso"].enabled


def test_nudge_threshold_defaults_to_the_catalog_percent_rounded_up():
    e = ent(sub("starter"))
    assert e.features["projects"].nudge_at == 8  # 80 % of 10
    assert e.features["api_calls"].nudge_at == 8000


def test_no_free_tier_means_no_access():
    doc = CATALOG.to_document()
    doc["tiers"] = [t for t in doc["tiers"] if t["id"] != "free"]
    e = ent(catalog=Catalog.from_document(doc))
    assert e.tier is None
    assert not any(a.enabled for a in e.features.values())


def test_legacy_hidden_tier_pinned_to_an_old_version_still_resolves():
    e = ent(sub("team_legacy"))
    assert e.tier.id == "team_legacy" and e.features["projects"].limit == 20


def _variant(edit) -> Catalog:
    doc = CATALOG.to_document()
    edit(doc)
    return Catalog.from_document(doc)


def _free_projects(n):
    def edit(doc):
        doc["tiers"][0]["features"]["projects"] = {"enabled": True, "limit": n}

    return _variant(edit)


def test_past_due_after_grace_falls_to_the_free_tier_of_the_newest_catalog():
    newest = _free_projects(5)
    late = sub(status="past_due", past_due_since=NOW - timedelta(days=30))
    e = resolve(
        newest=(2, newest),
        pinned=(1, CATALOG),
        subscription=late,
        addons=[],
        overrides=[],
        now=NOW,
        grace_days=7,
    )
    assert (e.tier.id, e.catalog_version, e.features["projects"].limit) == ("free", 2, 5)
    assert e.currency == "usd"
    # billing-period counters keep counting in the period the subscription is in
    assert e.billing_anchor == (late.period_start, late.period_end, late.interval, None)


def test_grace_days_come_from_the_settings():
    late = sub(status="past_due", past_due_since=NOW - timedelta(days=8))
    assert ent(late, grace=10).tier.id == "starter"
    assert ent(late, grace=3).tier.id == "free"


def test_cancel_at_period_end_keeps_the_tier_until_the_period_ends():
    e = ent(sub("pro", cancel_at_period_end=True))
    assert (e.tier.id, e.status, e.fallback_reason) == ("pro", "active", None)


def test_addon_included_in_a_tier_applies_without_being_bought():
    with_grants = _variant(
        lambda doc: doc["addons"][0].update(grants={"audit_log": True, "api_calls": 500})
    )
    business = ent(sub("business"), catalog=with_grants)
    assert business.features["audit_log"].source == "addon:extended_support"
    assert business.features["api_calls"].limit == 1_000_500
    assert ent(sub("starter"), catalog=with_grants).features["api_calls"].limit == 10_000


def test_boolean_addon_grant_enables_the_feature():
    with_sso = _variant(lambda doc: doc["addons"][2]["grants"].update(sso=True))
    e = ent(sub("starter"), addons=[("seat_pack", 1)], catalog=with_sso)
    assert e.features["sso"].enabled and e.features["sso"].limit is None


def test_metered_addon_on_an_unlimited_feature_stays_unlimited():
    more_projects = _variant(lambda doc: doc["addons"][2]["grants"].update(projects=5))
    e = ent(sub("business"), addons=[("seat_pack", 3)], catalog=more_projects)
    assert e.features["projects"].limit is None and e.features["projects"].enabled


def test_addon_raises_a_limit_from_zero_and_is_then_enabled():
    e = ent(sub("starter"), addons=[("seat_pack", 1)], catalog=_variant(_no_seats_in_starter))
    assert (e.features["seats"].enabled, e.features["seats"].limit) == (True, 5)


def _no_seats_in_starter(doc):
    del doc["tiers"][1]["features"]["seats"]


def test_inactive_or_unknown_addons_grant_nothing():
    e = ent(sub("starter"), addons=[("no_such_addon", 3), ("seat_pack", 0)])
    assert e.features["seats"].limit == 5 and e.features["seats"].source == "tier"


def test_explicit_nudge_at_wins_over_the_percent_and_addons_recompute_it():
    nudged = _variant(
        lambda doc: doc["tiers"][1]["features"].update(seats={"limit": 5, "nudge_at": 2})
    )
    assert ent(sub("starter"), catalog=nudged).features["seats"].nudge_at == 2
    raised = ent(sub("starter"), addons=[("seat_pack", 1)], catalog=nudged)
    assert raised.features["seats"].nudge_at == 8  # ceil(80 % of 10)


def test_nudge_threshold_rounds_up_without_floats():
    e = ent(sub("starter"), overrides=[OverrideView("limit", "projects", limit=7)])
    assert e.features["projects"].nudge_at == 6  # 80 % of 7 = 5.6


def test_overrides_also_apply_on_the_free_tier():
    e = ent(overrides=[OverrideView("feature", "pdf_export")])
    assert e.tier.id == "free" and e.features["pdf_export"].enabled
    assert e.features["pdf_export"].source == "override"


def test_limit_override_of_zero_disables_and_feature_override_of_a_metered_is_ignored():
    e = ent(
        sub("pro"),
        overrides=[OverrideView("limit", "projects", limit=0), OverrideView("feature", "seats")],
    )
    assert not e.features["projects"].enabled
    assert e.features["seats"].limit == 25


def test_no_access_denies_every_feature_with_status_no_access():
    doc = CATALOG.to_document()
    doc["tiers"] = [t for t in doc["tiers"] if t["id"] != "free"]
    e = ent(catalog=Catalog.from_document(doc))
    assert e.status == "no_access"
    assert {a.source for a in e.features.values()} == {"no_access"}
    assert e.features["projects"].cap == 0


def test_every_feature_lists_enabled_limit_nudge_overage_and_source():
    access = ent(sub("pro")).features
    assert set(access) == set(CATALOG.features)
    api = access["api_calls"]
    assert (api.enabled, api.limit, api.nudge_at, api.overage, api.source) == (
        True,
        100_000,
        80_000,
        5000,
        "tier",
    )
    assert (access["sso"].enabled, access["sso"].limit, access["sso"].cap) == (False, None, None)


def test_legacy_tier_pinned_to_an_old_version_resolves_after_it_left_the_newest_catalog():
    newest = _variant(lambda doc: doc.update(tiers=doc["tiers"][:-1]))
    assert newest.tier("team_legacy") is None
    e = resolve(
        newest=(7, newest),
        pinned=(3, CATALOG),
        subscription=sub("team_legacy", catalog_version=3),
        addons=[],
        overrides=[],
        now=NOW,
        grace_days=7,
    )
    assert (e.tier.id, e.catalog_version, e.features["seats"].limit) == ("team_legacy", 3, 10)


def _with_newer_features(doc):
    """A newer catalog version: `webhooks` (boolean) and `exports` (metered) in Business only,
    and a `exports_pack` add-on granting exports."""
    doc["features"]["webhooks"] = {"name": "Webhooks", "type": "boolean"}
    doc["features"]["exports"] = {"name": "Exports", "type": "counter", "unit": "export"}
    for tier in doc["tiers"]:
        if tier["id"] == "business":
            tier["features"]["webhooks"] = True
            tier["features"]["exports"] = {"enabled": True, "limit": 1000}
    doc["addons"].append(
        {
            "id": "exports_pack",
            "name": "Exports pack",
            "billing": "recurring",
            "prices": {"month": {"usd": 900}},
            "grants": {"exports": 200},
        }
    )


def _pinned_to_the_older_version(overrides=(), addons=()):
    newest = _variant(_with_newer_features)
    return resolve(
        newest=(2, newest),
        pinned=(1, CATALOG),
        subscription=sub("pro"),
        addons=list(addons),
        overrides=list(overrides),
        now=NOW,
        grace_days=7,
    )


def test_overrides_of_features_newer_than_the_pinned_catalog_apply_from_the_newest():
    e = _pinned_to_the_older_version(
        [OverrideView("feature", "webhooks"), OverrideView("limit", "exports", limit=50)]
    )
    assert e.catalog_version == 1 and e.tier.id == "pro"
    webhooks, exports = e.features["webhooks"], e.features["exports"]
    assert (webhooks.enabled, webhooks.limit, webhooks.source) == (True, None, "override")
    assert (exports.enabled, exports.limit, exports.nudge_at, exports.source) == (
        True,
        50,
        40,
        "override",
    )


def test_addon_grant_of_a_feature_newer_than_the_pinned_catalog_adds_to_nothing():
    e = _pinned_to_the_older_version(addons=[("exports_pack", 2)])
    exports = e.features["exports"]
    assert (exports.enabled, exports.limit, exports.source) == (True, 400, "addon:exports_pack")


def test_newer_features_nothing_grants_stay_out_of_the_pinned_entitlements():
    e = _pinned_to_the_older_version([OverrideView("feature", "no_such_feature")])
    assert "webhooks" not in e.features and "exports" not in e.features
    assert "no_such_feature" not in e.features
