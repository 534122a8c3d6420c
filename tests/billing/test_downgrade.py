"""Downgrade, cancel and resume at the period end, with the loss spelled out first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import downgrade, records, service
from billing.manual import ManualBilling
from gating.models import Account, AccountAddOn
from tests.billing.conftest import PERIOD_END, set_gauge, subscribe
from tiergate.clock import FixedClock
from tiergate.exceptions import Conflict, InvalidRequest
from tiers import store
from tiers.model import Catalog

MANUAL = ManualBilling()


@pytest.fixture
def version(demo_catalog) -> int:  # type: ignore[no-untyped-def]
    return int(demo_catalog.version)


def test_switching_from_yearly_to_monthly_waits_for_the_period_end(
    session: Session, clock: FixedClock, version: int
) -> None:
    end = datetime(2027, 11, 1, 12, 0, tzinfo=UTC)
    subscribe(session, "acme", clock, version, interval="year", period_end=end)
    downgrade.confirm_downgrade(session, clock, MANUAL, "acme", "starter", "month")
    sub = session.get(Account, "acme").subscription  # type: ignore[union-attr]
    assert (sub.interval, sub.scheduled_interval, sub.scheduled_tier_id) == ("year", "month", None)


def test_the_downgrade_preview_spells_out_features_lost_and_usage_above_new_limits(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version, tier="pro")
    set_gauge(session, "acme", "projects", 12, clock)
    preview = downgrade.downgrade_preview(session, clock, "acme", "starter")
    assert preview.lost_features == ("Audit log",)
    assert preview.effective_at == PERIOD_END
    assert preview.new_recurring_amount == 900
    [over] = preview.over_limits
    assert over.message == (
        "12 projects, new limit 10: existing projects stay; creating new ones is blocked until "
        "you are under the limit."
    )
    assert "Projects: 50 projects -> 10 projects" in preview.lowered_limits


def test_a_downgrade_preview_to_a_higher_tier_is_refused(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version)
    with pytest.raises(InvalidRequest, match="is an upgrade"):
        downgrade.downgrade_preview(session, clock, "acme", "pro")


def test_the_cancel_preview_lists_what_the_free_tier_lacks(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version)
    set_gauge(session, "acme", "projects", 5, clock)
    preview = downgrade.downgrade_preview(session, clock, "acme", None)
    assert preview.cancel and preview.to_tier == "Free"
    assert preview.lost_features == ("PDF export",)
    assert [o.feature for o in preview.over_limits] == ["Projects"]


def test_resume_before_the_period_end_clears_a_scheduled_downgrade_and_cancellation(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version, tier="pro")
    downgrade.confirm_downgrade(session, clock, MANUAL, "acme", "starter")
    sub = session.get(Account, "acme").subscription  # type: ignore[union-attr]
    assert sub.scheduled_tier_id == "starter" and sub.tier_id == "pro"
    downgrade.cancel(session, clock, MANUAL, "acme")
    assert sub.cancel_at_period_end
    downgrade.resume(session, clock, MANUAL, "acme")
    assert sub.scheduled_tier_id is None and not sub.cancel_at_period_end


def test_resume_after_the_period_end_is_refused(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version)
    downgrade.cancel(session, clock, MANUAL, "acme")
    clock.set(PERIOD_END)
    with pytest.raises(Conflict, match="already ended"):
        downgrade.resume(session, clock, MANUAL, "acme")


def test_downgrading_to_the_current_plan_is_refused(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version)
    with pytest.raises(Conflict, match="already on Starter"):
        downgrade.downgrade_preview(session, clock, "acme", "starter")


def test_a_free_account_has_nothing_to_downgrade(
    session: Session, clock: FixedClock, version: int
) -> None:
    from tests.billing.conftest import add_account

    add_account(session, "newco", clock)
    with pytest.raises(Conflict, match="no paid subscription"):
        downgrade.downgrade_preview(session, clock, "newco", None)


def _renewal(session: Session, clock: FixedClock, end: datetime = PERIOD_END) -> list[int]:
    """Run `tiergate billing renew` just after `end`: the amounts of the invoice it records."""
    clock.set(end + timedelta(minutes=1))
    [result] = service.apply_period_end(session, clock, MANUAL)
    assert result.invoice is not None
    return [line["amount"] for line in result.invoice.lines]


def test_a_yearly_to_monthly_switch_renews_the_addons_that_stay_at_their_monthly_price(
    session: Session, clock: FixedClock, version: int
) -> None:
    end = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    start = datetime(2025, 11, 30, 12, 0, tzinfo=UTC)
    subscribe(
        session,
        "acme",
        clock,
        version,
        interval="year",
        period_start=start,
        period_end=end,
        addons=("seat_pack",),
    )
    session.scalars(select(AccountAddOn)).one().quantity = 2
    downgrade.confirm_downgrade(session, clock, MANUAL, "acme", "starter", "month")
    sub = session.get(Account, "acme").subscription  # type: ignore[union-attr]
    state = records.state_of(session, sub)  # type: ignore[arg-type]
    assert [(a.item_id, a.interval, a.unit_amount, a.quantity) for a in state.addons] == [
        ("seat_pack", "year", 25000, 2)
    ]
    assert [
        (a.item_id, a.interval, a.unit_amount, a.quantity) for a in state.next_addons or ()
    ] == [("seat_pack", "month", 2500, 2)]
    assert _renewal(session, clock, end) == [900, 2 * 2500]
    assert (sub.interval, sub.scheduled_interval) == ("month", None)  # type: ignore[union-attr]


def test_the_downgrade_preview_amount_is_the_first_renewal_with_the_addons_that_stay(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version, tier="pro", addons=("seat_pack",))
    preview = downgrade.downgrade_preview(session, clock, "acme", "starter")
    assert preview.new_recurring_amount == 900 + 2500
    downgrade.confirm_downgrade(session, clock, MANUAL, "acme", "starter")
    assert sum(_renewal(session, clock)) == preview.new_recurring_amount


def test_the_yearly_to_monthly_preview_amount_has_the_addons_at_their_monthly_price(
    session: Session, clock: FixedClock, version: int
) -> None:
    # A yearly -> monthly switch moves every add-on that stays to its monthly price.
    end = datetime(2027, 10, 31, 12, 0, tzinfo=UTC)
    subscribe(
        session,
        "acme",
        clock,
        version,
        tier="pro",
        interval="year",
        period_end=end,
        addons=("extended_support", "seat_pack"),
    )
    preview = downgrade.downgrade_preview(session, clock, "acme", "pro", "month")
    assert preview.new_recurring_amount == 2900 + 4900 + 2500
    assert preview.interval_switch


def test_the_downgrade_preview_amount_leaves_out_an_addon_already_removed(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version, tier="pro", addons=("seat_pack",))
    service.remove_addon(session, clock, MANUAL, "acme", "seat_pack")
    preview = downgrade.downgrade_preview(session, clock, "acme", "starter")
    assert preview.new_recurring_amount == 900
    downgrade.confirm_downgrade(session, clock, MANUAL, "acme", "starter")
    assert _renewal(session, clock) == [900]


@pytest.mark.parametrize("then_resume", [False, True], ids=["cancel", "cancel-then-resume"])
def test_canceling_or_resuming_keeps_an_addon_removal(
    session: Session, clock: FixedClock, version: int, then_resume: bool
) -> None:
    subscribe(session, "acme", clock, version, addons=("seat_pack",))
    service.remove_addon(session, clock, MANUAL, "acme", "seat_pack")
    downgrade.cancel(session, clock, MANUAL, "acme")
    if then_resume:
        downgrade.resume(session, clock, MANUAL, "acme")
    [row] = session.scalars(select(AccountAddOn)).all()
    assert row.ended_at == PERIOD_END  # still removed at the period end
    if then_resume:
        assert _renewal(session, clock) == [900]  # "Keep my plan" renews Starter alone


def test_resuming_a_yearly_to_monthly_switch_keeps_the_addons_at_the_yearly_price(
    session: Session, clock: FixedClock, version: int
) -> None:
    end = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    start = datetime(2025, 11, 30, 12, 0, tzinfo=UTC)
    subscribe(
        session,
        "acme",
        clock,
        version,
        interval="year",
        period_start=start,
        period_end=end,
        addons=("seat_pack",),
    )
    downgrade.confirm_downgrade(session, clock, MANUAL, "acme", "starter", "month")
    downgrade.resume(session, clock, MANUAL, "acme")
    assert _renewal(session, clock, end) == [9000, 25000]


def test_a_legacy_subscriber_can_move_down_only_to_cheaper_tiers(
    session: Session, clock: FixedClock, version: int
) -> None:
    # Team (legacy) is $15.00 per month and last in the catalog order.
    subscribe(session, "leg", clock, version, tier="team_legacy")
    for pricier in ("pro", "business"):
        with pytest.raises(InvalidRequest, match="costs more than you pay for Team"):
            downgrade.downgrade_preview(session, clock, "leg", pricier)
        with pytest.raises(InvalidRequest, match="is an upgrade"):
            downgrade.confirm_downgrade(session, clock, MANUAL, "leg", pricier)
    sub = session.get(Account, "leg").subscription  # type: ignore[union-attr]
    assert sub.scheduled_tier_id is None  # type: ignore[union-attr]
    assert downgrade.downgrade_preview(session, clock, "leg", "starter").new_recurring_amount == 900


def test_a_cheaper_tier_per_month_is_a_downgrade_from_a_yearly_plan(
    session: Session, clock: FixedClock, version: int
) -> None:
    end = datetime(2027, 10, 31, 12, 0, tzinfo=UTC)
    subscribe(session, "acme", clock, version, tier="business", interval="year", period_end=end)
    # $29.00 per month is $348.00 a year, less than Business's $790.00.
    assert downgrade.downgrade_preview(session, clock, "acme", "pro", "month").to_tier == "Pro"


def test_a_scheduled_downgrade_renews_at_the_price_shown_when_it_was_scheduled(
    session: Session, clock: FixedClock, version: int
) -> None:
    """acme (Pro) schedules a move to Starter ($9.00 a month, as the preview says); before the
    period ends the product team publishes Starter at $12.00. The renewal charges the $9.00
    the customer agreed to, on the catalog version it was scheduled under, as Stripe does
    with the price written into the subscription when it was scheduled."""
    subscribe(session, "acme", clock, version, tier="pro")
    preview = downgrade.downgrade_preview(session, clock, "acme", "starter")
    assert preview.new_recurring_amount == 900
    downgrade.confirm_downgrade(session, clock, MANUAL, "acme", "starter")
    doc = store.load(session).catalog.to_document()
    next(t for t in doc["tiers"] if t["id"] == "starter")["prices"]["month"]["usd"] = 1200
    newer = store.publish(
        session, Catalog.from_document(doc), source="", author="t", note="", now=clock.now()
    ).version.version
    assert newer > version
    assert _renewal(session, clock) == [900]
    sub = session.get(Account, "acme").subscription  # type: ignore[union-attr]
    assert (sub.tier_id, sub.catalog_version, sub.scheduled_catalog_version) == (  # type: ignore[union-attr]
        "starter",
        version,
        None,
    )
