"""A LIVE tiergate for integration tests: the real app (the `app` fixture, demo catalog
published) served on a loopback port by werkzeug in a background thread, plus an API key."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gating import apikeys
from tests.client.fake_tiergate import serve
from tiergate.db import get_db


@dataclass(frozen=True)
class LiveTiergate:
    url: str
    api_key: str


@pytest.fixture
def live_tiergate(app, demo_catalog, clock):
    """tiergate serving the demo catalog; the key holds the gate and accounts scopes."""
    with get_db(app).session() as session:
        _, key = apikeys.create_key(session, clock, name="host app", scopes=["gate", "accounts"])
    with serve(app) as url:
        yield LiveTiergate(url, key)
