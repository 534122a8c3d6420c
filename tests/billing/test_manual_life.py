"""A long life of accounts with manual billing while the product team changes the catalog:
price rises, `catalog migrate`, promotions, interval switches.

Each test walks the clock from period end to period end with `tiergate billing renew`, as a
scheduler runs it, and checks invoices, the pinned catalog version, the gate and the host
app's notifications."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from billing import service
from billing.models import Notification
from tests.billing.manual_life import (
    BASE,
    checkout,
    downgrade_to,
    invoices,
    migrate,
    priced,
    publish,
    resume,
    sub,
    to_period_end,
)
from tiergate.db import get_db

pytest_plugins = ["tests.gating.api_fixtures"]

# v2 of the demo catalog: Pro costs more and gives more projects; Extended support costs more.
V2 = {
    "month: {usd: 2900, eur: 2700}": "month: {usd: 3500, eur: 2700}",
    "year: {usd: 29000, eur: 27000}": "year: {usd: 35000, eur: 27000}",
    "      projects: 50\n": "      projects: 60\n",
    "month: {usd: 4900, eur: 4500}": "month: {usd: 5900, eur: 4500}",
    "year: {usd: 49000, eur: 45000}": "year: {usd: 59000, eur: 45000}",
}


def _renewed(app: Any, clock: Any, account_id: str) -> Any:
    result = to_period_end(app, clock, account_id)
    assert result.exit_code == 0, result.output
    return invoices(app, account_id)[-1]


def _projects_limit(client: Any, make_api_key: Any, account_id: str) -> int:
    key = make_api_key("accounts")
    response = client.get(
        f"/v1/accounts/{account_id}/entitlements", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.get_json()
    return int(response.get_json()["features"]["projects"]["limit"])


def _subscription_changed(app: Any, account_id: str) -> list[dict[str, Any]]:
    with get_db(app).session() as s:
        rows = s.scalars(
            select(Notification)
            .where(
                Notification.account_id == account_id, Notification.type == "subscription.changed"
            )
            .order_by(Notification.created_at)
        ).all()
        return [r.payload["data"] for r in rows]


def test_a_migrated_subscription_is_not_moved_back_by_its_scheduled_switch(
    app: Any, client: Any, clock: Any, demo_catalog: Any, tmp_path: Any, make_api_key: Any
) -> None:
    """acme pays Pro yearly (catalog v1) and schedules the switch to monthly billing. The
    product team then publishes v2 (Pro: 60 projects instead of 50, dearer) and ends
    grandfathering with `catalog migrate --from 1 --to 2`, which reports acme as moved; the
    gate gives acme v2's 60 projects. acme stays on v2 from then on (at most the
    first monthly period at the price shown when the switch was scheduled)."""
    checkout(app, clock, "acme", "pro", "year")
    _renewed(app, clock, "acme")  # the trial's end: the first yearly charge
    clock.advance(days=30)
    downgrade_to(app, clock, "acme", "pro", "month")
    v2 = publish(app, clock, tmp_path, priced(**V2))
    out = migrate(app, "--from", "1", "--to", str(v2))
    assert out.exit_code == 0 and "Moved 1 subscription" in out.output, out.output
    assert sub(app, "acme").catalog_version == v2
    assert _projects_limit(client, make_api_key, "acme") == 60

    _renewed(app, clock, "acme")  # the switch to monthly applies
    assert sub(app, "acme").interval == "month"
    assert sub(app, "acme").catalog_version == v2  # actual: 1
    assert _projects_limit(client, make_api_key, "acme") == 60  # actual: 50


PRO_YEARLY_FOREVER = """promotions:
  - id: pro_yearly_forever
    name: 15 % off Pro yearly for good
    percent_off: 15
    tiers: [pro]
    intervals: [year]
    duration: forever"""


def test_a_yearly_only_promotion_ends_with_the_switch_to_monthly_billing(
    app: Any, clock: Any, demo_catalog: Any, tmp_path: Any
) -> None:
    """The catalog gives "15 % off Pro yearly for good" (`intervals: [year]`, forever). acme
    buys Pro yearly with it, then schedules the switch to monthly billing. docs/billing.md:
    a promotion "stays with the plan it was given for: a change ... to another billing
    interval of the same tier, ends it" (and through Stripe the monthly plan is a new
    subscription without the coupon): the monthly renewals charge $29.00."""
    publish(app, clock, tmp_path, BASE.split("promotions:\n")[0] + PRO_YEARLY_FOREVER)
    checkout(app, clock, "acme", "pro", "year")
    first = _renewed(app, clock, "acme")
    assert first.amount_paid == 29000 - 4350  # the promotion on the yearly plan: right
    clock.advance(days=30)
    shown = downgrade_to(app, clock, "acme", "pro", "month")
    monthly = [_renewed(app, clock, "acme") for _ in range(3)]
    assert [i.amount_paid for i in monthly] == [2900, 2900, 2900]  # actual: 2465 each
    assert shown == 2900  # actual: 2465


def test_scheduling_the_switch_to_monthly_billing_is_notified_to_the_host_app(
    app: Any, clock: Any, demo_catalog: Any
) -> None:
    """`subscription.changed` is sent when a downgrade, interval switch or cancellation is
    scheduled or withdrawn: acme (Pro yearly) schedules the yearly -> monthly switch on the
    downgrade page (its confirmation: "You move to Pro, billed monthly, on ..."), then takes
    it back with "Keep my current plan": the host app gets a notification for each, so it
    knows what billing changes at the period end."""
    checkout(app, clock, "acme", "pro", "year")
    _renewed(app, clock, "acme")
    clock.advance(days=30)
    before = len(_subscription_changed(app, "acme"))
    downgrade_to(app, clock, "acme", "pro", "month")
    after_schedule = len(_subscription_changed(app, "acme"))
    assert resume(app, clock, "acme").status is service.FlowStatus.DONE
    after_resume = len(_subscription_changed(app, "acme"))
    assert (after_schedule - before, after_resume - after_schedule) == (1, 1)  # actual: (0, 0)


def test_a_renewal_invoice_names_the_period_it_bills(
    app: Any, clock: Any, demo_catalog: Any
) -> None:
    """acme's Starter plan renews on the 29th. Its period from February 28, 2027 (clamped)
    runs to March 29, 2027 (Stripe keeps the anchor day; so does tiergate's subscription):
    the invoice line names that period."""
    checkout(app, clock, "acme", "starter")
    for _ in range(4):  # Nov 29 (trial end), Dec 29, Jan 29, Feb 28
        invoice = _renewed(app, clock, "acme")
    row = sub(app, "acme")
    assert f"{row.current_period_start:%d %b %Y}" == "28 Feb 2027"
    assert f"{row.current_period_end:%d %b %Y}" == "29 Mar 2027"
    assert invoice.lines[0]["description"] == "Starter (28 Feb 2027 - 29 Mar 2027)", invoice.lines
