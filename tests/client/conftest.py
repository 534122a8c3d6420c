"""Fixtures for the client tests: a fake tiergate on loopback and a client pointed at it."""

from __future__ import annotations

import pytest

from tests.client.fake_tiergate import API_KEY, running_fake
from tests.client.live import live_tiergate  # noqa: F401 (fixture for test_live.py)
from tiergate_client import TiergateClient


@pytest.fixture
def fake():
    with running_fake() as fake:
        fake.accounts["acct_1"] = {"id": "acct_1"}
        yield fake


@pytest.fixture
def tg(fake):
    client = TiergateClient(fake.url, API_KEY, timeout=0.5, retries=2)
    yield client
    client.close()
