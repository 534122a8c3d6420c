"""A retry that arrives while the first call is still finishing its answer replays that answer
(the host app's client timed out and retried the same idempotency key). The retry waits on the
claim the first request holds (FOR UPDATE) instead of taking it for dead after 0.15 s and
building a second answer with a second offer.

PostgreSQL only (on SQLite the retry waits on the first request's write lock)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from billing import portal
from gating.models import Offer
from tests.factories import make_account, month_start, set_usage
from tiergate.db import get_db

pytest_plugins = ["tests.gating.api_fixtures"]


@pytest.fixture
def gate_key(make_api_key, demo_catalog):
    return make_api_key("gate")


@pytest.mark.parametrize(
    ("feature", "used", "quantity"),
    [("api_calls", 0, 800), ("api_calls", 995, 10)],  # a nudge with an offer; a denial
    ids=["nudge", "denial"],
)
def test_a_retry_during_a_slow_first_answer_replays_the_first_answer(
    postgres_url, app, clock, gate_key, monkeypatch, feature, used, quantity
):
    now = clock.now()
    with get_db(app).session() as s:
        make_account(s, "acme", now=now)
        if used:
            set_usage(s, "acme", feature, used, now=now, period_start=month_start(now))
    real = portal.offer_link
    first_inside = threading.Event()
    calls = []

    def slow_offer_link(*args, **kwargs):  # the first request is slow after its offer is made
        calls.append(1)
        if len(calls) == 1:
            first_inside.set()
            time.sleep(1.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(portal, "offer_link", slow_offer_link)
    body = {"account_id": "acme", "feature": feature, "quantity": quantity, "idempotency_key": "k"}
    headers = {"Authorization": f"Bearer {gate_key}"}
    answers = {}

    def first():
        answers["first"] = app.test_client().post("/v1/usage", json=body, headers=headers)

    thread = threading.Thread(target=first)
    thread.start()
    assert first_inside.wait(timeout=10)
    answers["retry"] = app.test_client().post("/v1/usage", json=body, headers=headers)
    thread.join(timeout=30)
    later = app.test_client().post("/v1/usage", json=body, headers=headers)

    first_answer, retry = answers["first"], answers["retry"]
    offer_ids = {
        name: (r.get_json() or {}).get("offer", {}) and r.get_json()["offer"]["id"]
        for name, r in (("first", first_answer), ("retry", retry), ("later", later))
    }
    with get_db(app).sessionmaker() as s:
        offers_made = s.scalar(select(func.count()).select_from(Offer))
    # A retry may be told 409 "still being processed", but never given another answer.
    if retry.status_code != 409:
        assert offer_ids["retry"] == offer_ids["first"], offer_ids
        assert retry.get_data() == first_answer.get_data()
    assert later.get_data() == first_answer.get_data(), offer_ids
    assert offers_made == 1
