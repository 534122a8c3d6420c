"""Reconcile (billing/reconcile.py, `tiergate billing reconcile`): lost webhooks, a crash between
the Stripe call and our commit, Stripe down. Real StripeBilling against the fake Stripe API.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from billing import records, service
from billing.cli import billing_group
from billing.models import BillingChange, ChangeStatus, Invoice, Notification
from billing.notifications import PAYMENT_FAILED
from billing.quotes import change_quote
from billing.records import Urls
from gating.models import Account, Offer, OfferStatus
from tests.billing.conftest import add_account, quote_offer
from tests.billing.test_stripe_pages import Shop, shop
from tests.billing.test_trial_offers_stripe import offer_of, open_offer, pay
from tests.billing.test_webhook_chaos import (
    PRO,
    Story,
    fake_stripe,
    story,
    stripe_billing,
    subscription,
)
from tiergate.clock import FixedClock
from tiergate.db import get_db

__all__ = ["fake_stripe", "shop", "story", "stripe_billing"]  # fixtures of other test files

URLS = Urls("http://localhost/ok", "http://localhost/no")


def reconcile(app: Any, *args: str) -> Any:
    import billing.webhook_cli  # noqa: F401 - registers `billing reconcile`

    return app.test_cli_runner().invoke(billing_group, ["reconcile", *args])


def stripe_invoices(story: Story) -> list[Any]:
    """Every invoice Stripe holds for acme (what was really charged)."""
    return list(story.fake.client().v1.invoices.list({"customer": story.customer_id}).data)


def stripe_subscription_id(app: Any, account_id: str) -> str:
    with get_db(app).sessionmaker() as s:
        account = s.get(Account, account_id)
        assert account is not None and account.subscription is not None
        assert account.subscription.stripe_subscription_id is not None
        return account.subscription.stripe_subscription_id


def local_invoices(app: Any) -> dict[str, str]:
    """The invoices recorded for the customers: in_... -> status."""
    with get_db(app).sessionmaker() as s:
        return {str(i.external_id): i.status for i in s.scalars(select(Invoice)).all()}


def pro_offer(app: Any, story: Story, clock: FixedClock, version: int) -> str:
    """An offer to Pro quoted at Stripe's exact prorated amount for now."""
    due = change_quote(story.current(), PRO, (), (), clock.now(), None).amount_due
    with get_db(app).session() as s:
        offer = quote_offer(s, "acme", clock, version, amount_due_today=due, new_recurring=2900)
        return offer.id


@pytest.fixture
def on_starter(story: Story) -> Story:
    """acme on Starter through Stripe, every webhook so far delivered."""
    story.checkout()
    story.deliver()
    return story


def test_reconcile_repairs_a_tier_changed_while_webhooks_were_lost(
    app: Any, on_starter: Story
) -> None:
    on_starter.upgrade(days=0)  # its webhooks never arrive
    result = reconcile(app)
    assert result.exit_code == 0, result.output
    assert "acme: tier starter -> pro (Stripe has pro month, active" in result.output
    assert subscription(app).tier_id == "pro"
    again = reconcile(app, "--account", "acme")
    assert again.output.strip() == "0 fix(es); local billing now matches Stripe."


def test_reconcile_recovers_a_lost_payment_failure_and_then_the_recovery(
    app: Any, on_starter: Story, clock: FixedClock
) -> None:
    on_starter.fail_renewal()
    assert "status active -> past_due" in reconcile(app).output
    sub = subscription(app)
    assert sub.status == "past_due" and sub.past_due_since == clock.now()
    on_starter.recover()
    assert "status past_due -> active" in reconcile(app).output
    assert subscription(app).past_due_since is None


def test_a_lost_checkout_webhook_is_recovered_by_reconcile(
    app: Any, story: Story, clock: FixedClock, demo_catalog: Any
) -> None:
    with get_db(app).session() as s:
        flow = service.checkout(
            s,
            clock,
            story.billing,
            "acme",
            "business",
            "month",
            "usd",
            expected_amount_due=7900,
            urls=URLS,
        )  # no trial on Business
        change_id = flow.change.id
    assert flow.status is service.FlowStatus.REDIRECT
    assert "0 fix(es)" in reconcile(app).output  # the customer is still on the Checkout page
    story.fake.complete_checkout(flow.change.result["external_id"])
    output = reconcile(app).output
    assert f"acme: {change_id} (checkout) applied from Stripe" in output
    sub = subscription(app)
    assert (sub.tier_id, sub.status, sub.provider) == ("business", "active", "stripe")
    with get_db(app).sessionmaker() as s:
        change = s.get(BillingChange, change_id)
        assert change is not None and change.status is ChangeStatus.APPLIED
        [invoice] = s.scalars(select(Invoice)).all()
        assert (invoice.change_id, invoice.amount_paid) == (change_id, 7900)


def test_a_crash_after_stripe_charged_is_repaired_without_a_second_charge(
    app: Any, on_starter: Story, clock: FixedClock, demo_catalog: Any, monkeypatch: Any
) -> None:
    offer_id = pro_offer(app, on_starter, clock, demo_catalog.version)
    monkeypatch.setattr(records, "apply_result", _crash)
    with pytest.raises(RuntimeError), get_db(app).session() as s:
        service.accept_offer(s, clock, on_starter.billing, offer_id, "acme", urls=URLS)
    monkeypatch.undo()
    assert subscription(app).tier_id == "starter"  # our side lost the answer...
    paid = [i for i in stripe_invoices(on_starter) if i.status == "paid"]
    assert len(paid) == 2  # ...but Stripe charged the upgrade
    with get_db(app).sessionmaker() as s:  # the intent was committed before the Stripe call
        [change] = s.scalars(select(BillingChange).where(BillingChange.offer_id == offer_id))
        assert change.status is ChangeStatus.PENDING

    # Before any webhook arrives, reconcile settles it from Stripe's record of that key: the
    # tier, the invoice and the offer's "paid" are all recovered.
    assert f"acme: {change.id} (upgrade) applied from Stripe" in reconcile(app).output
    assert subscription(app).tier_id == "pro"
    with get_db(app).sessionmaker() as s:
        invoice = s.scalar(select(Invoice).where(Invoice.change_id == change.id))
        offer = s.get(Offer, offer_id)
        assert offer is not None and offer.status is OfferStatus.PAID
        assert invoice is not None and invoice.amount_paid == offer.amount_due_today
    # The customer presses "Upgrade now" again: same idempotency key, nothing charged again.
    with get_db(app).session() as s:
        again = service.accept_offer(s, clock, on_starter.billing, offer_id, "acme", urls=URLS)
        assert again.status is service.FlowStatus.DONE
    on_starter.deliver()  # the webhooks arrive late: the upgrade's invoice stays recorded once
    assert len([i for i in stripe_invoices(on_starter) if i.status == "paid"]) == 2
    with get_db(app).sessionmaker() as s:
        assert len(s.scalars(select(Invoice)).all()) == 2
        offer = s.get(Offer, offer_id)
        assert offer is not None and offer.status is OfferStatus.PAID


def test_a_retry_after_the_webhook_recorded_the_invoice_does_not_record_it_twice(
    app: Any, on_starter: Story, clock: FixedClock, demo_catalog: Any, monkeypatch: Any
) -> None:
    offer_id = pro_offer(app, on_starter, clock, demo_catalog.version)
    monkeypatch.setattr(records, "apply_result", _crash)
    with pytest.raises(RuntimeError), get_db(app).session() as s:
        service.accept_offer(s, clock, on_starter.billing, offer_id, "acme", urls=URLS)
    monkeypatch.undo()
    on_starter.deliver()  # invoice.paid records the upgrade's invoice first
    with get_db(app).session() as s:
        service.accept_offer(s, clock, on_starter.billing, offer_id, "acme", urls=URLS)
    with get_db(app).sessionmaker() as s:
        assert len(s.scalars(select(Invoice)).all()) == 2


def _crash(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("the process died before our commit")


def test_a_pending_change_applied_on_stripe_is_applied_once_and_its_offer_marked_paid(
    app: Any, on_starter: Story, clock: FixedClock, demo_catalog: Any
) -> None:
    offer_id = pro_offer(app, on_starter, clock, demo_catalog.version)
    with get_db(app).session() as s:
        offer = s.get(Offer, offer_id)
        assert offer is not None and offer.amount_due_today is not None
        change = records.new_change(
            s,
            clock,
            "acme",
            "upgrade",
            {"tier": "pro"},
            offer_id=offer_id,
            amount_due=offer.amount_due_today,
            currency="usd",
        )
        change_id = change.id
    # Stripe applies the change, but its answer never reaches us (a timeout, a crash).
    on_starter.upgrade(key=change_id, days=0)
    assert len([i for i in stripe_invoices(on_starter) if i.status == "paid"]) == 2

    output = reconcile(app).output
    assert f"acme: {change_id} (upgrade) applied from Stripe" in output
    assert "tier starter -> pro" not in output  # the change itself brought the tier over
    assert "0 fix(es)" in reconcile(app).output
    with get_db(app).sessionmaker() as s:
        settled = s.get(BillingChange, change_id)
        assert settled is not None and settled.status is ChangeStatus.APPLIED
        assert s.scalar(select(Invoice).where(Invoice.change_id == change_id)) is not None
        offer = s.get(Offer, offer_id)
        assert offer is not None and offer.status is OfferStatus.PAID
    assert subscription(app).tier_id == "pro"
    assert len([i for i in stripe_invoices(on_starter) if i.status == "paid"]) == 2


def test_a_pending_change_stripe_never_applied_is_marked_failed(
    app: Any, on_starter: Story, clock: FixedClock
) -> None:
    with get_db(app).session() as s:
        change_id = records.new_change(s, clock, "acme", "upgrade", {"tier": "pro"}).id
    clock.advance(minutes=5)
    assert f"acme: {change_id} (upgrade) marked failed: not applied on Stripe" in (
        reconcile(app).output
    )
    with get_db(app).sessionmaker() as s:
        change = s.get(BillingChange, change_id)
        assert change is not None and change.status is ChangeStatus.FAILED
        assert change.error is not None and "never applied" in change.error
    assert subscription(app).tier_id == "starter"


def test_an_abandoned_checkout_is_marked_failed_after_the_session_lifetime(
    app: Any, story: Story, clock: FixedClock, demo_catalog: Any
) -> None:
    with get_db(app).session() as s:
        flow = service.checkout(
            s,
            clock,
            story.billing,
            "acme",
            "business",
            "month",
            "usd",
            expected_amount_due=7900,
            urls=URLS,
        )  # no trial on Business
        change_id = flow.change.id
    clock.advance(hours=25)
    story.fake.advance(25 * 3600)  # Stripe expires the Checkout Session
    assert f"{change_id} (checkout) marked failed" in reconcile(app).output


def test_stripe_down_during_reconcile_is_a_clear_error_and_changes_nothing(
    app: Any, on_starter: Story, clock: FixedClock
) -> None:
    on_starter.upgrade(days=0)
    with get_db(app).session() as s:
        change_id = records.new_change(s, clock, "acme", "upgrade", {"tier": "pro"}).id
    on_starter.fake.fail_next(50, status=500)
    result = reconcile(app)
    assert result.exit_code == 1
    assert "Stripe could not be reached" in result.output
    assert "Nothing was changed" in result.output
    assert "Traceback" not in result.output
    assert subscription(app).tier_id == "starter"
    with get_db(app).sessionmaker() as s:
        change = s.get(BillingChange, change_id)
        assert change is not None and change.status is ChangeStatus.PENDING


def test_reconcile_of_an_unknown_account_says_so(app: Any, on_starter: Story) -> None:
    result = reconcile(app, "--account", "nobody")
    assert result.exit_code == 1
    assert "Account 'nobody' does not exist." in result.output


def test_reconcile_needs_stripe_billing(app: Any, demo_catalog: Any) -> None:
    result = reconcile(app)
    assert result.exit_code == 1
    assert "this command needs Stripe billing" in result.output


def test_a_webhook_that_settles_the_change_during_our_stripe_call_is_not_applied_twice(
    app: Any, on_starter: Story, clock: FixedClock, demo_catalog: Any, monkeypatch: Any
) -> None:
    offer_id = pro_offer(app, on_starter, clock, demo_catalog.version)
    real_change = on_starter.billing.change_subscription

    def change_then_webhooks_first(request: Any) -> Any:
        result = real_change(request)
        on_starter.deliver()  # Stripe's webhooks win the race against our own answer
        return result

    monkeypatch.setattr(on_starter.billing, "change_subscription", change_then_webhooks_first)
    with get_db(app).session() as s:
        result = service.accept_offer(s, clock, on_starter.billing, offer_id, "acme", urls=URLS)
        assert result.status is service.FlowStatus.DONE
        assert result.invoice is not None and result.charged > 0
    with get_db(app).sessionmaker() as s:
        [change] = s.scalars(select(BillingChange).where(BillingChange.offer_id == offer_id))
        assert change.status is ChangeStatus.APPLIED
        assert len(s.scalars(select(Invoice).where(Invoice.change_id == change.id)).all()) == 1
        offer = s.get(Offer, offer_id)
        assert offer is not None and offer.status is OfferStatus.PAID
        assert [e.type for e in offer.events].count(OfferStatus.PAID) == 1
    assert subscription(app).tier_id == "pro"


def test_a_second_press_while_the_first_payment_is_in_flight_charges_nothing(
    app: Any, on_starter: Story, clock: FixedClock, demo_catalog: Any, monkeypatch: Any
) -> None:
    offer_id = pro_offer(app, on_starter, clock, demo_catalog.version)
    real_change = on_starter.billing.change_subscription
    second: list[service.FlowResult] = []

    def press_again_meanwhile(request: Any) -> Any:
        with get_db(app).session() as other:  # the second tab, while Stripe is still working
            second.append(
                service.accept_offer(other, clock, on_starter.billing, offer_id, "acme", urls=URLS)
            )
        return real_change(request)

    monkeypatch.setattr(on_starter.billing, "change_subscription", press_again_meanwhile)
    with get_db(app).session() as s:
        first = service.accept_offer(s, clock, on_starter.billing, offer_id, "acme", urls=URLS)
    assert first.status is service.FlowStatus.DONE
    [pending] = second
    assert pending.status is service.FlowStatus.PENDING
    assert "already being confirmed" in pending.message
    assert len([i for i in stripe_invoices(on_starter) if i.status == "paid"]) == 2


def test_reconcile_leaves_a_change_whose_stripe_call_may_still_be_running(
    app: Any, on_starter: Story, clock: FixedClock
) -> None:
    with get_db(app).session() as s:
        change_id = records.new_change(s, clock, "acme", "upgrade", {"tier": "pro"}).id
    assert change_id not in reconcile(app).output  # a request may be waiting for Stripe
    clock.advance(minutes=3)
    assert f"{change_id} (upgrade) marked failed" in reconcile(app).output


def test_two_concurrent_presses_through_stripe_charge_once(
    app: Any, postgres_url: str, on_starter: Story, clock: FixedClock, demo_catalog: Any
) -> None:
    import threading

    from sqlalchemy.exc import IntegrityError

    offer_id = pro_offer(app, on_starter, clock, demo_catalog.version)
    database = get_db(app)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def press() -> None:
        with database.sessionmaker() as s:
            barrier.wait()
            try:
                result = service.accept_offer(
                    s, clock, on_starter.billing, offer_id, "acme", urls=URLS
                )
                s.commit()
                outcomes.append(result.status.value)
            except IntegrityError:  # the page shows the other press's result
                s.rollback()
                outcomes.append("lost the race")

    threads = [threading.Thread(target=press) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert "done" in outcomes and len(outcomes) == 2, outcomes
    assert len([i for i in stripe_invoices(on_starter) if i.status == "paid"]) == 2
    with database.sessionmaker() as s:
        assert len(s.scalars(select(Invoice)).all()) == 2
        offer = s.get(Offer, offer_id)
        assert offer is not None and offer.status is OfferStatus.PAID


def test_reconcile_adopts_a_stripe_subscription_that_has_no_local_row(
    app: Any, story: Story, clock: FixedClock
) -> None:
    # acme paid at Checkout, but every webhook was lost and our database knows nothing of it
    # (restored from a backup taken before): only the customer id survived.
    story.checkout()
    story.foreign_subscription()  # someone else's, made by hand: never adopted
    with get_db(app).session() as s:
        account = s.get(Account, "acme")
        assert account is not None and account.subscription is None
        account.stripe_customer_id = story.customer_id
    output = reconcile(app).output
    assert f"acme: adopted Stripe subscription {story.sub_id}" in output
    assert "tier none -> starter" in output
    sub = subscription(app)
    assert (sub.tier_id, sub.stripe_subscription_id, sub.provider) == (
        "starter",
        story.sub_id,
        "stripe",
    )
    assert "0 fix(es)" in reconcile(app).output  # adopted once; then compared like the others


def test_reconcile_adopts_nothing_of_another_account(
    app: Any, story: Story, clock: FixedClock
) -> None:
    story.checkout()
    with get_db(app).session() as s:
        add_account(s, "globex", clock)
        other = s.get(Account, "globex")
        assert other is not None
        other.stripe_customer_id = story.customer_id  # a mix-up: acme's customer on globex
    assert "adopted" not in reconcile(app, "--account", "globex").output
    with get_db(app).sessionmaker() as s:
        other = s.get(Account, "globex")
        assert other is not None and other.subscription is None


def test_a_subscription_stripe_does_not_have_is_not_reported_as_matching(
    app: Any, on_starter: Story
) -> None:
    """A local subscription Stripe does not know (deleted there, or a key of another Stripe
    account) cannot be repaired: reconcile says which and fails, never "now matches"."""
    with get_db(app).session() as s:
        s.get(Account, "acme").subscription.stripe_subscription_id = "sub_unknown"
    result = reconcile(app)
    assert result.exit_code == 1, result.output
    assert "Check: acme: Stripe has no subscription sub_unknown (left as is: check it)" in (
        result.output
    )
    assert "0 fix(es); 1 subscription(s) need checking: see above." in result.output
    assert "now matches Stripe" not in result.output


def test_a_renewal_charged_while_its_webhooks_were_lost_is_recorded_by_reconcile(
    app: Any, on_starter: Story, clock: FixedClock
) -> None:
    """Stripe renews acme's Starter plan and takes the payment, and every webhook about it is
    lost. Reconcile moves the subscription onto the new period and records the renewal's paid
    invoice, so the customer's invoice list shows the charge; the scheduled `billing renew`
    after it has nothing left to do and changes nothing."""
    first_end = subscription(app).current_period_end
    on_starter.fake.advance_to_period_end(on_starter.sub_id)  # renewed and paid in Stripe
    clock.set(on_starter.fake.clock.now())
    paid_in_stripe = {i.id for i in stripe_invoices(on_starter) if i.status == "paid"}
    assert len(paid_in_stripe) == 2  # the first invoice and the renewal
    [renewal] = paid_in_stripe - set(local_invoices(app))

    result = reconcile(app)
    assert result.exit_code == 0, result.output
    assert f"acme: invoice {renewal} paid recorded" in result.output
    assert subscription(app).current_period_end > first_end
    renewed = app.test_cli_runner().invoke(billing_group, ["renew"])
    assert renewed.exit_code == 0, renewed.output

    recorded = local_invoices(app)
    assert {i for i, status in recorded.items() if status == "paid"} == paid_in_stripe
    with get_db(app).sessionmaker() as s:
        row = s.scalar(select(Invoice).where(Invoice.external_id == renewal))
        assert row is not None and (row.amount_paid, row.change_id) == (900, None)


def test_reconcile_records_a_lost_invoice_once(
    app: Any, on_starter: Story, clock: FixedClock
) -> None:
    """Run again, reconcile finds the renewal already recorded: nothing more to repair."""
    on_starter.fake.advance_to_period_end(on_starter.sub_id)
    clock.set(on_starter.fake.clock.now())
    first = reconcile(app).output
    assert first.count("paid recorded") == 1, first
    again = reconcile(app)
    assert again.output.strip() == "0 fix(es); local billing now matches Stripe.", again.output
    assert len(local_invoices(app)) == 2
    on_starter.deliver()  # the lost webhooks arrive late after all: still recorded once
    assert len(local_invoices(app)) == 2


def test_a_renewal_payment_failure_whose_webhooks_were_lost_is_recorded_by_reconcile(
    app: Any, on_starter: Story, clock: FixedClock
) -> None:
    """The renewal's payment is declined and no webhook arrives: reconcile puts acme past due,
    records the unpaid invoice and has the host app tell the customer, once. When the card is
    fixed and the invoice paid (its webhooks lost too), reconcile records it paid."""
    on_starter.fail_renewal()
    clock.set(on_starter.fake.clock.now())
    [failed] = [i.id for i in stripe_invoices(on_starter) if i.status == "open"]
    output = reconcile(app).output
    assert "status active -> past_due" in output
    assert (
        f"acme: invoice {failed} open recorded (host app notified of the failed payment)" in output
    )
    assert subscription(app).status == "past_due"
    assert local_invoices(app)[failed] == "open"
    assert "0 fix(es)" in reconcile(app).output
    with get_db(app).sessionmaker() as s:
        told = s.scalars(select(Notification).where(Notification.type == PAYMENT_FAILED)).all()
        assert [n.payload["data"]["invoice"] for n in told] == [failed]

    on_starter.recover()
    output = reconcile(app).output
    assert "status past_due -> active" in output
    assert f"acme: invoice {failed} paid recorded" in output
    assert local_invoices(app)[failed] == "paid"


def test_reconcile_reports_nothing_when_every_invoice_webhook_arrived(
    app: Any, on_starter: Story, clock: FixedClock
) -> None:
    """A renewal whose webhooks were all delivered leaves reconcile nothing to record; it reads
    only the subscription's invoices of the current and the previous period."""
    on_starter.fake.advance_to_period_end(on_starter.sub_id)
    on_starter.deliver()
    clock.set(on_starter.fake.clock.now())
    before = local_invoices(app)
    assert len(before) == 2
    requests = len(on_starter.fake.requests)
    result = reconcile(app)
    assert result.output.strip() == "0 fix(es); local billing now matches Stripe.", result.output
    assert local_invoices(app) == before
    [listed] = [
        r
        for r in on_starter.fake.requests[requests:]
        if r.method == "GET" and r.path == "/v1/invoices"
    ]
    sub = subscription(app)
    previous_start = sub.current_period_start - (sub.current_period_end - sub.current_period_start)
    assert listed.params["subscription"] == on_starter.sub_id
    assert listed.params["created"] == {"gte": str(int(previous_start.timestamp()))}
    assert listed.params["limit"] == "10"


def test_reconcile_records_the_invoice_of_a_subscription_it_adopts(app: Any, story: Story) -> None:
    """acme paid at Checkout and every webhook was lost, with its change: the subscription
    reconcile adopts comes with the invoice Stripe charged for it."""
    story.checkout()
    with get_db(app).session() as s:
        account = s.get(Account, "acme")
        assert account is not None
        account.stripe_customer_id = story.customer_id
    [paid] = [i.id for i in stripe_invoices(story) if i.status == "paid"]
    output = reconcile(app).output
    assert f"acme: adopted Stripe subscription {story.sub_id}" in output
    assert f"acme: invoice {paid} paid recorded" in output
    assert local_invoices(app) == {paid: "paid"}
    assert "0 fix(es)" in reconcile(app).output


def test_a_trials_first_charge_whose_webhooks_were_lost_makes_the_offer_a_sale(
    shop: Shop, client: Any, clock: FixedClock
) -> None:
    """newco takes Starter's trial from an offer; the trial ends and Stripe charges the first
    $9.00, but no webhook arrives. Reconcile records that charge, and the offer the trial came
    from counts as paid in the funnel."""
    offer_id, _, page = open_offer(shop, client, clock, "newco", "projects", 3)
    pay(shop, client, page, offer_id)
    assert offer_of(shop, offer_id).status is OfferStatus.ACCEPTED  # paid at the first charge
    sub_id = stripe_subscription_id(shop.app, "newco")
    shop.fake.advance_to_period_end(sub_id)  # the trial ends: the first charge, webhooks lost
    clock.set(shop.fake.clock.now())
    output = reconcile(shop.app).output
    assert "newco: invoice" in output and "paid recorded" in output, output
    offer = offer_of(shop, offer_id)
    assert offer.status is OfferStatus.PAID
    assert [e.amount for e in offer.events if e.type is OfferStatus.PAID] == [900]


def _asked_about(story: Story, sub_id: str) -> list[str]:
    """The requests the fake Stripe received that name the subscription."""
    return [
        f"{r.method} {r.path}"
        for r in story.fake.requests
        if sub_id in r.path or sub_id in str(r.params)
    ]


@pytest.mark.parametrize(("days_after_end", "compared"), [(10, True), (61, False)])
def test_a_sweep_leaves_a_subscription_canceled_long_ago(
    app: Any, on_starter: Story, clock: FixedClock, days_after_end: int, compared: bool
) -> None:
    """A churned account costs the hourly reconcile nothing on Stripe once its subscription
    ended 60 days ago: its last invoices are long settled. Before that it is compared as
    any other, and `--account` compares it whatever its age."""
    on_starter.cancel()
    on_starter.deliver()
    assert subscription(app).status == "canceled"
    sub_id = on_starter.sub_id
    on_starter.fake.advance(days_after_end * 86400)
    clock.set(on_starter.fake.clock.now())

    on_starter.fake.requests.clear()
    swept = reconcile(app)
    assert swept.exit_code == 0, swept.output
    assert swept.output == "0 fix(es); local billing now matches Stripe.\n"
    assert bool(_asked_about(on_starter, sub_id)) is compared

    on_starter.fake.requests.clear()
    one = reconcile(app, "--account", "acme")
    assert one.exit_code == 0, one.output
    assert f"GET /v1/subscriptions/{sub_id}" in _asked_about(on_starter, sub_id)
    assert subscription(app).status == "canceled"
