"""Pooled PostgreSQL connections: one that died while idle is replaced before use, and one that
dies mid-use fails that single request with a 503 the client can retry, never a 500."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, event, text
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


GATE_CALLS = [
    ("/v1/check", {}),  # the counter read
    ("/v1/usage", {"quantity": 1}),  # the count
    ("/v1/usage", {"quantity": 1, "idempotency_key": "k"}),  # the count with its key
]


@pytest.fixture
def gate(make_api_client, api_client, demo_catalog):
    assert api_client.put("/v1/accounts/acme", json={"name": "Acme"}).status_code == 201
    client = make_api_client("gate")
    check = {"account_id": "acme", "feature": "projects"}
    assert client.post("/v1/check", json=check).status_code == 200  # key and account cached
    return client


@pytest.mark.parametrize(("path", "extra"), GATE_CALLS)
def test_a_database_refusing_connections_answers_503(app, postgres_url, gate, path, extra) -> None:
    """The database restarts, or is at its connection limit, while the gate's caches are warm:
    the counter read or the count is then the request's first use of the database, and its
    refused connection is the retryable 503, not a 500."""
    import psycopg

    body = {"account_id": "acme", "feature": "projects", **extra}
    engine = get_db(app).engine
    engine.dispose()  # the next request must connect anew

    def refuse(*_args):
        raise psycopg.OperationalError("connection refused: the server is restarting")

    event.listen(engine, "do_connect", refuse)
    try:
        failed = gate.post(path, json=body)
    finally:
        event.remove(engine, "do_connect", refuse)
    assert failed.status_code == 503, failed.get_json()
    assert failed.get_json()["error"]["code"] == "database_unavailable"
    assert failed.headers["Retry-After"] == "1"
    assert gate.post(path, json=body).status_code == 200


@pytest.mark.parametrize(("path", "extra"), GATE_CALLS)
def test_after_a_database_restart_one_request_fails_not_one_per_pooled_connection(
    app, postgres_url, gate, monkeypatch, path, extra
) -> None:
    """A restart kills every pooled connection: the first gate call that meets a dead one
    fails (503), and the pool then replaces all those opened before it, so the next call
    succeeds instead of failing once more for each connection the pool held."""
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 3600.0)  # none idle long enough to be pinged
    body = {"account_id": "acme", "feature": "projects", **extra}
    engine = get_db(app).engine
    engine.dispose()
    held = [engine.connect() for _ in range(3)]  # the pool holds three connections
    pids = [conn.execute(text("SELECT pg_backend_pid()")).scalar_one() for conn in held]
    for conn in held:
        conn.close()
    for pid in pids:
        _terminate(postgres_url, pid)

    assert gate.post(path, json=body).status_code == 503
    second = gate.post(path, json=body)
    assert second.status_code == 200, second.get_json()
