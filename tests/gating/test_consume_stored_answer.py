"""The answer the counting statement stores for a keyed
consume is the answer the caller got, with add-ons, overrides, trials and gauges."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from gating import service
from gating.models import UsageRequest
from tests.factories import add_addon, add_override, make_account, set_usage
from tiergate.db import get_db

SETTINGS = service.GateSettings(past_due_grace_days=7, base_url="http://localhost")


@pytest.mark.parametrize(
    ("setup", "feature", "used", "quantity"),
    [
        ("addon", "seats", 3, 2),  # 5 of starter's 5 + a pack's 5 = 10: plain
        ("addon", "seats", 3, 5),  # 8 of 10: at the nudge
        ("override", "projects", 0, 5),  # an override's limit of 50
        ("override", "projects", 30, 9),  # 39 of 50: below the nudge (40)
        ("override", "projects", 30, 10),  # 40 of 50: the nudge
        ("trial", "projects", 0, 1),
        ("past_due", "projects", 0, 1),
        ("unlimited_override", "projects", 100, 1),
    ],
)
def test_a_keyed_consume_stores_and_replays_the_answer_given(
    postgres_url, app, demo_catalog, clock, setup, feature, used, quantity
) -> None:
    db = get_db(app)
    now = clock.now()
    with db.session() as s:
        kw: dict = {"tier": "starter"}
        if setup == "trial":
            kw |= {"status": "trialing", "trial_end": now + timedelta(days=3)}
        if setup == "past_due":
            kw |= {"status": "past_due", "past_due_since": now - timedelta(days=1)}
        make_account(s, "acme", now=now, **kw)
        if setup == "addon":
            add_addon(s, "acme", "seat_pack", now=now)
        if setup == "override":
            add_override(s, "acme", "limit", feature="projects", limit=50, now=now)
        if setup == "unlimited_override":
            add_override(s, "acme", "limit", feature="projects", limit=None, now=now)
        if used:
            set_usage(s, "acme", feature, used, now=now)
    with db.session() as s:
        first = service.consume(s, clock, "acme", feature, quantity, "k1", settings=SETTINGS)
    with db.session() as s:
        stored = s.execute(select(UsageRequest.status_code, UsageRequest.response)).one()
    assert stored.status_code == (200 if first.allowed else 402)
    assert stored.response == first.to_json()
    with db.session() as s:
        again = service.consume(s, clock, "acme", feature, quantity, "k1", settings=SETTINGS)
    assert again == first
