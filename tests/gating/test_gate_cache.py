"""The gate's per-process cache of account state (gating/cache.py): what it keeps, for how long,
and that a change committed through this process is seen at once while one committed elsewhere
is seen within the time to live."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select

from gating import offers, service
from gating.cache import AccountState, GateCache
from gating.entitlements import OverrideView, SubscriptionView
from gating.models import Offer, Override, OverrideKind
from tests.conftest import DEMO_CATALOG
from tiergate import create_app
from tiergate.config import ConfigError
from tiergate.db import Database, get_db
from tiers import store
from tiers.loader import load_catalog_file
from tiers.model import Catalog

pytest_plugins = ["tests.gating.api_fixtures"]


class Ticker:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _state(account_id: str = "acme", version: int = 1) -> AccountState:
    return AccountState(account_id, version, None, (), ())


# ---- the cache itself ---------------------------------------------------------------------


def test_an_entry_lives_for_the_time_to_live_and_no_longer() -> None:
    ticker = Ticker()
    cache = GateCache(2.0, monotonic=ticker)
    cache.put(_state(), cache.generation)
    ticker.now += 1.9
    assert cache.get("acme") == _state()
    ticker.now += 0.2
    assert cache.get("acme") is None


def test_a_load_that_raced_with_a_commit_is_not_kept() -> None:
    cache = GateCache(5.0)
    generation = cache.generation  # a request starts loading ...
    cache.invalidate({"other"})  # ... another commits a change meanwhile
    cache.put(_state(), generation)
    assert cache.get("acme") is None
    cache.put(_state(), cache.generation)
    assert cache.get("acme") == _state()


def test_invalidating_drops_only_the_named_accounts_or_all() -> None:
    cache = GateCache(5.0)
    for account_id in ("a", "b", "c"):
        cache.put(_state(account_id), cache.generation)
    cache.invalidate({"a"})
    assert cache.get("a") is None and cache.get("b") is not None
    cache.invalidate()
    assert cache.get("b") is None and cache.get("c") is None


def test_a_time_to_live_of_zero_keeps_nothing() -> None:
    cache = GateCache(0)
    cache.put(_state(), cache.generation)
    assert not cache.enabled and cache.get("acme") is None


@pytest.mark.parametrize("value", [-1, 61, "soon", True, None])
def test_an_invalid_cache_setting_fails_at_start_with_one_line(value) -> None:
    with pytest.raises(ConfigError, match="TIERGATE_GATE_CACHE_SECONDS must be a number"):
        create_app({"TESTING": True, "DATABASE_URL": "sqlite://", "GATE_CACHE_SECONDS": value})


# ---- through the API ----------------------------------------------------------------------


@pytest.fixture
def ticker(app) -> Ticker:
    ticker = Ticker()
    cache: GateCache = app.extensions["tiergate.gate_cache"]
    cache._monotonic = ticker
    return ticker


@pytest.fixture
def gate(make_api_client, api_client, demo_catalog):
    assert api_client.put("/v1/accounts/acme", json={"name": "Acme"}).status_code == 201
    return make_api_client("gate")


def _sso(gate) -> bool:
    body = gate.post("/v1/check", json={"account_id": "acme", "feature": "sso"}).get_json()
    return body["allowed"]


def _grant_sso_elsewhere(database_url: str, clock) -> None:
    """Another process (another gunicorn instance, a CLI run) commits an override."""
    other = Database(database_url)
    try:
        with other.session() as s:
            s.add(
                Override(
                    account_id="acme",
                    kind=OverrideKind.FEATURE,
                    feature_id="sso",
                    reason="granted by another process",
                    created_at=clock.now(),
                )
            )
    finally:
        other.engine.dispose()


def test_a_change_made_through_this_process_applies_at_once(gate, api_client, ticker) -> None:
    assert _sso(gate) is False  # cached now
    created = api_client.post(
        "/v1/accounts/acme/overrides",
        json={"kind": "feature", "feature": "sso", "reason": "pilot"},
    )
    assert created.status_code == 201
    assert _sso(gate) is True  # no time has passed: the commit dropped the entry


def test_a_change_made_by_another_process_applies_within_the_time_to_live(
    gate, database_url, clock, ticker
) -> None:
    assert _sso(gate) is False  # (its offer stored: a local change, the entry dropped)
    clock.advance(seconds=1)
    assert _sso(gate) is False  # cached now
    _grant_sso_elsewhere(database_url, clock)
    ticker.now += 0.5
    assert _sso(gate) is False  # still the state loaded half a second ago
    ticker.now += 0.6
    assert _sso(gate) is True


def test_with_the_cache_off_every_check_reads_the_database(
    make_api_client, api_client, demo_catalog, database_url, clock, app
) -> None:
    app.extensions["tiergate.gate_cache"].ttl = 0
    assert api_client.put("/v1/accounts/acme", json={"name": "Acme"}).status_code == 201
    gate = make_api_client("gate")
    assert _sso(gate) is False
    _grant_sso_elsewhere(database_url, clock)
    assert _sso(gate) is True


def test_usage_is_never_cached(gate, ticker) -> None:
    body = {"account_id": "acme", "feature": "projects", "quantity": 1}
    assert gate.post("/v1/check", json=body).get_json()["used"] == 0
    assert gate.post("/v1/usage", json=body).status_code == 200
    assert gate.post("/v1/check", json=body).get_json()["used"] == 1


def test_an_override_expiring_takes_effect_on_time_even_when_cached(
    gate, api_client, clock, ticker
) -> None:
    expires = (clock.now() + timedelta(minutes=5)).isoformat()
    created = api_client.post(
        "/v1/accounts/acme/overrides",
        json={"kind": "feature", "feature": "sso", "reason": "pilot", "expires_at": expires},
    )
    assert created.status_code == 201, created.get_json()
    assert _sso(gate) is True
    clock.advance(minutes=6)  # entitlements are resolved at the clock's time
    assert _sso(gate) is False


def test_a_new_catalog_version_published_here_applies_at_once(gate, app, clock, ticker) -> None:
    body = {"account_id": "acme", "feature": "projects"}
    assert gate.post("/v1/check", json=body).get_json()["limit"] == 3
    catalog, _ = load_catalog_file(DEMO_CATALOG)
    document = catalog.to_document()
    document["tiers"][0]["features"]["projects"] = 5
    with app.extensions["tiergate.db"].session() as s:
        store.publish(
            s,
            Catalog.from_document(document),
            source="free tier: 5 projects",
            author="test",
            note="more projects on free",
            now=clock.now(),
        )
    assert gate.post("/v1/check", json=body).get_json()["limit"] == 5


# ---- reusing a resolution while nothing time-dependent changes ----------------------------

T0 = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)


def _sub(**kw) -> SubscriptionView:
    values = {
        "tier_id": "pro",
        "interval": "month",
        "currency": "usd",
        "status": "active",
        "catalog_version": 1,
        "period_start": T0 - timedelta(days=14),
        "period_end": T0 + timedelta(days=16),
    }
    return SubscriptionView(**(values | kw))


@pytest.mark.parametrize(
    ("sub", "overrides", "until"),
    [
        (None, (), datetime.max.replace(tzinfo=UTC)),
        (_sub(), (), T0 + timedelta(days=16)),  # the period end
        (  # a trial past its end keeps its tier for a day while billing converts it
            _sub(status="trialing", trial_end=T0 + timedelta(days=2)),
            (),
            T0 + timedelta(days=3),
        ),
        (  # past due since yesterday, 7 grace days
            _sub(status="past_due", past_due_since=T0 - timedelta(days=1)),
            (),
            T0 + timedelta(days=6),
        ),
        (
            None,
            (OverrideView("feature", "sso", None, None, T0 + timedelta(hours=1)),),
            T0 + timedelta(hours=1),
        ),
    ],
)
def test_the_window_a_resolution_holds_ends_at_the_next_moment_that_matters(
    sub, overrides, until
) -> None:
    state = AccountState("acme", 1, sub, (), overrides)
    since, end = state.stable_window(T0, grace_days=7)
    assert since <= T0 < end
    assert end == until


# ---- a repeated denial answered with the offer it got ---------------------------------------


def _deny_sso(gate) -> dict:
    """A denied check of sso, with its offer."""
    body = gate.post("/v1/check", json={"account_id": "acme", "feature": "sso"}).get_json()
    assert body["allowed"] is False and body["offer"] is not None, body
    return body


def _reads(app, action) -> list[str]:
    seen: list[str] = []

    def listener(conn, cursor, statement, *args):
        seen.append(statement)

    engine = app.extensions["tiergate.db"].engine
    event.listen(engine, "before_cursor_execute", listener)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    return seen


def test_a_repeated_denial_reuses_its_offer_without_reading_the_database(
    gate, app, clock, ticker
) -> None:
    first = _deny_sso(gate)
    clock.advance(seconds=1)
    second = _deny_sso(gate)  # the offer stored by the first, read and found unchanged
    answers: list[dict] = []
    assert _reads(app, lambda: answers.append(_deny_sso(gate))) == []
    assert answers[0] == second
    assert answers[0]["offer"]["id"] == first["offer"]["id"]


def test_a_dismissal_is_respected_by_the_next_denial_at_once(gate, clock, ticker) -> None:
    offer = _deny_sso(gate)["offer"]
    clock.advance(seconds=1)
    assert _deny_sso(gate)["offer"]["prompt"] is True
    dismissed = gate.post(f"/v1/offers/{offer['id']}/events", json={"type": "dismissed"})
    assert dismissed.status_code == 200, dismissed.get_json()
    again = _deny_sso(gate)["offer"]  # no time has passed: the event dropped what was kept
    assert again["prompt"] is False


def test_an_offer_shown_is_answered_with_its_new_status(gate, clock, ticker) -> None:
    offer = _deny_sso(gate)["offer"]
    clock.advance(seconds=1)
    _deny_sso(gate)
    assert gate.post(f"/v1/offers/{offer['id']}/events", json={"type": "shown"}).status_code == 200
    assert _deny_sso(gate)["offer"]["status"] == "shown"


def test_an_expired_offer_is_not_answered_again(gate, clock, ticker) -> None:
    offer = _deny_sso(gate)["offer"]
    clock.advance(seconds=1)
    _deny_sso(gate)
    expires_at = datetime.fromisoformat(offer["expires_at"])
    clock.set(expires_at + timedelta(seconds=1))  # same cached state, the quote's time is up
    again = _deny_sso(gate)["offer"]
    assert again["id"] != offer["id"]
    assert datetime.fromisoformat(again["expires_at"]) > clock.now()


def test_a_denial_after_the_time_to_live_reads_the_offer_again(
    gate, app, database_url, clock, ticker
) -> None:
    offer = _deny_sso(gate)["offer"]
    clock.advance(seconds=1)
    _deny_sso(gate)
    other = Database(database_url)  # another process dismisses it
    try:
        with other.session() as s:
            offers.record_event(s, clock, offer["id"], "dismissed")
    finally:
        other.engine.dispose()
    assert _deny_sso(gate)["offer"]["prompt"] is True  # within the second: as it was
    ticker.now += 1.1
    assert _deny_sso(gate)["offer"]["prompt"] is False


def _projects(gate, quantity: int) -> dict:
    body = {"account_id": "acme", "feature": "projects", "quantity": quantity}
    answer = gate.post("/v1/check", json=body).get_json()
    assert answer["allowed"] is False and answer["offer"] is not None, answer
    return answer


def test_an_offer_restated_for_another_request_is_restated_back(app, gate, clock, ticker) -> None:
    """Free has 3 projects: asking for 4 or for 5 is quoted by the same Starter offer, which
    states the customer's numbers of the latest ask. The stored offer (read back by the host
    app, or requoted later) always says what the last answer said."""
    first = _projects(gate, 4)["offer"]
    clock.advance(seconds=1)
    _projects(gate, 4)
    assert _projects(gate, 5)["offer"]["id"] == first["id"]  # the same offer, restated for 5
    answer = _projects(gate, 4)["offer"]
    assert answer["id"] == first["id"]
    assert "4 more projects requested" in answer["reason"]
    read = gate.get(f"/v1/offers/{first['id']}").get_json()
    assert (read["reason"], read["usage"]) == (answer["reason"], answer["usage"])
    with get_db(app).session() as s:
        assert s.get(Offer, first["id"]).quantity == 4


class _TickingClock:
    """The wall clock as the gate reads it in production: a little later on every read."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        self._now += timedelta(microseconds=1)
        return self._now


def test_a_denial_whose_request_failed_is_not_answered_with_its_unstored_offer(
    app, clock, gate
) -> None:
    """A request that created an offer and then failed (rolled back) stored nothing: the next
    identical denial gets an offer that exists, not the one that was never committed."""
    ticking = _TickingClock(clock.now())
    settings = service.GateSettings(cache=app.extensions["tiergate.gate_cache"])
    db = get_db(app)
    with db.sessionmaker() as s:
        assert service.check(s, ticking, "acme", "sso", settings=settings).offer is not None
        s.rollback()
    with db.sessionmaker() as s:
        again = service.check(s, ticking, "acme", "sso", settings=settings)
        s.commit()
        stored = s.scalars(select(Offer.id)).all()
    assert again.offer is not None and again.offer["id"] in stored
