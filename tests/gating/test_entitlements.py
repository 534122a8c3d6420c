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
        (sub(status="trialing", trial_end=NOW - timedelta(seconds=1)), "free", "trial_ended"),
        (sub(status="past_due", past_due_since=NOW - timedelta(days=6)), "starter", None),
        (
            sub(status="past_due", past_due_since=NOW - timedelta(days=8)),
            "free",
            "past_due_grace_expired",
        ),
        (sub(status="canceled"), "starter", None),
        (sub(status="canceled", period_end=NOW - timedelta(seconds=1)), "free", "canceled"),
        (sub(cancel_at_period_end=True, period_end=NOW - timedelta(hours=1)), "free", "canceled"),
        (sub(status="incomplete"), "free", "incomplete"),
        (sub(status="unpaid"), "free", "unpaid"),
    ],
)
def test_status_decides_between_the_tier_and_the_free_fallback(subscription, tier, reason):
    e = ent(subscription)
    assert (e.tier.id, e.fallback_reason) == (tier, reason)


def test_trial_extension_override_keeps_the_trial_going():
    trial = sub(status="trialing", trial_end=NOW - timedelta(days=1))
    e = ent(trial, overrides=[OverrideView("trial_extension", days=3)])
    assert e.tier.id == "starter"


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
