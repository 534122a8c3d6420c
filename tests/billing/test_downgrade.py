"""Downgrade, cancel and resume at the period end, with the loss spelled out first."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from billing import downgrade
from billing.manual import ManualBilling
from gating.models import Account
from tests.billing.conftest import PERIOD_END, set_gauge, subscribe
from tiergate.clock import FixedClock
from tiergate.exceptions import Conflict, InvalidRequest

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
