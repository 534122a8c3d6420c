"""gating/funnel.py: conversion per trigger and feature, and the recurring revenue offers added."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gating import offers
from gating.funnel import Funnel, FunnelRow, funnel, funnel_text
from tests.gating.test_offers import make_account, quote
from tiergate.exceptions import InvalidRequest


def walk(session, clock, offer, *steps):
    for step in steps:
        clock.advance(seconds=1)
        offers.record_event(session, clock, offer.id, step)


@pytest.fixture
def window(session, clock, demo_catalog):
    """Five offers in the window, one before it, and one event after it."""
    v = demo_catalog.version
    early = quote(
        session, clock, make_account(session, clock, "early", "starter", version=v), demo_catalog
    )
    walk(session, clock, early, "shown", "accepted", "paid")
    clock.advance(days=1)
    since = clock.now()
    paid = quote(
        session, clock, make_account(session, clock, "a", "starter", version=v), demo_catalog
    )
    walk(session, clock, paid, "shown", "clicked", "accepted", "paid")
    dismissed = quote(
        session, clock, make_account(session, clock, "b", "starter", version=v), demo_catalog
    )
    walk(session, clock, dismissed, "shown", "dismissed")
    sso = quote(
        session,
        clock,
        make_account(session, clock, "c", "starter", version=v),
        demo_catalog,
        feature="sso",
        used=None,
    )
    walk(session, clock, sso, "shown")
    nudge = quote(
        session,
        clock,
        make_account(session, clock, "d", version=v),
        demo_catalog,
        used=2,
        trigger="nudge",
    )
    assert nudge is not None
    yearly_eur = make_account(
        session, clock, "e", "starter", version=v, interval="year", currency="eur"
    )
    api_accepted = quote(session, clock, yearly_eur, demo_catalog)
    walk(session, clock, api_accepted, "accepted", "paid")  # accepted through the API
    until = clock.now() + timedelta(seconds=1)
    clock.set(until + timedelta(hours=1))
    walk(session, clock, sso, "clicked")  # after the window: not counted
    return since, until


def test_counts_each_step_per_trigger_with_conversion_in_basis_points(session, window):
    report = funnel(session, since=window[0], until=window[1])
    by_trigger = {row.trigger: row.to_json() for row in report.by_trigger}
    assert by_trigger["limit_reached"] == {
        "trigger": "limit_reached",
        "feature": None,
        "created": 4,
        "shown": 4,  # an offer accepted through the API was shown
        "clicked": 2,
        "dismissed": 1,
        "accepted": 2,
        "paid": 2,
        "conversion_bp": 5000,
        # Starter 9.00 -> Pro 29.00 monthly (usd); 90.00 -> 270.00 yearly in eur, per month.
        "mrr_added": {"eur": 27000 // 12 - 9000 // 12, "usd": 2000},
    }
    assert by_trigger["nudge"]["created"] == 1
    assert by_trigger["nudge"]["shown"] == 0
    assert by_trigger["nudge"]["conversion_bp"] is None


def test_counts_per_feature_and_per_trigger_and_feature(session, window):
    report = funnel(session, since=window[0], until=window[1])
    by_feature = {row.feature: row for row in report.by_feature}
    assert (by_feature["projects"].created, by_feature["projects"].shown) == (4, 3)
    assert by_feature["projects"].conversion_bp == 6666
    assert (by_feature["sso"].shown, by_feature["sso"].clicked) == (1, 0)
    pairs = {(r.trigger, r.feature): r.created for r in report.by_trigger_and_feature}
    assert pairs == {
        ("limit_reached", "projects"): 3,
        ("limit_reached", "sso"): 1,
        ("nudge", "projects"): 1,
    }
    assert report.total.created == 5 and report.total.paid == 2


def test_an_empty_window_has_nothing(session, window):
    report = funnel(session, since=window[1], until=window[1] + timedelta(days=1))
    assert report.total.created == 0 and report.by_trigger == ()


def test_bad_window_is_refused(session, window):
    with pytest.raises(InvalidRequest, match="must be after"):
        funnel(session, since=window[1], until=window[0])
    with pytest.raises(InvalidRequest, match="timezone-aware"):
        funnel(session, since=window[0].replace(tzinfo=None), until=window[1])


def test_an_offer_quoted_again_counts_once_with_the_steps_of_its_chain(
    session, clock, demo_catalog
):
    """Shown, expired and re-quoted, then paid: one offer shown and paid, not two shown."""
    since = clock.now()
    account = make_account(session, clock, "a", "starter", version=demo_catalog.version)
    first = quote(session, clock, account, demo_catalog)
    walk(session, clock, first, "shown")
    clock.advance(hours=1)  # the quote expired
    again = offers.requote(session, clock, first)
    assert again.id != first.id and again.details["requoted_from"] == first.id
    walk(session, clock, again, "shown", "clicked", "accepted", "paid")
    report = funnel(session, since=since, until=clock.now() + timedelta(seconds=1))
    row = report.total
    assert (row.created, row.shown, row.clicked, row.paid) == (1, 1, 1, 1)
    assert row.conversion_bp == 10000 and row.mrr_added == {"usd": 2900 - 900}


def test_the_terminal_table_writes_revenue_as_money_per_currency():
    from datetime import UTC, datetime

    from gating.funnel import Funnel, FunnelRow, funnel_text

    total = FunnelRow(None, None, created=3, shown=2, paid=1, mrr_added={"usd": 2000, "eur": 1550})
    at = datetime(2026, 11, 1, tzinfo=UTC)
    text = funnel_text(Funnel(at, at, total, (), (), ()))
    assert "MRR added (per month)" in text
    assert "€15.50, $20.00" in text and "usd 2000" not in text


def test_a_forever_promotion_counts_as_less_recurring_revenue(session, clock, demo_catalog):
    """Pro at 29.00 with 20 % off forever is 23.20 every month: from Starter (9.00) the offer
    adds 14.20 a month, not the list price's 20.00."""
    from tests.tiers.test_subscribers import DEMO_TEXT, publish_text
    from tiers import store

    forever = DEMO_TEXT.replace(
        "    tiers: [pro, business]\n    intervals: [year]\n",
        "    tiers: [pro]\n    intervals: [month]\n",
    ).replace("    duration: once\n", "    duration: forever\n")
    version = publish_text(session, clock, forever, "20 % off Pro forever")
    since = clock.now()
    account = make_account(session, clock, "acme", "starter", version=version)
    offer = quote(session, clock, account, store.load(session, version))
    assert offer.promotion_id == "yearly_launch" and offer.next_renewal_amount == 2320
    walk(session, clock, offer, "shown", "accepted", "paid")
    report = funnel(session, since=since, until=clock.now() + timedelta(seconds=1))
    assert report.total.mrr_added == {"usd": 2320 - 900}


def test_an_offer_requoted_in_the_next_window_is_not_counted_again(session, clock, demo_catalog):
    """A customer shown an offer at 23:50 reopens it after its quote expired, at 00:10 (a
    requote): one offer. The first day's report counts it and the next day's does not, so
    daily reports add up to the report over both days."""
    v = demo_catalog.version
    monday = clock.now()
    account = make_account(session, clock, "acme", "starter", version=v)
    first = quote(session, clock, account, demo_catalog)
    walk(session, clock, first, "shown")
    midnight = clock.now() + timedelta(minutes=10)
    clock.set(midnight + timedelta(minutes=40))  # the 30-minute quote has expired
    again = offers.requote(session, clock, first)
    assert again.details["requoted_from"] == first.id
    walk(session, clock, again, "shown", "clicked", "accepted", "paid")
    end = clock.now() + timedelta(seconds=1)

    whole = funnel(session, since=monday, until=end).total
    day1 = funnel(session, since=monday, until=midnight).total
    day2 = funnel(session, since=midnight, until=end).total

    assert (whole.created, whole.shown, whole.paid) == (1, 1, 1)
    assert (day1.created + day2.created, day1.shown + day2.shown) == (
        whole.created,
        whole.shown,
    ), f"day 1: {day1.to_json()}; day 2: {day2.to_json()}"


def test_the_terminal_table_names_offers_without_a_feature_in_words():
    """Post-purchase cross-sell offers have no feature: `tiergate funnel` labels their row in
    words, not "feature None"."""
    at = datetime(2026, 11, 1, tzinfo=UTC)
    cross_sell = FunnelRow("post_purchase", None, created=1, shown=1)
    by_feature = (FunnelRow(None, None, created=1, shown=1),)
    text = funnel_text(
        Funnel(at, at, FunnelRow(None, None, created=1, shown=1), (cross_sell,), by_feature, ())
    )
    assert "feature None" not in text and "no feature (cross-sell)" in text, text
