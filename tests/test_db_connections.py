"""Pooled PostgreSQL connections: one that died while idle is replaced before use, and one that
dies mid-use fails that single request with a 503 the client can retry, never a 500."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from tiergate import db
from tiergate.db import get_db, make_engine

pytest_plugins = ["tests.gating.api_fixtures"]


def _pid(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def _terminate(url: str, pid: int) -> None:
    admin = create_engine(
        url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    finally:
        admin.dispose()


@pytest.mark.parametrize("idle_ping_seconds", [0.0, 3600.0])
def test_a_connection_that_died_while_idle_is_replaced_before_use(
    postgres_url, monkeypatch, idle_ping_seconds
) -> None:
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", idle_ping_seconds)
    engine = make_engine(postgres_url)
    try:
        pid = _pid(engine)  # the pool now holds this connection, idle
        _terminate(postgres_url, pid)
        if idle_ping_seconds:  # not idle long enough to be pinged: the use itself fails
            with pytest.raises(OperationalError):
                _pid(engine)
        assert _pid(engine) != pid  # pinged (or invalidated by the failure) and replaced
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/v1/check", {}),  # the counter read
        ("/v1/usage", {"quantity": 1}),  # the count
        ("/v1/usage", {"quantity": 1, "idempotency_key": "k"}),  # the count with its key
    ],
)
def test_a_connection_lost_mid_use_answers_503_once_then_recovers(
    app, postgres_url, make_api_client, api_client, demo_catalog, path, extra
) -> None:
    assert api_client.put("/v1/accounts/acme", json={"name": "Acme"}).status_code == 201
    gate = make_api_client("gate")
    body = {"account_id": "acme", "feature": "projects", **extra}
    assert (
        gate.post("/v1/check", json={"account_id": "acme", "feature": "projects"}).status_code
        == 200
    )
    engine = get_db(app).engine
    engine.dispose()  # one pooled connection from here on, so the next request reuses it
    _terminate(postgres_url, _pid(engine))

    failed = gate.post(path, json=body)
    assert failed.status_code == 503
    assert failed.headers["Retry-After"] == "1"
    assert failed.get_json()["error"]["code"] == "database_unavailable"
    assert "retry" in failed.get_json()["error"]["message"]

    again = gate.post(path, json=body)
    assert again.status_code == 200 and again.get_json()["allowed"] is True
    used = api_client.get("/v1/accounts/acme/entitlements").get_json()["features"]["projects"]
    assert used["used"] == (1 if path == "/v1/usage" else 0)  # the lost attempt counted nothing
