"""PostgreSQL, real threads over HTTP: keyed and unkeyed consumes against one limit end exactly at
it, two threads sending the same key get the same bytes and count once, and the stored answers
agree with the counter."""

from __future__ import annotations

import threading

from sqlalchemy import select

from gating.models import UsageCounter, UsageRequest
from tests.factories import make_account, month_start, set_usage
from tiergate.db import get_db

pytest_plugins = ["tests.gating.api_fixtures"]

THREADS = 8
ROUNDS = 8


def test_mixed_keyed_and_unkeyed_consumes_end_at_the_limit(
    postgres_url, app, clock, make_api_key, demo_catalog
):
    key = make_api_key("gate")
    now = clock.now()
    with get_db(app).session() as s:
        make_account(s, "acme", now=now)
        set_usage(s, "acme", "api_calls", 970, now=now, period_start=month_start(now))
    headers = {"Authorization": f"Bearer {key}"}
    out: list = []
    barrier = threading.Barrier(THREADS)

    def worker(n: int) -> None:
        client = app.test_client()
        barrier.wait()
        for i in range(ROUNDS):
            body = {"account_id": "acme", "feature": "api_calls", "quantity": 1}
            if n % 2 == 0:  # threads 0 and 2 share keys, 4 and 6 share others
                body["idempotency_key"] = f"k{n // 4}-{i}"
            r = client.post("/v1/usage", json=body, headers=headers)
            out.append((n, i, r.status_code, r.get_data(), r.get_json()))

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert {status for _, _, status, _, _ in out} <= {200, 402}
    with get_db(app).sessionmaker() as s:
        used = s.scalar(select(UsageCounter.used))
        stored = s.execute(
            select(UsageRequest.idempotency_key, UsageRequest.status_code, UsageRequest.response)
        ).all()
    assert used == 1000
    by_key: dict = {}
    for n, i, _, data, _ in out:
        if n % 2 == 0:
            by_key.setdefault(f"k{n // 4}-{i}", set()).add(data)
    assert all(len(answers) == 1 for answers in by_key.values()), by_key
    granted = [b["used"] for n, _, st, _, b in out if st == 200 and n % 2]
    granted += [r.response["used"] for r in stored if r.status_code == 200]
    assert sorted(granted) == list(range(971, 1001))
    assert {r.status_code for r in stored} <= {200, 402}
