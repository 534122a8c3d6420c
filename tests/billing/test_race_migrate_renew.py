"""PostgreSQL, manual billing: `tiergate catalog migrate` run while `tiergate billing renew`
is renewing (a cron and an operator at the same minute)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from billing import service
from billing.manual import ManualBilling
from billing.models import Invoice
from billing.provider import RenewRequest, Result
from gating.models import Account
from tests.billing.conftest import PERIOD_END, subscribe
from tests.billing.race_helpers import ERRORS, together
from tests.billing.test_pages import version
from tiergate.clock import FixedClock
from tiergate.db import get_db
from tiers import store
from tiers.model import Catalog
from tiers.subscribers import migrate_subscribers

__all__ = ["version"]


def _v2(session: Any, clock: Any) -> int:
    """Publish version 2: v1 with Starter's project limit raised to 20; its number."""
    doc = store.load(session).catalog.to_document()
    starter = next(t for t in doc["tiers"] if t["id"] == "starter")
    starter["features"]["projects"]["limit"] = 20
    return store.publish(
        session, Catalog.from_document(doc), source="", author="t", note="", now=clock.now()
    ).version.version


class SlowSecondRenewal(ManualBilling):
    """A renew run whose second due account takes a moment (the processor, a busy host)."""

    def __init__(self) -> None:
        self.calls = 0

    def renew(self, request: RenewRequest) -> Result:
        self.calls += 1
        if self.calls == 2:
            time.sleep(0.8)
        return super().renew(request)


def test_catalog_migrate_while_a_renew_run_renews_two_accounts(
    app: Any, postgres_url: str, clock: Any, version: int
) -> None:
    """Two Starter accounts on v1 are due: "bravo" (period ended first) and "alpha". The renew
    run renews bravo, then alpha; meanwhile an operator runs `catalog migrate --from 1 --to
    2`: one waits for the other (they lock many subscriptions, one run at a time), both
    accounts are renewed once and both end on v2."""
    database = get_db(app)
    with database.session() as s:
        subscribe(s, "bravo", clock, version, period_end=PERIOD_END - timedelta(hours=2))
        subscribe(s, "alpha", clock, version)
        v2 = _v2(s, clock)
    later = FixedClock(PERIOD_END + timedelta(hours=1))

    def renew() -> Any:
        with app.app_context(), database.session() as s:
            return [r.message for r in service.apply_period_end(s, later, SlowSecondRenewal())]

    def migrate() -> Any:
        time.sleep(0.4)  # bravo renewed (its row written), alpha's renewal under way
        with app.app_context(), database.session() as s:
            report = migrate_subscribers(s, later, from_version=version, to_version=v2)
            return [m.account_id for m in report.moved]

    outcomes = together(renew, migrate)
    with database.sessionmaker() as s:
        subs = {a: s.get(Account, a).subscription for a in ("alpha", "bravo")}
        state = {a: (x.catalog_version, x.current_period_end.date()) for a, x in subs.items()}
    assert not ERRORS, f"outcomes {outcomes}; subscriptions {state}"
    assert all(x.current_period_end > PERIOD_END for x in subs.values()), state
    assert all(x.catalog_version == v2 for x in subs.values()), state


class SlowRenewals(ManualBilling):
    """A renew run whose every renewal takes a moment: three of them take over a second."""

    def renew(self, request: RenewRequest) -> Result:
        time.sleep(0.4)
        return super().renew(request)


def test_catalog_migrate_waits_for_the_renewal_under_way_not_for_the_whole_run(
    app: Any, postgres_url: str, clock: Any, version: int
) -> None:
    """alpha, bravo and charlie (Starter, v1) are due; a renew run renews them one after the
    other. `catalog migrate --from 1 --to 2`, started during alpha's renewal, waits for that
    renewal only, then moves all three while the run waits for it in turn: it is done before
    the run is, each account is renewed once, and all three end on v2."""
    database = get_db(app)
    accounts = ("alpha", "bravo", "charlie")
    with database.session() as s:
        for hours, account_id in zip((3, 2, 1), accounts, strict=True):
            end = PERIOD_END - timedelta(hours=hours)
            subscribe(s, account_id, clock, version, period_end=end)
        v2 = _v2(s, clock)
    later = FixedClock(PERIOD_END + timedelta(hours=1))
    done: dict[str, float] = {}

    def renew() -> Any:
        with app.app_context(), database.session() as s:
            messages = [r.message for r in service.apply_period_end(s, later, SlowRenewals())]
        done["renew"] = time.monotonic()
        return messages

    def migrate() -> Any:
        time.sleep(0.2)  # alpha's renewal under way
        with app.app_context(), database.session() as s:
            report = migrate_subscribers(s, later, from_version=version, to_version=v2)
        done["migrate"] = time.monotonic()
        return [m.account_id for m in report.moved]

    outcomes = together(renew, migrate)
    assert not ERRORS, outcomes
    assert done["migrate"] < done["renew"], f"migrate waited for the whole run: {outcomes}"
    assert sorted(outcomes[1]) == list(accounts), outcomes
    with database.sessionmaker() as s:
        for account_id in accounts:
            sub = s.get(Account, account_id).subscription
            paid = list(s.scalars(select(Invoice).where(Invoice.account_id == account_id)))
            state = (sub.catalog_version, sub.current_period_end > PERIOD_END, len(paid))
            assert state == (v2, True, 1), f"{account_id}: {state}; runs answered {outcomes}"
