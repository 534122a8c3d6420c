"""PostgreSQL, manual billing: `tiergate catalog migrate` run while `tiergate billing renew`
is renewing (a cron and an operator at the same minute)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from billing import service
from billing.manual import ManualBilling
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
        doc = store.load(s).catalog.to_document()
        starter = next(t for t in doc["tiers"] if t["id"] == "starter")
        starter["features"]["projects"]["limit"] = 20
        v2 = store.publish(
            s, Catalog.from_document(doc), source="", author="t", note="", now=clock.now()
        ).version.version
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
