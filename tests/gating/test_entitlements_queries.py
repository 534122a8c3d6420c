"""GET /v1/entitlements lists every feature of the newest catalog, on the path host apps
poll, without extra queries."""

from __future__ import annotations

from gating import service
from gating.cache import GateCache
from tests.factories import make_account
from tests.gating.test_service import publish_variant, statements
from tiergate.db import get_db


def test_entitlements_of_a_cached_account_read_only_its_counters(app, demo_catalog, clock):
    """With the gate's cache warm, an account's entitlements need one statement: its usage
    counters (the account state, the newest catalog and its features are cached)."""
    db = get_db(app)
    with db.session() as s:
        make_account(s, "acme", now=clock.now(), tier="starter")

    # a newer catalog with two features the account's pinned version does not have
    def edit(doc):  # type: ignore[no-untyped-def]
        for fid in ("beta_a", "beta_b"):
            doc["features"][fid] = {**doc["features"]["projects"], "name": fid}

    publish_variant(db, clock, edit)
    settings = service.GateSettings(
        past_due_grace_days=7, base_url="http://localhost", cache=GateCache(ttl=60)
    )

    def call():  # type: ignore[no-untyped-def]
        with db.session() as s:
            return service.entitlements(s, clock, "acme", settings=settings)

    body = call()  # warm
    assert "beta_a" in body["features"]
    seen = statements(db, call)
    assert len(seen) <= 1, seen
