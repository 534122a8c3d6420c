"""A plan's life over several periods with manual billing: an upgrade to a tier that includes
an add-on stops charging for it, and renewals name a running promotion as the first charge
did. The demo catalog, the fixed clock, `tiergate billing renew` at each period end."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from billing import service
from billing.cli import billing_group
from billing.manual import ManualBilling
from billing.models import Invoice
from billing.records import Urls
from gating.models import Account
from tests.billing.conftest import add_account, gate_offer
from tests.conftest import DEMO_CATALOG
from tiergate.db import get_db

URLS = Urls("http://localhost/ok", "http://localhost/cancel")
MANUAL = ManualBilling()

PROMOTIONS = """
  - id: starter_loyal
    name: 10 % off Starter for good
    description: Monthly Starter at 10 % off, for as long as you keep it.
    percent_off: 10
    tiers: [starter]
    intervals: [month]
    starts_at: 2026-01-01
    ends_at: 2029-12-31
    duration: forever

  - id: pro_spring
    name: 25 % off Pro for three months
    description: Monthly Pro at 25 % off for the first three months.
    percent_off: 25
    tiers: [pro]
    intervals: [month]
    starts_at: 2026-01-01
    ends_at: 2029-12-31
    duration: repeating
    duration_in_months: 3
"""


def _checkout(app: Any, clock: Any, tier: str) -> None:
    db = get_db(app)
    with db.session() as s:
        add_account(s, "acme", clock)
    with db.session() as s:
        _, quote, _ = service.checkout_quote(s, clock, "acme", tier, "month", "usd")
    with db.session() as s:
        result = service.checkout(
            s,
            clock,
            MANUAL,
            "acme",
            tier,
            "month",
            "usd",
            expected_amount_due=quote.amount_due,
            urls=URLS,
        )
    assert result.status is service.FlowStatus.DONE, result.message


def _paid_starter_with_support(app: Any, clock: Any) -> None:
    """acme: Starter monthly past its trial (renewed by the CLI), then Extended support."""
    _checkout(app, clock, "starter")
    clock.advance(days=14, hours=1)
    assert app.test_cli_runner().invoke(billing_group, ["renew"]).exit_code == 0
    clock.advance(days=3)
    db = get_db(app)
    now = clock.now()
    with db.session() as s:
        _, due = service.addon_quote(s, clock, "acme", "extended_support", now)
    with db.session() as s:
        result = service.buy_addon(
            s,
            clock,
            MANUAL,
            "acme",
            "extended_support",
            proration_date=now,
            expected_amount_due=due,
            urls=URLS,
        )
    assert result.status is service.FlowStatus.DONE, result.message
    clock.advance(minutes=5)


def _accept_gate_offer(app: Any, clock: Any, feature: str) -> tuple[str, int | None]:
    db = get_db(app)
    with db.session() as s:
        offer = gate_offer(s, clock, "acme", feature, used=0, requested=1)
        offer_id, to_tier, renewal = offer.id, offer.to_tier_id, offer.next_renewal_amount
    with db.session() as s:
        result = service.accept_offer(s, clock, MANUAL, offer_id, "acme", urls=URLS)
    assert result.status is service.FlowStatus.DONE, result.message
    return str(to_tier), renewal


def _renewal_at_period_end(app: Any, clock: Any) -> Invoice:
    db = get_db(app)
    with db.session() as s:
        end = s.get(Account, "acme").subscription.current_period_end
    clock.set(end + timedelta(minutes=1))
    assert app.test_cli_runner().invoke(billing_group, ["renew"]).exit_code == 0
    with db.session() as s:
        invoice = s.scalars(select(Invoice).order_by(Invoice.id.desc())).first()
        s.expunge(invoice)
    return invoice


def test_an_upgrade_to_a_tier_that_includes_the_add_on_stops_charging_for_it(
    app: Any, clock: Any, demo_catalog: Any
) -> None:
    """Extended support is included in Business (`included_in: [business, enterprise]`) and
    cannot be bought on it: the upgrade to Business ends it (its unused time credited), and
    neither the offer's renewal nor the renewal itself charges it."""
    _paid_starter_with_support(app, clock)
    to_tier, quoted_renewal = _accept_gate_offer(app, clock, "sso")
    assert to_tier == "business"
    invoice = _renewal_at_period_end(app, clock)
    items = [line["item_id"] for line in invoice.lines]
    assert "extended_support" not in items, invoice.lines
    assert invoice.amount_paid == 7900
    assert quoted_renewal == 7900


def _starter_monthly_with_forever_promotion(app: Any, clock: Any, tmp_path: Any) -> None:
    """The demo catalog plus `starter_loyal`: 10 % off Starter billed monthly, forever
    (PROMOTIONS); acme checks out Starter monthly and its trial converts."""
    from tiers import store
    from tiers.loader import load_catalog_file

    path = tmp_path / "catalog_promos.yaml"
    path.write_text(DEMO_CATALOG.read_text() + PROMOTIONS)
    catalog, source = load_catalog_file(path)
    with get_db(app).session() as s:
        store.publish(s, catalog, source=source, author="t", note="", now=clock.now())
    _checkout(app, clock, "starter")
    clock.advance(days=14, hours=1)
    assert app.test_cli_runner().invoke(billing_group, ["renew"]).exit_code == 0


def test_a_renewal_names_its_promotion_as_the_first_invoice_did(
    app: Any, clock: Any, demo_catalog: Any, tmp_path: Any
) -> None:
    """Every renewal discounted by the running promotion names it as the checkout page did,
    not by its catalog id (the name is kept with it: records.running_to_json)."""
    _starter_monthly_with_forever_promotion(app, clock, tmp_path)
    invoice = _renewal_at_period_end(app, clock)
    discount = [line["description"] for line in invoice.lines if line["amount"] < 0]
    assert discount == ["10 % off Starter for good on Starter"], invoice.lines


def test_a_monthly_only_promotion_does_not_discount_the_yearly_renewal_after_a_switch(
    app: Any, clock: Any, demo_catalog: Any, tmp_path: Any
) -> None:
    """`starter_loyal` is for `intervals: [month]`. The switch to yearly charges the yearly
    price in full, and the yearly renewals too: a change of plan (here its interval) ends the
    promotion running on the old one, as with Stripe."""
    _starter_monthly_with_forever_promotion(app, clock, tmp_path)
    clock.advance(days=3)
    now = clock.now()
    with get_db(app).session() as s:
        quote, _ = service.yearly_quote(s, clock, "acme", now, MANUAL)
    assert not any(line.amount < 0 and "Promotion" in line.description for line in quote.lines)
    with get_db(app).session() as s:
        result = service.switch_to_yearly(
            s,
            clock,
            MANUAL,
            "acme",
            proration_date=now,
            expected_amount_due=quote.amount_due,
            urls=URLS,
        )
    assert result.status is service.FlowStatus.DONE, result.message
    invoice = _renewal_at_period_end(app, clock)
    assert invoice.amount_paid == 9000, invoice.lines


def test_an_add_on_removed_at_the_period_end_stays_removed_after_an_upgrade(
    app: Any, clock: Any, demo_catalog: Any
) -> None:
    """The customer removes Extended support ("The add-on ends on December 29, 2026"), then
    upgrades to Pro from a gate offer: the removed add-on ends with the upgrade, its unused
    time credited (the credit stays on the account for the renewal); it is never charged
    again."""
    _paid_starter_with_support(app, clock)
    with get_db(app).session() as s:
        message = service.remove_addon(s, clock, MANUAL, "acme", "extended_support").message
    assert message.startswith("The add-on ends on")
    clock.advance(minutes=5)
    to_tier, _ = _accept_gate_offer(app, clock, "audit_log")
    assert to_tier == "pro"
    with get_db(app).session() as s:
        credit = s.get(Account, "acme").balance
    assert credit < 0  # Starter's and Extended support's unused time exceed Pro's
    invoice = _renewal_at_period_end(app, clock)
    items = [line["item_id"] for line in invoice.lines]
    assert "extended_support" not in items, invoice.lines
    assert [line["item_id"] for line in invoice.lines] == ["pro", None]  # Pro, the credit
    assert invoice.lines[0]["amount"] == 2900
    assert invoice.amount_paid == 2900 + credit
