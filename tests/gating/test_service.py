"""The gate service: check, consume, gauges, idempotency, resets, statuses, query budget.

Offer *content* is tested with gating/offers.py; here only that denials and nudges carry one.
Concurrency: tests/gating/test_usage_concurrency.py.
"""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, select

from gating import service
from gating.models import Offer, UsageCounter, UsageRequest
from tests.factories import add_addon, add_override, make_account, month_start, set_usage
from tiergate.db import get_db
from tiergate.exceptions import Conflict, InvalidRequest, NoCatalog, NotFound
from tiers import store
from tiers.model import Catalog

SETTINGS = service.GateSettings(past_due_grace_days=7, base_url="http://localhost")
needs_offers = pytest.mark.skipif(
    importlib.util.find_spec("gating.offers") is None,
    reason="gating/offers.py is not written yet: denials carry no offer to assert",
)


@pytest.fixture
def db(app, demo_catalog):
    return get_db(app)


def run(db, clock, fn, *args, **kwargs):
    with db.session() as s:
        return fn(s, clock, *args, settings=SETTINGS, **kwargs)


def account(db, clock, account_id="acme", **kwargs):
    with db.session() as s:
        make_account(s, account_id, now=clock.now(), **kwargs)


def count(db, model) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def publish_variant(db, clock, edit) -> int:
    """Publish the demo catalog changed by edit(document); its new version number."""
    with db.session() as s:
        doc = store.load(s).catalog.to_document()
        edit(doc)
        result = store.publish(
            s, Catalog.from_document(doc), source="", author="test", note="", now=clock.now()
        )
        return result.version.version


def statements(db, action) -> list[str]:
    seen: list[str] = []

    def listener(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        action()
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    return seen


# ---- check and consume --------------------------------------------------------------------


def test_consume_within_the_limit_counts_and_reports_remaining(db, clock):
    account(db, clock)
    d = run(db, clock, service.consume, "acme", "projects", 2)
    assert (d.allowed, d.used, d.limit, d.remaining, d.reason) == (True, 2, 3, 1, None)


def test_consume_at_the_limit_is_denied_and_records_nothing(db, clock):
    account(db, clock)
    with db.session() as s:
        set_usage(s, "acme", "projects", 3, now=clock.now())
    d = run(db, clock, service.consume, "acme", "projects", 1)
    assert (d.allowed, d.reason, d.used, d.remaining) == (False, "limit_reached", 3, 0)
    assert d.message == "3 of 3 projects used: the Free limit is reached."
    assert run(db, clock, service.check, "acme", "projects").used == 3
    assert count(db, UsageRequest) == 0


@needs_offers
def test_consume_at_limit_is_denied_with_cheapest_sufficient_offer(db, clock):
    account(db, clock)
    with db.session() as s:
        set_usage(s, "acme", "projects", 3, now=clock.now())
    d = run(db, clock, service.consume, "acme", "projects", 1)
    assert d.offer["to"]["tier"] == "starter"


@needs_offers
def test_boolean_feature_not_in_tier_is_denied_with_an_unlocking_offer(db, clock):
    account(db, clock, tier="starter")
    d = run(db, clock, service.check, "acme", "sso")
    assert (d.allowed, d.reason, d.offer["to"]["tier"]) == (
        False,
        "feature_not_in_tier",
        "business",
    )


@needs_offers
def test_crossing_the_nudge_threshold_is_allowed_with_a_nudge_offer(db, clock):
    account(db, clock, tier="starter")
    with db.session() as s:
        set_usage(s, "acme", "projects", 7, now=clock.now())
    d = run(db, clock, service.consume, "acme", "projects", 1)
    assert d.allowed and d.nudge and d.offer["trigger"] == "nudge"


def test_boolean_check_answers_without_usage_numbers(db, clock):
    account(db, clock, tier="business")
    assert run(db, clock, service.check, "acme", "sso") == service.Decision(
        True, "sso", None, None, None
    )
    account(db, clock, "small", tier="starter")
    d = run(db, clock, service.check, "small", "sso")
    assert (d.allowed, d.reason, d.used, d.limit) == (False, "feature_not_in_tier", None, None)
    assert d.message == "Single sign-on (SAML) is not included in Starter."


def test_check_records_nothing(db, clock):
    account(db, clock)
    d = run(db, clock, service.check, "acme", "api_calls", 10)
    assert (d.allowed, d.used, d.remaining) == (True, 0, 1000)
    assert not run(db, clock, service.check, "acme", "api_calls", 1001).allowed
    assert count(db, UsageCounter) == 0


def test_check_nudges_when_the_prospective_use_crosses_the_threshold(db, clock):
    account(db, clock, tier="starter")
    with db.session() as s:
        set_usage(s, "acme", "projects", 6, now=clock.now())
    assert not run(db, clock, service.check, "acme", "projects", 1).nudge
    d = run(db, clock, service.check, "acme", "projects", 2)
    assert (d.allowed, d.nudge, d.used) == (True, True, 6)


@needs_offers
def test_a_check_nudge_states_the_usage_now_and_what_the_use_would_make_it(db, clock):
    account(db, clock)  # free: 1,000 API calls a month, nudged from 800
    d = run(db, clock, service.check, "acme", "api_calls", 900)
    assert (d.allowed, d.nudge, d.used, d.remaining) == (True, True, 0, 1000)
    assert d.message == "0 of 1,000 API calls used; 900 more would make 900 of 1,000."
    assert d.offer["usage"] == {"used": 0, "limit": 1000, "text": "0 of 1,000 API calls used"}
    assert "0 are used; 900 more API calls requested." in d.offer["reason"]
    assert count(db, UsageCounter) == 0


@needs_offers
def test_repeated_nudges_reuse_one_offer_stating_the_latest_usage(db, clock):
    account(db, clock, tier="starter")
    first = run(db, clock, service.consume, "acme", "projects", 8)
    assert first.nudge and first.offer["usage"]["text"] == "8 of 10 projects used"
    clock.advance(seconds=1)
    second = run(db, clock, service.consume, "acme", "projects", 1)
    assert second.offer["id"] == first.offer["id"] and count(db, Offer) == 1
    assert second.message == "9 of 10 projects used."
    assert second.offer["usage"]["text"] == "9 of 10 projects used"


@needs_offers
def test_a_limit_set_for_the_account_is_stated_and_no_upgrade_is_sold(db, clock):
    """The override replaces what any plan grants, so Starter's 10 projects would not apply:
    selling it would charge for nothing."""
    account(db, clock)  # free: 3 projects
    with db.session() as s:
        add_override(s, "acme", "limit", feature="projects", limit=5, now=clock.now())
        set_usage(s, "acme", "projects", 5, now=clock.now())
    d = run(db, clock, service.check, "acme", "projects", 1)
    assert (d.allowed, d.reason, d.limit, d.used) == (False, "limit_reached", 5, 5)
    assert d.offer is None


def test_consume_below_the_nudge_threshold_does_not_nudge(db, clock):
    account(db, clock, tier="starter")
    assert not run(db, clock, service.consume, "acme", "projects", 7).nudge
    d = run(db, clock, service.consume, "acme", "projects", 1)
    assert d.nudge and d.message == "8 of 10 projects used."


def test_overage_is_allowed_with_a_nudge_then_the_hard_cap_holds(db, clock):
    account(db, clock, tier="pro")  # 100,000 API calls + 5,000 overage
    assert run(db, clock, service.consume, "acme", "api_calls", 100_000).allowed
    d = run(db, clock, service.consume, "acme", "api_calls", 4_999)
    assert (d.allowed, d.nudge, d.used, d.remaining) == (True, True, 104_999, 0)
    assert run(db, clock, service.consume, "acme", "api_calls", 1).allowed
    denied = run(db, clock, service.consume, "acme", "api_calls", 1)
    assert (denied.allowed, denied.reason, denied.used) == (False, "limit_reached", 105_000)


def test_addon_raises_the_limit(db, clock):
    account(db, clock, tier="starter")
    with db.session() as s:
        add_addon(s, "acme", "seat_pack", now=clock.now())
    assert run(db, clock, service.consume, "acme", "seats", 10).allowed
    assert not run(db, clock, service.consume, "acme", "seats", 1).allowed


def test_limit_override_applies_until_it_expires(db, clock):
    account(db, clock)
    with db.session() as s:
        add_override(
            s, "acme", "limit", feature="projects", limit=5, now=clock.now(),
            expires_at=clock.now() + timedelta(days=1),
        )  # fmt: skip
    assert run(db, clock, service.consume, "acme", "projects", 5).allowed
    clock.advance(days=1)
    d = run(db, clock, service.check, "acme", "projects")
    assert (d.allowed, d.limit, d.used) == (False, 3, 5)


def test_unlimited_feature_always_counts(db, clock):
    account(db, clock, tier="business")
    d = run(db, clock, service.consume, "acme", "projects", 10**12)
    assert (d.allowed, d.limit, d.remaining, d.nudge) == (True, None, None, False)
    assert run(db, clock, service.consume, "acme", "projects", 1).used == 10**12 + 1


# ---- periods and resets -------------------------------------------------------------------


def test_monthly_counter_resets_at_the_calendar_month_boundary(db, clock):
    clock.set(datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC))
    account(db, clock)
    assert run(db, clock, service.consume, "acme", "api_calls", 1000).allowed
    assert not run(db, clock, service.consume, "acme", "api_calls", 1).allowed
    clock.advance(seconds=1)
    d = run(db, clock, service.consume, "acme", "api_calls", 1)
    assert d.allowed and d.used == 1


def test_daily_counter_resets_at_midnight_utc(db, clock):
    def add_daily(doc):
        doc["features"]["exports"] = {"name": "Exports", "type": "counter", "resets": "day"}
        doc["tiers"][0]["features"]["exports"] = 2

    publish_variant(db, clock, add_daily)
    clock.set(datetime(2026, 11, 15, 23, 0, tzinfo=UTC))
    account(db, clock)
    assert run(db, clock, service.consume, "acme", "exports", 2).allowed
    assert not run(db, clock, service.consume, "acme", "exports", 1).allowed
    clock.advance(hours=1)
    assert run(db, clock, service.consume, "acme", "exports", 1).used == 1


def test_billing_period_counter_resets_at_the_account_anchor(db, clock):
    start = datetime(2026, 11, 10, 8, tzinfo=UTC)
    account(db, clock, tier="starter", period_start=start)
    assert run(db, clock, service.consume, "acme", "automation_runs", 1000).allowed
    assert not run(db, clock, service.consume, "acme", "automation_runs", 1).allowed
    clock.set(datetime(2026, 12, 10, 7, 59, tzinfo=UTC))
    assert not run(db, clock, service.consume, "acme", "automation_runs", 1).allowed
    clock.set(datetime(2026, 12, 10, 8, tzinfo=UTC))  # the next period starts
    assert run(db, clock, service.consume, "acme", "automation_runs", 1).used == 1


def test_billing_period_rolls_forward_when_no_renewal_was_recorded(db, clock):
    start = datetime(2026, 8, 31, tzinfo=UTC)
    account(
        db, clock, tier="starter", period_start=start, period_end=datetime(2026, 9, 30, tzinfo=UTC)
    )
    body = run(db, clock, service.entitlements, "acme")  # 2026-11-15: Oct 31 -> Nov 30
    assert body["features"]["automation_runs"]["resets_at"] == datetime(2026, 11, 30, tzinfo=UTC)


def test_gauges_never_reset(db, clock):
    account(db, clock)
    run(db, clock, service.consume, "acme", "projects", 3)
    clock.advance(days=400)
    assert not run(db, clock, service.consume, "acme", "projects", 1).allowed


# ---- subscription status ------------------------------------------------------------------


def test_past_due_keeps_the_tier_during_the_grace_period_then_falls_to_free(db, clock):
    account(db, clock, tier="pro", status="past_due", past_due_since=clock.now())
    assert run(db, clock, service.check, "acme", "projects", 50).allowed
    clock.advance(days=7)
    d = run(db, clock, service.check, "acme", "projects", 4)
    assert (d.allowed, d.limit) == (False, 3)
    assert run(db, clock, service.entitlements, "acme")["fallback_reason"] == (
        "past_due_grace_expired"
    )


def test_grace_days_come_from_the_settings(db, clock):
    account(db, clock, tier="pro", status="past_due", past_due_since=clock.now())
    clock.advance(days=8)
    longer = service.GateSettings(past_due_grace_days=10)
    with db.session() as s:
        assert service.check(s, clock, "acme", "audit_log", settings=longer).allowed


def test_a_trial_billing_has_not_converted_falls_to_free_a_day_after_its_end(db, clock):
    """Billing turns a trial into its first paid period at its end (manual billing: the daily
    `tiergate billing renew`): until a day after the end the tier stays, then Free."""
    account(db, clock, tier="pro", status="trialing", trial_end=clock.now())
    clock.advance(hours=23)
    assert run(db, clock, service.check, "acme", "audit_log").allowed
    clock.advance(hours=1)
    assert run(db, clock, service.check, "acme", "audit_log").reason == "feature_not_in_tier"


def test_legacy_hidden_tier_pinned_to_an_old_version_still_gates(db, clock, demo_catalog):
    account(db, clock, tier="team_legacy", catalog_version=demo_catalog.version)
    newer = publish_variant(
        db, clock, lambda doc: doc.update(tiers=[t for t in doc["tiers"] if not t["hidden"]])
    )
    assert newer > demo_catalog.version
    d = run(db, clock, service.consume, "acme", "projects", 20)
    assert (d.allowed, d.limit) == (True, 20)
    body = run(db, clock, service.entitlements, "acme")
    assert (body["tier"]["id"], body["catalog_version"]) == ("team_legacy", demo_catalog.version)


def test_a_feature_newer_than_the_pinned_catalog_is_not_in_the_tier(db, clock):
    account(db, clock, tier="pro")

    def add_feature(doc):
        doc["features"]["webhooks"] = {"name": "Webhooks", "type": "boolean"}
        doc["tiers"][2]["features"]["webhooks"] = True

    publish_variant(db, clock, add_feature)
    assert run(db, clock, service.check, "acme", "webhooks").reason == "feature_not_in_tier"


@needs_offers
def test_without_a_free_tier_an_account_without_subscription_has_no_access(db, clock):
    publish_variant(db, clock, lambda doc: doc.update(tiers=doc["tiers"][1:]))
    account(db, clock)
    d = run(db, clock, service.check, "acme", "projects")
    assert (d.allowed, d.reason) == (False, "no_access")
    assert d.offer is not None and d.offer["from"]["tier"] is None
    assert d.offer["to"]["tier"] == "starter"
    assert "no plan" in d.message
    assert not run(db, clock, service.consume, "acme", "projects", 1).allowed
    assert run(db, clock, service.entitlements, "acme")["tier"] is None
    assert count(db, UsageCounter) == 0


@needs_offers
def test_a_feature_denied_for_lack_of_a_plan_comes_with_the_cheapest_plan_that_includes_it(
    db, clock
):
    """A catalog without a free tier: an account with no plan is denied PDF export, and the
    answer offers Starter, the cheapest plan that includes it, so the host app has a page to
    send the customer to."""
    publish_variant(db, clock, lambda doc: doc.update(tiers=doc["tiers"][1:]))
    account(db, clock)
    d = run(db, clock, service.check, "acme", "pdf_export")
    assert (d.allowed, d.reason) == (False, "no_access")
    assert d.offer is not None
    assert (d.offer["from"]["tier"], d.offer["to"]["tier"]) == (None, "starter")
    assert d.offer["accept_url"].endswith("/offers/" + d.offer["id"])


@needs_offers
def test_usage_refused_for_lack_of_a_plan_comes_with_the_cheapest_plan_that_allows_it(db, clock):
    """A catalog without a free tier: an account with no plan cannot create a project (the
    402 of POST /v1/usage), and the answer offers Starter with its 10 projects."""
    publish_variant(db, clock, lambda doc: doc.update(tiers=doc["tiers"][1:]))
    account(db, clock)
    d = run(db, clock, service.consume, "acme", "projects", 1)
    assert (d.allowed, d.reason) == (False, "no_access")
    assert d.offer is not None
    assert (d.offer["to"]["tier"], d.offer["to"]["limit"]) == ("starter", 10)
    assert count(db, UsageCounter) == 0


def test_no_published_catalog_is_a_clear_error(app, clock):
    with get_db(app).session() as s:
        make_account(s, "acme", now=clock.now())
    with pytest.raises(NoCatalog, match="No catalog has been published"):
        run(get_db(app), clock, service.check, "acme", "projects")


# ---- gauges -------------------------------------------------------------------------------


def test_gauge_set_and_release_never_go_below_zero(db, clock):
    account(db, clock)
    assert run(db, clock, service.set_gauge, "acme", "projects", 2).used == 2
    denied = run(db, clock, service.set_gauge, "acme", "projects", 4)
    assert (denied.allowed, denied.reason, denied.used) == (False, "limit_reached", 2)
    assert run(db, clock, service.release, "acme", "projects", 5).used == 0
    assert run(db, clock, service.set_gauge, "acme", "projects", 0).used == 0


def test_gauge_above_a_new_lower_limit_can_only_go_down(db, clock):
    account(db, clock)
    with db.session() as s:
        set_usage(s, "acme", "projects", 8, now=clock.now())  # e.g. after a downgrade
    assert not run(db, clock, service.consume, "acme", "projects", 1).allowed
    assert run(db, clock, service.set_gauge, "acme", "projects", 6).used == 6
    assert not run(db, clock, service.set_gauge, "acme", "projects", 7).allowed
    assert run(db, clock, service.release, "acme", "projects", 4).remaining == 1


def test_release_of_a_counter_gives_back_units_of_the_current_period(db, clock):
    account(db, clock)
    with db.session() as s:
        set_usage(
            s, "acme", "api_calls", 10, now=clock.now(), period_start=month_start(clock.now())
        )
    assert run(db, clock, service.release, "acme", "api_calls", 4).used == 6


# ---- idempotency --------------------------------------------------------------------------


def test_idempotent_retry_returns_the_first_answer_and_counts_once(db, clock):
    account(db, clock)
    first = run(db, clock, service.consume, "acme", "api_calls", 5, "req-1")
    again = run(db, clock, service.consume, "acme", "api_calls", 5, "req-1")
    assert first == again
    assert run(db, clock, service.check, "acme", "api_calls").used == 5
    assert count(db, UsageRequest) == 1


@pytest.mark.parametrize(
    ("tier", "feature", "used", "quantity"),
    [
        (None, "api_calls", 0, 5),  # plain answer
        (None, "api_calls", 0, 799),  # one below the nudge (80 % of 1,000)
        (None, "api_calls", 0, 800),  # at the nudge: the answer carries an offer
        (None, "api_calls", 990, 10),  # exactly at the limit
        (None, "api_calls", 995, 10),  # denied
        ("pro", "api_calls", 99_990, 20),  # into the overage allowance: a nudge
        ("business", "projects", 7, 3),  # unlimited
    ],
)
def test_the_stored_answer_of_a_keyed_consume_is_the_answer_given(
    db, clock, tier, feature, used, quantity
):
    # On PostgreSQL a plain answer is written by the counting statement itself, and any other
    # by the service: both must store exactly what the caller got, for the retry to replay.
    account(db, clock, tier=tier)
    if used:
        with db.session() as s:
            set_usage(
                s, "acme", feature, used, now=clock.now(), period_start=month_start(clock.now())
            )
    first = run(db, clock, service.consume, "acme", feature, quantity, "req-1")
    with db.session() as s:
        stored = s.execute(select(UsageRequest.status_code, UsageRequest.response)).one()
    assert stored.status_code == (200 if first.allowed else 402)
    assert stored.response == first.to_json()
    assert run(db, clock, service.consume, "acme", feature, quantity, "req-1") == first


def test_a_crash_after_the_count_is_answered_by_the_retry_without_counting_again(
    db, clock, monkeypatch
):
    account(db, clock)

    def crash(*args, **kwargs):
        raise RuntimeError("the worker died while building the answer")

    monkeypatch.setattr(service, "_allow", crash)
    with pytest.raises(RuntimeError):
        run(db, clock, service.consume, "acme", "api_calls", 5, "req-1")
    monkeypatch.undo()
    # The count was committed before the answer was built: it stands, and is not repeated.
    assert run(db, clock, service.check, "acme", "api_calls").used == 5
    again = run(db, clock, service.consume, "acme", "api_calls", 5, "req-1")
    assert again.allowed and again.used == 5
    assert run(db, clock, service.consume, "acme", "api_calls", 5, "req-1") == again
    assert run(db, clock, service.check, "acme", "api_calls").used == 5
    assert count(db, UsageRequest) == 1


def test_a_crash_after_a_denial_is_answered_by_the_retry_as_a_denial(db, clock, monkeypatch):
    account(db, clock)
    with db.session() as s:
        set_usage(s, "acme", "projects", 3, now=clock.now())

    def crash(*args, **kwargs):
        raise RuntimeError("the worker died while building the answer")

    monkeypatch.setattr(service, "_deny", crash)
    with pytest.raises(RuntimeError):
        run(db, clock, service.consume, "acme", "projects", 1, "create-4th")
    monkeypatch.undo()
    again = run(db, clock, service.consume, "acme", "projects", 1, "create-4th")
    assert not again.allowed and again.reason == "limit_reached"
    assert run(db, clock, service.check, "acme", "projects").used == 3


def test_idempotent_retry_of_a_denial_replays_the_denial(db, clock):
    account(db, clock)
    with db.session() as s:
        set_usage(s, "acme", "projects", 3, now=clock.now())
    first = run(db, clock, service.consume, "acme", "projects", 1, "create-4th")
    run(db, clock, service.release, "acme", "projects", 3)
    again = run(db, clock, service.consume, "acme", "projects", 1, "create-4th")
    assert not again.allowed and again == first
    assert run(db, clock, service.check, "acme", "projects").used == 0


def test_the_same_key_on_another_account_is_another_request(db, clock):
    account(db, clock)
    account(db, clock, "other")
    run(db, clock, service.consume, "acme", "api_calls", 5, "req-1")
    assert run(db, clock, service.consume, "other", "api_calls", 5, "req-1").used == 5


def test_idempotency_key_reused_for_another_request_is_a_conflict(db, clock):
    account(db, clock)
    run(db, clock, service.consume, "acme", "api_calls", 5, "req-1")
    with pytest.raises(Conflict, match="idempotency key 'req-1' reused with a different request"):
        run(db, clock, service.consume, "acme", "api_calls", 6, "req-1")
    with pytest.raises(Conflict, match="reused with a different request"):
        run(db, clock, service.consume, "acme", "automation_runs", 5, "req-1")
    assert run(db, clock, service.check, "acme", "api_calls").used == 5


@pytest.mark.parametrize("key", ["", "k" * 256, 42])
def test_bad_idempotency_key_is_refused_and_changes_nothing(db, clock, key):
    account(db, clock)
    with pytest.raises(InvalidRequest, match="idempotency_key must be a string of 1 to 255"):
        run(db, clock, service.consume, "acme", "api_calls", 1, key)
    assert count(db, UsageCounter) == count(db, UsageRequest) == 0


# ---- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("feature", "quantity", "error", "message"),
    [
        ("projects", 0, InvalidRequest, "quantity must be between 1 and 1,000,000,000,000, not 0"),
        ("projects", -1, InvalidRequest, "quantity must be between 1"),
        ("projects", 10**12 + 1, InvalidRequest, "quantity must be between 1"),
        ("projects", True, InvalidRequest, "quantity must be a whole number, not True"),
        ("projects", 1.5, InvalidRequest, "whole number"),
        ("projects", "3", InvalidRequest, "whole number"),
        ("sso", 1, InvalidRequest, "'sso' is a boolean feature: use /v1/check"),
        ("projets", 1, NotFound, "did you mean 'projects'"),
        (["projects"], 1, InvalidRequest, "feature must be a string"),
    ],
)
def test_bad_consume_input_is_refused_and_changes_nothing(
    db, clock, feature, quantity, error, message
):
    account(db, clock)
    with pytest.raises(error, match=message):
        run(db, clock, service.consume, "acme", feature, quantity, "k")
    assert count(db, UsageCounter) == count(db, UsageRequest) == 0


@pytest.mark.parametrize(
    ("call", "args", "message"),
    [
        (service.set_gauge, ("api_calls", 5), "'api_calls' is a counter feature: only gauges"),
        (service.set_gauge, ("projects", -1), "value must be between 0"),
        (service.set_gauge, ("projects", None), "value must be a whole number"),
        (service.release, ("sso", 1), "'sso' is a boolean feature: there is nothing to release"),
        (service.release, ("projects", 0), "quantity must be between 1"),
        (service.check, ("projects", 0), "quantity must be between 1"),
    ],
)
def test_bad_gauge_and_check_input_is_refused_and_changes_nothing(db, clock, call, args, message):
    account(db, clock)
    with pytest.raises(InvalidRequest, match=message):
        run(db, clock, call, "acme", *args)
    assert count(db, UsageCounter) == 0


@pytest.mark.parametrize("call", [service.check, service.consume, service.set_gauge])
def test_unknown_account_is_not_found_with_how_to_create_it(db, clock, call):
    with pytest.raises(
        NotFound, match="Account 'ghost' does not exist: create it with PUT /v1/accounts/ghost"
    ):
        run(db, clock, call, "ghost", "projects", 1)
    assert count(db, UsageCounter) == 0


# ---- entitlements -------------------------------------------------------------------------


def test_entitlements_lists_every_feature_with_usage_and_reset(db, clock, demo_catalog):
    account(db, clock, tier="starter")
    with db.session() as s:
        set_usage(s, "acme", "projects", 4, now=clock.now())
    body = run(db, clock, service.entitlements, "acme")
    assert body["tier"] == {"id": "starter", "name": "Starter"}
    assert (body["status"], body["interval"], body["currency"]) == ("active", "month", "usd")
    assert body["catalog_version"] == demo_catalog.version
    assert set(body["features"]) == set(demo_catalog.catalog.features)
    assert body["features"]["projects"] == {
        "type": "gauge",
        "enabled": True,
        "limit": 10,
        "used": 4,
        "remaining": 6,
        "resets_at": None,
        "nudge_at": 8,
        "source": "tier",
    }
    assert body["features"]["api_calls"]["resets_at"] == datetime(2026, 12, 1, tzinfo=UTC)
    assert body["features"]["sso"] == {
        "type": "boolean",
        "enabled": False,
        "limit": None,
        "used": None,
        "remaining": None,
        "resets_at": None,
        "nudge_at": None,
        "source": "tier",
    }


def test_entitlements_of_a_free_account(db, clock):
    account(db, clock)
    body = run(db, clock, service.entitlements, "acme")
    assert (body["tier"]["id"], body["status"], body["interval"]) == ("free", "free", None)
    assert body["current_period_end"] is None


# ---- query budget -------------------------------------------------------------------------


def test_the_hot_path_stays_within_its_statement_budget(db, clock):
    account(db, clock, tier="business")
    run(db, clock, service.check, "acme", "sso")  # warm the catalog cache
    boolean = statements(db, lambda: run(db, clock, service.check, "acme", "sso"))
    consume = statements(db, lambda: run(db, clock, service.consume, "acme", "projects", 1))
    keyed = statements(db, lambda: run(db, clock, service.consume, "acme", "projects", 1, "k"))
    body = statements(db, lambda: run(db, clock, service.entitlements, "acme"))
    assert len(boolean) <= 4, boolean  # today: 1 (account, subscription, catalog version)
    assert len(consume) <= 5, consume  # today: 2 (+ the atomic upsert)
    assert len(keyed) <= 5, keyed  # today: 4 (+ claim the key, store the answer)
    assert len(body) <= 3, body  # today: 2 (+ every counter in one query)


def test_addons_and_overrides_are_read_only_when_the_account_has_them(db, clock):
    account(db, clock, tier="starter")
    run(db, clock, service.check, "acme", "pdf_export")
    plain = statements(db, lambda: run(db, clock, service.check, "acme", "pdf_export"))
    with db.session() as s:
        add_addon(s, "acme", "seat_pack", now=clock.now())
        add_override(s, "acme", "feature", feature="sso", now=clock.now())
    extra = statements(db, lambda: run(db, clock, service.check, "acme", "sso"))
    assert run(db, clock, service.check, "acme", "sso").allowed
    assert len(extra) == len(plain) + 2


@needs_offers
def test_a_repeated_denial_does_not_write_an_offer_each_time(db, clock):
    account(db, clock)
    with db.session() as s:
        set_usage(s, "acme", "projects", 3, now=clock.now())
    first = run(db, clock, service.check, "acme", "projects")
    again = run(db, clock, service.check, "acme", "projects")
    assert first.offer["id"] == again.offer["id"] and count(db, Offer) == 1


# ---- a limit set for the account ------------------------------------------------------------


@pytest.mark.parametrize(
    ("used", "asked", "message"),
    [
        (5, 1, "5 of 5 projects used: your account's limit is reached."),
        (
            4,
            2,
            "4 of 5 projects used: 1 project left within the limit set for your account, "
            "2 asked for.",
        ),
    ],
)
def test_a_denial_by_the_accounts_own_limit_does_not_blame_the_plan(
    db, clock, used, asked, message
):
    # Free grants 3 projects; the account's override 5. An upgrade would not lift it.
    account(db, clock)
    with db.session() as s:
        add_override(s, "acme", "limit", feature="projects", limit=5, now=clock.now())
        set_usage(s, "acme", "projects", used, now=clock.now())
    decision = run(db, clock, service.check, "acme", "projects", asked)
    assert (decision.allowed, decision.offer, decision.message) == (False, None, message)


def test_a_feature_switched_off_for_the_account_says_so(db, clock):
    account(db, clock, tier="pro")
    with db.session() as s:
        add_override(s, "acme", "limit", feature="projects", limit=0, now=clock.now())
    decision = run(db, clock, service.check, "acme", "projects")
    assert not decision.allowed
    assert decision.message == "Projects is switched off for your account."
