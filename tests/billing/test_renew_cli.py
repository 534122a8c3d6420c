"""`tiergate billing renew` as a scheduler runs it: what it prints and its exit status."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from billing.cli import billing_group
from tests.billing.test_reconcile import on_starter  # noqa: F401 - fixture
from tests.billing.test_webhook_chaos import (  # noqa: F401 - fixtures
    Story,
    fake_stripe,
    story,
    stripe_billing,
    subscription,
)
from tiergate.clock import FixedClock


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
