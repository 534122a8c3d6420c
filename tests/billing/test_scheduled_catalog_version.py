"""subscriptions.scheduled_catalog_version (a change scheduled for the period end renews on
the catalog version it was scheduled under) and `catalog migrate`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from billing import downgrade, service
from billing.manual import ManualBilling
from gating.models import Account
from tests.billing.conftest import PERIOD_END, subscribe
from tiergate.clock import FixedClock
from tiers import store
from tiers.model import Catalog
from tiers.subscribers import migrate_subscribers

MANUAL = ManualBilling()


@pytest.fixture
def version(demo_catalog) -> int:  # type: ignore[no-untyped-def]
    return int(demo_catalog.version)


def test_a_scheduled_downgrade_undoes_a_catalog_migrate_at_the_renewal(
    session: Session, clock: FixedClock, version: int
) -> None:
    """acme (Pro, catalog v1) schedules a move to Starter. The product team then publishes v2
    (Starter: 20 projects instead of 10, same price) and ends grandfathering deliberately
    with `tiergate catalog migrate --from 1 --to 2`: acme stays on v2 after the renewal that
    makes the move."""
    subscribe(session, "acme", clock, version, tier="pro")
    downgrade.confirm_downgrade(session, clock, MANUAL, "acme", "starter")
    doc = store.load(session).catalog.to_document()
    starter = next(t for t in doc["tiers"] if t["id"] == "starter")
    starter["features"]["projects"]["limit"] = 20
    v2 = store.publish(
        session, Catalog.from_document(doc), source="", author="t", note="", now=clock.now()
    ).version.version
    report = migrate_subscribers(session, clock, from_version=version, to_version=v2)
    assert [m.account_id for m in report.moved] == ["acme"]
    sub = session.get(Account, "acme").subscription  # type: ignore[union-attr]
    assert sub.catalog_version == v2
    clock.set(PERIOD_END + timedelta(minutes=1))
    service.apply_period_end(session, clock, MANUAL)
    sub = session.get(Account, "acme").subscription  # type: ignore[union-attr]
    assert sub.tier_id == "starter"
    assert sub.catalog_version >= v2, (
        f"migrated to v{v2}, the renewal moved acme back to v{sub.catalog_version}"
    )
