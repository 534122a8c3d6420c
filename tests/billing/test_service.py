"""Billing flows with ManualBilling (and a declining double) on the demo catalog.

The fixed clock stands at 2026-11-15T12:00Z, halfway through the subscriptions' period
(2026-10-31T12:00Z .. 2026-11-30T12:00Z), so prorated amounts are exactly half.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing import downgrade, service
from billing.manual import ManualBilling
from billing.models import BillingChange, ChangeStatus, Invoice, Notification
from billing.provider import QuoteMismatch
from gating.models import Account, AccountAddOn, Offer, OfferEvent, OfferStatus
from tests.billing.conftest import (
    PERIOD_END,
    PERIOD_START,
    DecliningBilling,
    add_account,
    gate_offer,
    quote_offer,
    set_gauge,
    subscribe,
)
from tiergate.clock import FixedClock
from tiergate.exceptions import Conflict, InvalidRequest, NotFound, ProviderUnavailable

URLS = service.Urls("http://localhost/done", "http://localhost/cancel")
MANUAL = ManualBilling()


@pytest.fixture
def version(demo_catalog) -> int:  # type: ignore[no-untyped-def]
    return int(demo_catalog.version)


def accept(
    session: Session,
    clock: FixedClock,
    offer: Offer,
    provider=MANUAL,  # type: ignore[no-untyped-def]
    **kw,
) -> service.FlowResult:
    return service.accept_offer(
        session, clock, provider, offer.id, offer.account_id, urls=URLS, **kw
    )


def invoices(session: Session, account_id: str) -> list[Invoice]:
    query = select(Invoice).where(Invoice.account_id == account_id).order_by(Invoice.id)
    return list(session.scalars(query))


def events(session: Session, offer: Offer) -> list[tuple[str, int | None]]:
    rows = session.scalars(
        select(OfferEvent).where(OfferEvent.offer_id == offer.id).order_by(OfferEvent.id)
    )
    return [(e.type.value, e.amount) for e in rows]


# ---- accepting an offer ----------------------------------------------------------------------


def test_accepting_an_upgrade_charges_exactly_the_quote_then_grants_the_tier(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version)
    offer = quote_offer(session, "acme", clock, version, amount_due_today=1000, new_recurring=2900)
    result = accept(session, clock, offer)
    assert result.status is service.FlowStatus.DONE
    assert result.invoice is not None and result.invoice.amount_paid == 1000
    sub = session.get(Account, "acme").subscription  # type: ignore[union-attr]
    assert (sub.tier_id, sub.interval, sub.catalog_version) == ("pro", "month", version)
    assert sub.current_period_end == PERIOD_END
    assert result.change.status is ChangeStatus.APPLIED
    assert ("accepted", None) in events(session, offer)
    assert ("paid", 1000) in events(session, offer)


def test_accepting_the_same_offer_twice_charges_once_and_returns_the_first_result(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version)
    offer = quote_offer(session, "acme", clock, version, amount_due_today=1000, new_recurring=2900)
    first = accept(session, clock, offer)
    again = accept(session, clock, offer)
    assert again.change.id == first.change.id
    assert again.invoice is not None and again.invoice.id == first.invoice.id  # type: ignore[union-attr]
    assert len(invoices(session, "acme")) == 1


def test_an_expired_offer_is_refused_with_the_time_it_was_quoted(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version)
    offer = quote_offer(session, "acme", clock, version, amount_due_today=1000, new_recurring=2900)
    clock.advance(minutes=31)
    with pytest.raises(service.QuoteExpired, match="quoted at 12:00 UTC and has expired"):
        accept(session, clock, offer)
    assert session.get(Account, "acme").subscription.tier_id == "starter"  # type: ignore[union-attr]
    assert invoices(session, "acme") == []


def test_another_accounts_offer_is_not_found(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version)
    add_account(session, "intruder", clock)
    offer = quote_offer(session, "acme", clock, version, amount_due_today=1000, new_recurring=2900)
    with pytest.raises(NotFound):
        service.accept_offer(session, clock, MANUAL, offer.id, "intruder", urls=URLS)
    assert invoices(session, "acme") == []


def test_a_contact_sales_offer_cannot_be_bought_online(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version, tier="business")
    offer = quote_offer(
        session,
        "acme",
        clock,
        version,
        to_tier="enterprise",
        contact_sales=True,
        amount_due_today=0,
        new_recurring=0,
    )
    with pytest.raises(Conflict, match="sales team: contact them at https://trackly.example"):
        accept(session, clock, offer)


def test_a_quote_that_differs_from_the_charge_fails_loudly_and_changes_nothing(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version)
    offer = quote_offer(session, "acme", clock, version, amount_due_today=999, new_recurring=2900)
    with pytest.raises(QuoteMismatch):
        accept(session, clock, offer)
    assert session.get(Account, "acme").subscription.tier_id == "starter"  # type: ignore[union-attr]
    change = session.scalar(select(BillingChange).where(BillingChange.offer_id == offer.id))
    assert change is not None and change.status is ChangeStatus.FAILED
    assert invoices(session, "acme") == []


def test_a_declined_card_keeps_the_old_tier_and_says_so(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version)
    offer = quote_offer(session, "acme", clock, version, amount_due_today=1000, new_recurring=2900)
    result = accept(session, clock, offer, provider=DecliningBilling())
    assert result.status is service.FlowStatus.DECLINED
    assert "declined" in result.message and "you are still on Starter" in result.message
    assert session.get(Account, "acme").subscription.tier_id == "starter"  # type: ignore[union-attr]
    assert result.change.status is ChangeStatus.FAILED
    assert ("failed", None) in events(session, offer)
    assert invoices(session, "acme") == []


def test_retrying_after_a_decline_uses_a_new_idempotency_key(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version)
    offer = quote_offer(session, "acme", clock, version, amount_due_today=1000, new_recurring=2900)
    declined = accept(session, clock, offer, provider=DecliningBilling())
    paid = accept(session, clock, offer)
    assert paid.status is service.FlowStatus.DONE
    assert paid.change.id != declined.change.id


def test_a_free_account_accepting_an_offer_starts_a_subscription_today(
    session: Session, clock: FixedClock, version: int
) -> None:
    add_account(session, "newco", clock)
    offer = quote_offer(
        session,
        "newco",
        clock,
        version,
        to_tier="starter",
        from_tier="free",
        amount_due_today=900,
        new_recurring=900,
    )
    result = accept(session, clock, offer)
    assert result.invoice is not None and result.invoice.amount_paid == 900
    sub = session.get(Account, "newco").subscription  # type: ignore[union-attr]
    assert sub.tier_id == "starter" and sub.status.value == "active"
    assert sub.current_period_start == clock.now()
    assert sub.current_period_end == datetime(2026, 12, 15, 12, 0, tzinfo=UTC)


def test_the_optional_addon_is_charged_prorated_with_the_upgrade(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version)
    offer = quote_offer(
        session,
        "acme",
        clock,
        version,
        amount_due_today=1000,
        new_recurring=2900,
        addon_id="extended_support",
    )
    assert service.offer_addon_due_today(session, clock, offer) == 2450
    result = accept(session, clock, offer, with_addon=True)
    assert result.invoice is not None and result.invoice.amount_paid == 3450
    active = session.scalars(
        select(AccountAddOn.addon_id).where(
            AccountAddOn.account_id == "acme", AccountAddOn.active.is_(True)
        )
    ).all()
    assert active == ["extended_support"]


def test_the_addon_is_not_charged_unless_ticked(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version)
    offer = quote_offer(
        session,
        "acme",
        clock,
        version,
        amount_due_today=1000,
        new_recurring=2900,
        addon_id="extended_support",
    )
    result = accept(session, clock, offer)
    assert result.invoice is not None and result.invoice.amount_paid == 1000


def test_an_upgrade_replaces_a_scheduled_downgrade(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version)
    downgrade.cancel(session, clock, MANUAL, "acme")
    offer = quote_offer(session, "acme", clock, version, amount_due_today=1000, new_recurring=2900)
    accept(session, clock, offer)
    sub = session.get(Account, "acme").subscription  # type: ignore[union-attr]
    assert not sub.cancel_at_period_end and sub.scheduled_tier_id is None


# ---- checkout and the yearly switch -------------------------------------------------------


def test_checkout_starts_the_catalogs_trial_without_a_charge(
    session: Session, clock: FixedClock, version: int
) -> None:
    add_account(session, "newco", clock)
    result = service.checkout(
        session, clock, MANUAL, "newco", "pro", "month", "usd", expected_amount_due=0, urls=URLS
    )
    assert result.status is service.FlowStatus.DONE and "14-day trial" in result.message
    sub = session.get(Account, "newco").subscription  # type: ignore[union-attr]
    assert sub.status.value == "trialing"
    assert sub.trial_end == clock.now() + timedelta(days=14)


def test_checkout_for_an_account_that_already_subscribes_is_refused(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version)
    with pytest.raises(Conflict, match="already has a subscription"):
        service.checkout(
            session, clock, MANUAL, "acme", "pro", "month", "usd", expected_amount_due=0, urls=URLS
        )


def test_switching_to_yearly_is_a_prorated_upgrade_with_a_new_yearly_period(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version)
    quote, _ = service.yearly_quote(session, clock, "acme", clock.now())
    assert quote.amount_due == 9000 - 450
    result = service.switch_to_yearly(
        session,
        clock,
        MANUAL,
        "acme",
        proration_date=clock.now(),
        expected_amount_due=8550,
        urls=URLS,
    )
    assert result.invoice is not None and result.invoice.amount_paid == 8550
    sub = session.get(Account, "acme").subscription  # type: ignore[union-attr]
    assert sub.interval == "year" and sub.current_period_start == clock.now()
    assert sub.current_period_end == datetime(2027, 11, 15, 12, 0, tzinfo=UTC)


def test_a_stale_yearly_quote_is_refused(session: Session, clock: FixedClock, version: int) -> None:
    subscribe(session, "acme", clock, version)
    with pytest.raises(service.QuoteExpired):
        service.switch_to_yearly(
            session,
            clock,
            MANUAL,
            "acme",
            proration_date=clock.now() - timedelta(hours=2),
            expected_amount_due=8550,
            urls=URLS,
        )


# ---- renewals -----------------------------------------------------


def test_renewal_applies_the_scheduled_downgrade_and_invoices_the_new_period(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version, tier="pro")
    set_gauge(session, "acme", "projects", 12, clock)
    downgrade.confirm_downgrade(session, clock, MANUAL, "acme", "starter")
    clock.set(PERIOD_END + timedelta(minutes=1))
    [result] = service.apply_period_end(session, clock, MANUAL)
    assert result.invoice is not None and result.invoice.amount_paid == 900
    sub = session.get(Account, "acme").subscription  # type: ignore[union-attr]
    assert (sub.tier_id, sub.scheduled_tier_id) == ("starter", None)
    assert sub.current_period_start == PERIOD_END
    assert sub.current_period_end == datetime(2026, 12, 31, 12, 0, tzinfo=UTC)
    # Usage above the new limit is kept: the gate blocks new projects, nothing is deleted.
    from gating.models import UsageCounter

    assert session.scalar(select(UsageCounter.used).where(UsageCounter.account_id == "acme")) == 12


def test_renewal_catches_up_every_missed_period_with_its_own_invoice(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version)
    clock.set(datetime(2027, 2, 2, tzinfo=UTC))
    results = service.apply_period_end(session, clock, MANUAL)
    assert [r.invoice.amount_paid for r in results if r.invoice] == [900, 900, 900]
    receipts = session.scalars(select(Notification).where(Notification.type == "invoice.paid"))
    assert [n.payload["data"]["amount_paid"] for n in receipts] == [900, 900, 900]
    sub = session.get(Account, "acme").subscription  # type: ignore[union-attr]
    assert sub.current_period_end == datetime(2027, 2, 28, 12, 0, tzinfo=UTC)


def test_one_account_that_cannot_be_renewed_does_not_stop_the_others(
    session: Session, clock: FixedClock, version: int
) -> None:
    """A plan no longer sold at the account's interval (a catalog migration gone wrong) is
    reported; the other accounts still renew."""
    subscribe(session, "acme", clock, version)
    subscribe(session, "bolt", clock, version, tier="pro")
    session.get(Account, "acme").subscription.currency = "jpy"  # type: ignore[union-attr]
    clock.set(PERIOD_END + timedelta(minutes=1))
    results = {r.change.account_id: r for r in service.apply_period_end(session, clock, MANUAL)}
    assert results["acme"].status is service.FlowStatus.DECLINED
    assert results["acme"].message.startswith("Not renewed acme: ")
    assert results["acme"].change.status is ChangeStatus.FAILED
    assert results["bolt"].status is service.FlowStatus.DONE
    assert [i.amount_paid for i in invoices(session, "bolt")] == [2900]
    assert invoices(session, "acme") == []


def test_renewal_ends_a_cancelled_subscription_without_charging(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version)
    downgrade.cancel(session, clock, MANUAL, "acme")
    clock.set(PERIOD_END)
    service.apply_period_end(session, clock, MANUAL)
    sub = session.get(Account, "acme").subscription  # type: ignore[union-attr]
    assert sub.status.value == "canceled" and sub.canceled_at == PERIOD_END
    assert invoices(session, "acme") == []


def test_renewal_before_the_period_end_does_nothing(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version)
    assert service.apply_period_end(session, clock, MANUAL) == []


# ---- add-ons -------------------------------------------------------------------------------


def test_a_recurring_addon_is_prorated_for_the_rest_of_the_period(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version)
    price, due = service.addon_quote(session, clock, "acme", "extended_support", clock.now())
    assert (price.amount, due) == (4900, 2450)
    result = service.buy_addon(
        session,
        clock,
        MANUAL,
        "acme",
        "extended_support",
        proration_date=clock.now(),
        expected_amount_due=2450,
        urls=URLS,
    )
    assert result.invoice is not None and result.invoice.amount_paid == 2450


def test_a_one_time_addon_is_charged_in_full(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version)
    result = service.buy_addon(
        session,
        clock,
        MANUAL,
        "acme",
        "onboarding",
        proration_date=clock.now(),
        expected_amount_due=29900,
        urls=URLS,
    )
    assert result.invoice is not None and result.invoice.amount_paid == 29900
    rows = session.scalar(select(func.count()).select_from(AccountAddOn))
    assert rows == 1


def test_an_addon_included_in_the_tier_cannot_be_bought(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version, tier="business")
    with pytest.raises(Conflict, match="already included in Business"):
        service.addon_quote(session, clock, "acme", "extended_support", clock.now())


def test_an_addon_not_available_on_the_tier_says_where_it_is(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version, tier="team_legacy")
    with pytest.raises(
        InvalidRequest, match="not available on Team \\(legacy\\): it is available on Starter, Pro"
    ):
        service.addon_quote(session, clock, "acme", "extended_support", clock.now())


def test_addons_need_a_paid_plan(session: Session, clock: FixedClock, version: int) -> None:
    add_account(session, "newco", clock)
    with pytest.raises(InvalidRequest, match="need a paid plan"):
        service.addon_quote(session, clock, "newco", "seat_pack", clock.now())


def test_an_addon_already_owned_cannot_be_bought_twice(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version, addons=("seat_pack",))
    with pytest.raises(Conflict, match="already have"):
        service.addon_quote(session, clock, "acme", "seat_pack", clock.now())


def test_an_unknown_addon_is_not_found(session: Session, clock: FixedClock, version: int) -> None:
    subscribe(session, "acme", clock, version)
    with pytest.raises(NotFound, match="'gold_plating'"):
        service.addon_quote(session, clock, "acme", "gold_plating", clock.now())


def test_a_removed_addon_lasts_until_the_period_end_and_is_not_renewed(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version, addons=("seat_pack",))
    service.remove_addon(session, clock, MANUAL, "acme", "seat_pack")
    row = session.scalar(select(AccountAddOn).where(AccountAddOn.addon_id == "seat_pack"))
    assert row is not None and row.active and row.ended_at == PERIOD_END
    clock.set(PERIOD_END)
    [result] = service.apply_period_end(session, clock, MANUAL)
    assert result.invoice is not None and result.invoice.amount_paid == 900
    assert not row.active


def test_a_renewal_charges_active_addons(session: Session, clock: FixedClock, version: int) -> None:
    subscribe(session, "acme", clock, version, addons=("seat_pack",))
    clock.set(PERIOD_END)
    [result] = service.apply_period_end(session, clock, MANUAL)
    assert result.invoice is not None and result.invoice.amount_paid == 900 + 2500


def test_post_purchase_offer_follows_a_successful_upgrade_when_policy_chooses_one(
    session: Session, clock: FixedClock, version: int
) -> None:
    from gating import policy

    if not hasattr(policy, "choose_post_purchase_addon"):
        pytest.skip("gating.policy has no choose_post_purchase_addon")
    subscribe(session, "acme", clock, version)
    offer = quote_offer(session, "acme", clock, version, amount_due_today=1000, new_recurring=2900)
    result = accept(session, clock, offer)
    assert result.follow_up_offer_id is not None
    follow = session.get(Offer, result.follow_up_offer_id)
    assert follow is not None and follow.trigger.value == "post_purchase"
    assert follow.addon_id == "extended_support" and follow.status is OfferStatus.CREATED


class UnreachableBilling(DecliningBilling):
    """A test double whose processor times out: the outcome of a charge is unknown."""

    def change_subscription(self, request):  # type: ignore[no-untyped-def]
        self.calls.append(request.idempotency_key)
        raise ProviderUnavailable("Timed out talking to the payment processor.")


def test_an_unreachable_provider_leaves_the_change_pending_and_a_retry_reuses_its_key(
    session: Session, clock: FixedClock, version: int
) -> None:
    subscribe(session, "acme", clock, version)
    offer = quote_offer(session, "acme", clock, version, amount_due_today=1000, new_recurring=2900)
    unreachable = UnreachableBilling()
    first = accept(session, clock, offer, provider=unreachable)
    assert first.status is service.FlowStatus.PENDING
    assert (
        first.change.status is ChangeStatus.PENDING and "Nothing is charged twice" in first.message
    )
    assert session.get(Account, "acme").subscription.tier_id == "starter"  # type: ignore[union-attr]
    retried = accept(session, clock, offer)
    assert retried.change.id == first.change.id == unreachable.calls[0]
    assert retried.status is service.FlowStatus.DONE
    assert len(invoices(session, "acme")) == 1


@pytest.mark.parametrize(
    ("setup", "feature", "used"),
    [
        ({"tier": "starter"}, "projects", 10),
        ({"tier": "starter", "addons": ("seat_pack",)}, "projects", 10),
        (
            {"tier": "starter", "interval": "year", "period_end": PERIOD_START.replace(year=2027)},
            "projects",
            10,
        ),
        ({"tier": "pro"}, "sso", 0),
        ({"tier": "starter", "status": "trialing"}, "audit_log", 0),
        (None, "projects", 3),
    ],
    ids=[
        "monthly",
        "with-kept-addon",
        "yearly-with-promotion",
        "boolean-feature",
        "trialing",
        "free",
    ],
)
def test_every_quote_the_gate_makes_is_charged_to_the_cent(
    session: Session,
    clock: FixedClock,
    version: int,
    setup,
    feature: str,
    used: int,  # type: ignore[no-untyped-def]
) -> None:
    if setup is None:
        add_account(session, "acme", clock)
    else:
        subscribe(session, "acme", clock, version, **setup)
        if setup.get("status") == "trialing":
            session.get(Account, "acme").subscription.trial_end = PERIOD_END  # type: ignore[union-attr]
    set_gauge(session, "acme", "projects", used, clock)
    offer = gate_offer(session, clock, "acme", feature, used=used, requested=1)
    with_addon = offer.addon_id is not None
    addon_today = service.offer_addon_due_today(session, clock, offer) if with_addon else 0
    result = accept(session, clock, offer, with_addon=with_addon)
    assert result.status is service.FlowStatus.DONE, result.message
    assert result.invoice is not None
    assert result.invoice.amount_paid == offer.amount_due_today + (addon_today or 0)
    assert session.get(Account, "acme").subscription.tier_id == offer.to_tier_id  # type: ignore[union-attr]


def test_two_concurrent_accepts_of_one_offer_charge_once(
    app,
    postgres_url: str,
    clock: FixedClock,
    version: int,  # type: ignore[no-untyped-def]
) -> None:
    import threading

    from sqlalchemy.exc import IntegrityError

    from tiergate.db import get_db

    database = get_db(app)
    with database.session() as s:
        subscribe(s, "acme", clock, version)
        offer_id = quote_offer(
            s, "acme", clock, version, amount_due_today=1000, new_recurring=2900
        ).id
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def accept_in_thread() -> None:
        with database.sessionmaker() as s:
            barrier.wait()
            try:
                service.accept_offer(s, clock, MANUAL, offer_id, "acme", urls=URLS)
                s.commit()
                outcomes.append("done")
            except IntegrityError:
                s.rollback()
                outcomes.append("lost the race")

    threads = [threading.Thread(target=accept_in_thread) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert "done" in outcomes and len(outcomes) == 2
    with database.session() as s:
        assert len(invoices(s, "acme")) == 1


# ---- a promotion that outlives the upgrade: the quoted renewal is the renewal charged ----------


SPRING = """promotions:
  - id: spring_pro
    name: 20 % off Pro for 3 months
    percent_off: 20
    tiers: [pro]
    intervals: [month]
    starts_at: 2026-01-01
    duration: repeating
    duration_in_months: 3
"""


def test_a_repeating_promotion_is_charged_on_the_renewals_the_offer_quoted(
    app,
    session: Session,
    clock: FixedClock,
    demo_catalog,
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    from gating import service as gate
    from tests.conftest import DEMO_CATALOG
    from tiers import store
    from tiers.loader import load_catalog_file

    path = tmp_path / "catalog.yaml"
    path.write_text(DEMO_CATALOG.read_text().replace("promotions:\n", SPRING, 1))
    catalog, source = load_catalog_file(path)
    version = store.publish(
        session, catalog, source=source, author="t", note="spring", now=clock.now()
    ).version.version
    subscribe(session, "acme", clock, version)
    session.commit()
    settings = gate.GateSettings(past_due_grace_days=7, base_url="http://localhost")
    denied = gate.check(session, clock, "acme", "audit_log", settings=settings)
    assert not denied.allowed and denied.offer is not None
    offer = session.get(Offer, denied.offer["id"])
    assert offer is not None and offer.promotion_id == "spring_pro"
    assert offer.next_renewal_amount == 2320  # the policy quotes the discounted renewal
    result = service.accept_offer(session, clock, MANUAL, offer.id, "acme", urls=URLS)
    assert result.status is service.FlowStatus.DONE
    session.commit()

    charged = []
    for _ in range(4):
        sub = session.get(Account, "acme").subscription  # type: ignore[union-attr]
        clock.set(sub.current_period_end + timedelta(minutes=1))
        [renewal] = service.apply_period_end(session, clock, MANUAL)
        session.commit()
        assert renewal.invoice is not None
        charged.append(renewal.invoice.amount_paid)
    # Given on November 15 for three months, it runs to February 15, as Stripe's coupon does:
    # the renewals of November 30, December 30 and January 30 are discounted, then full price.
    assert charged == [offer.next_renewal_amount, 2320, 2320, 2900]


# ---- add-on prices across catalog versions ---------------------------------------------------

SEAT_PACK_V1 = "month: {usd: 2500, eur: 2300}"


def publish_seat_pack_at_30(session: Session, clock: FixedClock, tmp_path) -> int:  # type: ignore[no-untyped-def]
    """A new catalog version where the seat pack costs 30.00 a month instead of 25.00."""
    from tests.conftest import DEMO_CATALOG
    from tiers import store
    from tiers.loader import load_catalog_file

    text = DEMO_CATALOG.read_text()
    assert text.count(SEAT_PACK_V1) == 1
    path = tmp_path / "v2.yaml"
    path.write_text(text.replace(SEAT_PACK_V1, "month: {usd: 3000, eur: 2800}"))
    catalog, source = load_catalog_file(path)
    published = store.publish(
        session, catalog, source=source, author="t", note="v2", now=clock.now()
    )
    return published.version.version


def test_an_upgrade_keeps_the_price_of_an_addon_bought_on_an_older_catalog(
    session: Session, clock: FixedClock, version: int, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """The offer quotes the renewal with the seat pack at the price it was bought at; the
    upgrade once moved it to the newest catalog's price, and the renewal charged more."""
    subscribe(session, "acme", clock, version, addons=("seat_pack",))
    publish_seat_pack_at_30(session, clock, tmp_path)
    set_gauge(session, "acme", "projects", 10, clock)
    offer = gate_offer(session, clock, "acme", "projects", used=10, requested=1)
    assert offer.next_renewal_amount == 2900 + 2500
    assert accept(session, clock, offer).status is service.FlowStatus.DONE
    clock.set(PERIOD_END + timedelta(minutes=1))
    [renewal] = service.apply_period_end(session, clock, MANUAL)
    assert renewal.invoice is not None
    assert renewal.invoice.amount_paid == offer.next_renewal_amount


def test_an_addon_bought_on_a_plan_pinned_to_an_older_catalog_renews_at_the_price_paid(
    session: Session, clock: FixedClock, version: int, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """The add-on page prices it from the newest catalog (30.00); the renewal once priced it
    from the plan's older version (25.00)."""
    subscribe(session, "acme", clock, version)
    newest = publish_seat_pack_at_30(session, clock, tmp_path)
    price, due = service.addon_quote(session, clock, "acme", "seat_pack", clock.now())
    assert (price.amount, due) == (3000, 1500)
    service.buy_addon(
        session, clock, MANUAL, "acme", "seat_pack",
        proration_date=clock.now(), expected_amount_due=1500, urls=URLS,
    )  # fmt: skip
    row = session.scalar(select(AccountAddOn).where(AccountAddOn.addon_id == "seat_pack"))
    assert row is not None and row.catalog_version == newest
    assert session.get(Account, "acme").subscription.catalog_version == version  # type: ignore[union-attr]
    clock.set(PERIOD_END + timedelta(minutes=1))
    [renewal] = service.apply_period_end(session, clock, MANUAL)
    assert renewal.invoice is not None and renewal.invoice.amount_paid == 900 + 3000


def test_the_funnel_counts_the_recurring_addon_taken_with_an_offer(
    session: Session, clock: FixedClock, version: int
) -> None:
    """Starter (9.00) -> Pro (29.00) with Extended support (49.00) ticked: the account now pays
    78.00 a month instead of 9.00, so the offer added 69.00 of monthly recurring revenue."""
    from gating import offers
    from gating.funnel import funnel

    since = clock.now()
    subscribe(session, "acme", clock, version)
    set_gauge(session, "acme", "projects", 10, clock)
    offer = gate_offer(session, clock, "acme", "projects", used=10, requested=1)
    assert (offer.to_tier_id, offer.addon_id) == ("pro", "extended_support")
    offers.record_event(session, clock, offer.id, "shown")
    result = service.accept_offer(
        session, clock, MANUAL, offer.id, "acme", urls=URLS, with_addon=True
    )
    assert result.status is service.FlowStatus.DONE
    report = funnel(session, since=since, until=clock.now() + timedelta(seconds=1))
    assert report.total.mrr_added == {"usd": 2900 + 4900 - 900}
