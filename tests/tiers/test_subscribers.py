"""tiers/subscribers.py: moving pinned subscriptions between catalog versions, with impact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from gating.models import Account, Subscription, SubscriptionStatus, UsageCounter
from tiergate.exceptions import Conflict, InvalidRequest, NotFound
from tiers import store
from tiers.loader import load_catalog_text
from tiers.subscribers import GAUGE_PERIOD, OverLimit, migrate_subscribers

DEMO_TEXT = (Path(__file__).parents[2] / "examples" / "catalog.yaml").read_text()
MONTH_START = datetime(2026, 11, 1, tzinfo=UTC)  # the conftest clock is 2026-11-15T12:00Z


def demo_v2_text() -> str:
    """The demo with a stricter Pro (fewer seats and API calls, no audit log, dearer) and the
    legacy Team tier gone."""
    text = DEMO_TEXT.replace("      seats: 25\n", "      seats: 10\n")
    text = text.replace("api_calls: {limit: 100000, overage: 5000}", "api_calls: 20000")
    text = text.replace("      audit_log: true\n\n  - id: business", "\n  - id: business")
    text = text.replace("month: {usd: 2900, eur: 2700}", "month: {usd: 3200, eur: 2700}")
    return text[: text.index("  # Sold until")] + text[text.index("addons:") :]


def publish_text(session, clock, text: str, note: str = "v") -> int:
    result = store.publish(
        session, load_catalog_text(text), source=text, author="test", note=note, now=clock.now()
    )
    return result.version.version


def subscribe(session, clock, account_id, tier_id, version, *, interval="month", currency="usd"):
    """An account with an active subscription pinned to `version`."""
    now = clock.now()
    session.add(Account(id=account_id, created_at=now, updated_at=now))
    subscription = Subscription(
        account_id=account_id,
        tier_id=tier_id,
        interval=interval,
        currency=currency,
        status=SubscriptionStatus.ACTIVE,
        catalog_version=version,
        current_period_start=now - timedelta(days=10),
        current_period_end=now + timedelta(days=20),
        created_at=now,
        updated_at=now,
    )
    session.add(subscription)
    session.flush()
    return subscription


def use(session, clock, account_id, feature_id, used, period_start=GAUGE_PERIOD):
    session.add(
        UsageCounter(
            account_id=account_id,
            feature_id=feature_id,
            period_start=period_start,
            used=used,
            updated_at=clock.now(),
        )
    )
    session.flush()


def pinned(session) -> dict[str, int]:
    session.expire_all()
    return {s.account_id: s.catalog_version for s in session.scalars(select(Subscription))}


@pytest.fixture
def versions(demo_catalog, session, clock) -> tuple[int, int]:
    v2 = publish_text(session, clock, demo_v2_text())
    session.commit()
    return demo_catalog.version, v2


def test_migration_reports_lost_feature_and_gauge_over_the_new_limit(versions, session, clock):
    v1, v2 = versions
    subscribe(session, clock, "acme", "pro", v1)
    use(session, clock, "acme", "seats", 12)
    report = migrate_subscribers(session, clock, from_version=v1, to_version=v2, dry_run=True)
    [impact] = report.moved
    assert impact.account_id == "acme"
    assert impact.lost_features == ("audit_log",)
    assert impact.over_limits == (OverLimit("seats", 12, 10),)
    assert impact.notes == ("price per month: usd 29.00 -> 32.00",)
    assert (
        "  acme (pro): loses audit_log; over the new seats limit (12 used, limit 10); "
        "price per month: usd 29.00 -> 32.00"
    ) in report.lines()


def test_monthly_counter_usage_is_read_from_the_current_calendar_month(versions, session, clock):
    v1, v2 = versions
    subscribe(session, clock, "acme", "pro", v1, currency="eur")
    use(session, clock, "acme", "api_calls", 25_000, MONTH_START)
    use(session, clock, "acme", "api_calls", 99_000, datetime(2026, 10, 1, tzinfo=UTC))
    report = migrate_subscribers(session, clock, from_version=v1, to_version=v2, dry_run=True)
    assert report.moved[0].over_limits == (OverLimit("api_calls", 25_000, 20_000),)


def test_billing_period_counter_is_read_at_the_subscription_period_start(versions, session, clock):
    v1, v2 = versions
    subscription = subscribe(session, clock, "acme", "starter", v1)
    use(session, clock, "acme", "automation_runs", 5_000, subscription.current_period_start)
    report = migrate_subscribers(session, clock, from_version=v1, to_version=v2, dry_run=True)
    # Starter did not change: 5,000 runs is over its unchanged 1,000 limit, reported all the same.
    assert report.moved[0].over_limits == (OverLimit("automation_runs", 5_000, 1_000),)


def test_unaffected_accounts_are_counted_not_listed(versions, session, clock):
    v1, v2 = versions
    subscribe(session, clock, "calm", "business", v1)
    report = migrate_subscribers(session, clock, from_version=v1, to_version=v2, dry_run=True)
    assert not report.moved[0].affected
    assert "  1 account(s) keep every feature and stay within their limits." in report.lines()


def test_dry_run_changes_nothing(versions, session, clock):
    v1, v2 = versions
    subscribe(session, clock, "acme", "pro", v1)
    session.commit()
    report = migrate_subscribers(session, clock, from_version=v1, to_version=v2, dry_run=True)
    session.commit()
    assert report.dry_run and report.lines()[-1] == "Dry run: nothing was changed."
    assert pinned(session) == {"acme": v1}


def test_migration_repins_only_the_chosen_version_and_tier(versions, session, clock):
    v1, v2 = versions
    subscribe(session, clock, "acme", "pro", v1)
    subscribe(session, clock, "bolt", "starter", v1)
    subscribe(session, clock, "cara", "pro", v2)
    report = migrate_subscribers(session, clock, from_version=v1, to_version=v2, tier_id="pro")
    session.commit()
    assert [i.account_id for i in report.moved] == ["acme"]
    assert pinned(session) == {"acme": v2, "bolt": v1, "cara": v2}


def test_tier_missing_in_the_target_is_refused_and_nothing_moves(versions, session, clock):
    v1, v2 = versions
    subscribe(session, clock, "acme", "pro", v1)
    subscribe(session, clock, "old", "team_legacy", v1)
    with pytest.raises(Conflict) as info:
        migrate_subscribers(session, clock, from_version=v1, to_version=v2)
    assert info.value.message == (
        f"Catalog version {v2} has no tier 'team_legacy': 1 subscription(s) would be left "
        f"without their tier. Map them to another tier first, or pass --force to leave them "
        f"on version {v1}."
    )
    assert pinned(session) == {"acme": v1, "old": v1}


def test_scheduled_tier_missing_in_the_target_is_refused_too(versions, session, clock):
    v1, v2 = versions
    subscribe(session, clock, "acme", "pro", v1).scheduled_tier_id = "team_legacy"
    with pytest.raises(Conflict):
        migrate_subscribers(session, clock, from_version=v1, to_version=v2)


def test_force_skips_subscriptions_whose_tier_is_gone(versions, session, clock):
    v1, v2 = versions
    subscribe(session, clock, "acme", "pro", v1)
    subscribe(session, clock, "old", "team_legacy", v1)
    report = migrate_subscribers(session, clock, from_version=v1, to_version=v2, force=True)
    session.commit()
    assert report.skipped == (("old", "team_legacy"),)
    assert pinned(session) == {"acme": v2, "old": v1}


def test_unknown_versions_and_tiers_are_clear_errors(versions, session, clock):
    v1, v2 = versions
    with pytest.raises(NotFound, match="Catalog version 9 does not exist"):
        migrate_subscribers(session, clock, from_version=9, to_version=v2)
    with pytest.raises(InvalidRequest, match="nothing to move"):
        migrate_subscribers(session, clock, from_version=v1, to_version=v1)
    with pytest.raises(NotFound) as info:
        migrate_subscribers(session, clock, from_version=v1, to_version=v2, tier_id="prp")
    assert info.value.message == (
        f"Tier 'prp' does not exist in catalog version {v1}: did you mean 'pro'?"
    )


def monthly_only_starter_text() -> str:
    """The demo with Starter sold monthly only."""
    text = DEMO_TEXT.replace(
        "      month: {usd: 900, eur: 900}\n      year: {usd: 9000, eur: 9000}\n",
        "      month: {usd: 900, eur: 900}\n",
    )
    assert text != DEMO_TEXT
    return text


def test_a_target_that_does_not_sell_the_tier_at_its_interval_is_refused(
    demo_catalog, session, clock
):
    v1 = demo_catalog.version
    v2 = publish_text(session, clock, monthly_only_starter_text())
    subscribe(session, clock, "acme", "starter", v1, interval="year")
    subscribe(session, clock, "bolt", "starter", v1)
    with pytest.raises(Conflict) as info:
        migrate_subscribers(session, clock, from_version=v1, to_version=v2)
    assert info.value.message == (
        f"Catalog version {v2} does not sell 'starter' per year in usd: 1 subscription(s) "
        "would be left without a price to renew at. Map them to another tier first, or pass "
        f"--force to leave them on version {v1}."
    )
    assert pinned(session) == {"acme": v1, "bolt": v1}


def test_force_leaves_a_subscription_its_target_does_not_sell_where_it_is(
    demo_catalog, session, clock
):
    v1 = demo_catalog.version
    v2 = publish_text(session, clock, monthly_only_starter_text())
    subscribe(session, clock, "acme", "starter", v1, interval="year")
    subscribe(session, clock, "bolt", "starter", v1)
    report = migrate_subscribers(session, clock, from_version=v1, to_version=v2, force=True)
    session.commit()
    assert [i.account_id for i in report.moved] == ["bolt"]
    assert (
        f"  skipped acme: version {v2} does not sell 'starter' per year in usd; it stays on "
        f"version {v1}"
    ) in report.lines()
    assert pinned(session) == {"acme": v1, "bolt": v2}


def test_a_feature_removed_from_the_catalog_is_reported_as_lost(demo_catalog, session, clock):
    v1 = demo_catalog.version
    without_sso = load_catalog_text(DEMO_TEXT).to_document()
    del without_sso["features"]["sso"]
    for tier in without_sso["tiers"]:
        tier["features"].pop("sso", None)
    v2 = publish_text(session, clock, yaml.safe_dump(without_sso, sort_keys=False))
    subscribe(session, clock, "acme", "business", v1)
    report = migrate_subscribers(session, clock, from_version=v1, to_version=v2, dry_run=True)
    [impact] = report.moved
    assert impact.lost_features == ("sso",)


def test_an_ended_subscription_on_a_dropped_tier_does_not_block_the_migration(
    session, clock, demo_catalog
):
    """A canceled subscription on Team (legacy) grants nothing and never renews: version 2
    dropping that tier does not stop the live Starter subscriber from moving, and the ended
    one stays where it is."""
    v2 = publish_text(session, clock, demo_v2_text())
    subscribe(session, clock, "live", "starter", demo_catalog.version)
    gone = subscribe(session, clock, "gone", "team_legacy", demo_catalog.version)
    gone.status = SubscriptionStatus.CANCELED
    session.flush()
    report = migrate_subscribers(session, clock, from_version=demo_catalog.version, to_version=v2)
    assert [m.account_id for m in report.moved] == ["live"]
    assert gone.catalog_version == demo_catalog.version


def test_migration_moves_the_recurring_add_ons_to_the_new_prices_and_says_so(
    demo_catalog, session, clock
):
    """Ending grandfathering moves the plan and its recurring add-ons together: the report
    names each add-on's price change, and the renewal charges the new version's price."""
    from gating.models import AccountAddOn

    v1 = demo_catalog.version
    v2 = publish_text(
        session,
        clock,
        DEMO_TEXT.replace("month: {usd: 4900, eur: 4500}", "month: {usd: 5900, eur: 4500}"),
    )
    subscribe(session, clock, "acme", "pro", v1)
    session.add(
        AccountAddOn(
            account_id="acme",
            addon_id="extended_support",
            quantity=1,
            active=True,
            purchased_at=clock.now(),
            catalog_version=v1,
        )
    )
    session.flush()
    dry = migrate_subscribers(session, clock, from_version=v1, to_version=v2, dry_run=True)
    assert dry.moved[0].notes == ("Extended support: usd 49.00 -> 59.00",)
    migrate_subscribers(session, clock, from_version=v1, to_version=v2, dry_run=False)
    row = session.scalars(select(AccountAddOn)).one()
    assert row.catalog_version == v2
