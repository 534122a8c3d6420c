"""Fixtures for the HTTP API v1: API keys and clients that send them.

Use them from a test module with:
    pytest_plugins = ["tests.gating.api_fixtures"]
"""

from __future__ import annotations

from typing import Any

import pytest

from gating import apikeys
from tiergate.db import get_db


class ApiClient:
    """The Flask test client, sending `Authorization: Bearer <key>` on every request."""

    def __init__(self, client: Any, key: str) -> None:
        self.client = client
        self.key = key

    def open(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict | None = None,
        **kwargs: Any,
    ) -> Any:
        sent = {"Authorization": f"Bearer {self.key}", **(headers or {})}
        if json is not None:
            kwargs["json"] = json
        return self.client.open(path, method=method, headers=sent, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.open("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.open("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Any:
        return self.open("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.open("DELETE", path, **kwargs)


@pytest.fixture
def make_api_key(app, clock):
    """make_api_key("gate", "accounts", name=...) -> the full key, stored in the database."""

    def make(*scopes: str, name: str = "test key") -> str:
        with get_db(app).session() as session:
            _, raw_key = apikeys.create_key(session, clock, name=name, scopes=scopes or ("admin",))
        return raw_key

    yield make
    apikeys.clear_cache()


@pytest.fixture
def make_api_client(client, make_api_key):
    """make_api_client("gate") -> an ApiClient whose key has exactly those scopes."""

    def make(*scopes: str) -> ApiClient:
        return ApiClient(client, make_api_key(*scopes))

    return make


@pytest.fixture
def api_client(make_api_client) -> ApiClient:
    """An ApiClient with an `admin` key (every endpoint)."""
    return make_api_client("admin")
