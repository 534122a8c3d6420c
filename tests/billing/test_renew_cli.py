"""`tiergate billing renew` as a scheduler runs it: what it prints and its exit status."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import select, text

from billing.cli import billing_group
from billing.manual import ManualBilling
from billing.models import BillingChange, ChangeStatus, Invoice
from billing.provider import RenewRequest, Result
from gating.models import Account
from tests.billing.conftest import PERIOD_END, subscribe
from tests.billing.test_reconcile import on_starter  # noqa: F401 - fixture
from tests.billing.test_webhook_chaos import (  # noqa: F401 - fixtures
    Story,
    fake_stripe,
    story,
    stripe_billing,
    subscription,
)
from tiergate.clock import FixedClock
from tiergate.db import get_db


def test_renew_with_stripe_unreachable_names_the_account_and_fails(
    app: Any,
    on_starter: Story,  # noqa: F811
    clock: FixedClock,
) -> None:
    """A Stripe subscription is due; Stripe does not answer. The scheduler must see a failure
    and the operator must see which account was left unrenewed."""
    clock.set(subscription(app).current_period_end + timedelta(hours=1))
    on_starter.fake.fail_next(50, status=500)
    result = app.test_cli_runner().invoke(billing_group, ["renew"])
    print(result.output)
    assert "acme" in result.output, result.output
    assert result.exit_code != 0, result.output


def test_renew_of_a_busy_account_is_not_counted_as_processed_nor_told_to_reload_a_page(
    app: Any, clock: FixedClock, demo_catalog: Any
) -> None:
    """acme has a change with the processor right now: renew skips it (the next run renews
    it). The operator is told, in a cron log, to "reload the page", and the skipped account is
    counted among the period ends processed."""
    from billing import records
    from tests.billing.conftest import PERIOD_END, subscribe
    from tiergate.db import get_db

    with get_db(app).session() as s:
        subscribe(s, "acme", clock, demo_catalog.version, tier="pro")
    clock.set(PERIOD_END + timedelta(hours=1))
    with get_db(app).session() as s:
        records.new_change(s, clock, "acme", "upgrade", {"tier": "business"})
    result = app.test_cli_runner().invoke(billing_group, ["renew"])
    assert "reload the page" not in result.output, result.output
    assert "1 period end(s) processed" not in result.output, result.output


class _FailsFor(ManualBilling):
    """Manual billing whose renewal of one account breaks with an error nobody planned for
    (a bug, a library's own exception): not a refusal the provider speaks of."""

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id

    def renew(self, request: RenewRequest) -> Result:
        if request.customer.account_id == self.account_id:
            raise RuntimeError("renewal service crashed\nwith a second line of detail")
        return super().renew(request)


def _three_due_accounts(app: Any, clock: FixedClock, version: int) -> None:
    """alpha, bravo and charlie on Starter; their periods ended in that order, an hour ago."""
    with get_db(app).session() as s:
        for hours, account_id in ((3, "alpha"), (2, "bravo"), (1, "charlie")):
            end = PERIOD_END - timedelta(hours=hours)
            subscribe(s, account_id, clock, version, period_end=end)
    clock.set(PERIOD_END + timedelta(hours=1))


def _renewed(app: Any) -> dict[str, tuple[bool, int]]:
    """Read from a new session: each account's (period moved past PERIOD_END, invoices)."""
    with get_db(app).sessionmaker() as s:
        return {
            account_id: (
                s.get(Account, account_id).subscription.current_period_end > PERIOD_END,
                len(list(s.scalars(select(Invoice).where(Invoice.account_id == account_id)))),
            )
            for account_id in ("alpha", "bravo", "charlie")
        }


def test_renew_keeps_the_other_renewals_when_one_account_breaks_unexpectedly(
    app: Any, clock: FixedClock, demo_catalog: Any
) -> None:
    """Three accounts are due; bravo's renewal breaks with an unexpected error. alpha and
    charlie are renewed and stay renewed; bravo is named on one line of its own, without a
    traceback, is left as it was (the next run tries again), and the scheduler sees a
    failure."""
    _three_due_accounts(app, clock, demo_catalog.version)
    app.extensions["tiergate.billing"] = _FailsFor("bravo")
    result = app.test_cli_runner().invoke(billing_group, ["renew"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output, result.output
    [line] = [line for line in result.output.splitlines() if "bravo" in line]
    assert line == (
        "Not renewed bravo: unexpected error (RuntimeError: renewal service crashed); "
        "the next run tries again."
    ), result.output
    assert "2 period end(s) processed" in result.output, result.output
    assert "1 subscription(s) could not be renewed" in result.output, result.output
    assert _renewed(app) == {"alpha": (True, 1), "bravo": (False, 0), "charlie": (True, 1)}
    with get_db(app).sessionmaker() as s:
        [change] = s.scalars(select(BillingChange).where(BillingChange.account_id == "bravo"))
    assert (change.status, change.error) == (ChangeStatus.FAILED, line)


@contextmanager
def _refused_for_bravo(app: Any, table: str) -> Iterator[None]:
    """The database refuses to store a row of bravo in `table` (a trigger raising an error, as
    a full disk or a broken constraint would): a database error inside one renewal."""
    engine = get_db(app).engine
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        if postgres:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_bravo() RETURNS trigger AS $$ BEGIN "
                    f"RAISE EXCEPTION 'no space left for {table}'; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    f"CREATE TRIGGER refuse_bravo BEFORE INSERT ON {table} FOR EACH ROW "
                    "WHEN (NEW.account_id = 'bravo') EXECUTE FUNCTION refuse_bravo()"
                )
            )
        else:
            conn.execute(
                text(
                    f"CREATE TRIGGER refuse_bravo BEFORE INSERT ON {table} "
                    "WHEN NEW.account_id = 'bravo' "
                    f"BEGIN SELECT RAISE(ABORT, 'no space left for {table}'); END"
                )
            )
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TRIGGER refuse_bravo" + (f" ON {table}" if postgres else "")))
            if postgres:
                conn.execute(text("DROP FUNCTION refuse_bravo()"))


def test_renew_keeps_the_other_renewals_when_the_database_fails_for_one_account(
    app: Any, clock: FixedClock, demo_catalog: Any
) -> None:
    """bravo's invoice cannot be stored: its renewal is undone as a whole (no period moved
    without its invoice) and reported on one line; charlie, renewed after it in the same run,
    and alpha before it are renewed and stay renewed."""
    _three_due_accounts(app, clock, demo_catalog.version)
    with _refused_for_bravo(app, "invoices"):
        result = app.test_cli_runner().invoke(billing_group, ["renew"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output, result.output
    [line] = [line for line in result.output.splitlines() if "bravo" in line]
    assert line.startswith("Not renewed bravo: unexpected error ("), result.output
    assert "no space left for invoices" in line, result.output
    assert _renewed(app) == {"alpha": (True, 1), "bravo": (False, 0), "charlie": (True, 1)}


def test_renew_names_an_account_whose_failure_cannot_even_be_recorded(
    app: Any, clock: FixedClock, demo_catalog: Any
) -> None:
    """No billing change of bravo can be stored, not even the one saying its renewal failed:
    bravo is still named on its line, and the others are renewed."""
    _three_due_accounts(app, clock, demo_catalog.version)
    with _refused_for_bravo(app, "billing_changes"):
        result = app.test_cli_runner().invoke(billing_group, ["renew"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output, result.output
    [line] = [line for line in result.output.splitlines() if "bravo" in line]
    assert line.startswith("Not renewed bravo: unexpected error ("), result.output
    assert "no space left for billing_changes" in line, result.output
    assert _renewed(app) == {"alpha": (True, 1), "bravo": (False, 0), "charlie": (True, 1)}
