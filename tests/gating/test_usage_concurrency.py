"""Concurrency of the gate's usage counting with real threads, each with its own session.

PostgreSQL runs these under real parallelism (row locks, the unique index); SQLite serializes
writers, and must end at exactly the same numbers. The SQLite database is a private file, so
those tests run in both the SQLite and the PostgreSQL run of the suite.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import pytest

from gating import service
from tests.conftest import DEMO_CATALOG
from tests.factories import make_account
from tiergate.db import Database, get_db
from tiers import store
from tiers.loader import load_catalog_file

SETTINGS = service.GateSettings(past_due_grace_days=7, base_url="http://localhost")
THREADS = 24


@pytest.fixture(params=["postgresql", "sqlite"])
def db(request, tmp_path, clock) -> Database:
    """A database with the demo catalog published, on each backend."""
    if request.param == "postgresql":
        request.getfixturevalue("postgres_url")
        database = get_db(request.getfixturevalue("app"))
    else:
        database = Database(f"sqlite:///{tmp_path / 'concurrency.sqlite3'}")
        database.create_all()
        request.addfinalizer(database.engine.dispose)
    catalog, source = load_catalog_file(DEMO_CATALOG)
    with database.session() as s:
        store.publish(s, catalog, source=source, author="test", note="demo", now=clock.now())
    return database


def run(db: Database, clock, fn: Callable[..., Any], *args: Any) -> Any:
    with db.session() as s:  # its own session and connection, committed at the end
        return fn(s, clock, *args, settings=SETTINGS)


def hammer(threads: int, attempts: int, work: Callable[[int, int], Any]) -> list[Any]:
    """Run work(thread, attempt) from `threads` threads released at the same instant."""
    results: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(attempts):
            try:
                outcome = work(n, i)
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                errors.append(exc)
                return
            with lock:
                results.append(outcome)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors[:3]
    return results


def test_concurrent_consumers_end_at_exactly_the_limit(db, clock):
    with db.session() as s:
        make_account(s, "acme", now=clock.now())  # free: 100 automation runs per month

    def work(n: int, i: int) -> tuple[bool, int]:
        d = run(db, clock, service.consume, "acme", "automation_runs", 1)
        return d.allowed, d.used

    results = hammer(THREADS, 10, work)  # 240 attempts at a limit of 100
    grants = [used for allowed, used in results if allowed]
    assert len(grants) == 100
    assert sorted(grants) == list(range(1, 101))  # every grant saw its own new total
    assert all(used == 100 for allowed, used in results if not allowed)
    assert run(db, clock, service.check, "acme", "automation_runs").used == 100


def test_concurrent_bulk_consumers_never_pass_the_cap(db, clock):
    with db.session() as s:
        make_account(s, "acme", now=clock.now(), tier="starter")  # 1,000 runs per period

    results = hammer(
        16, 12, lambda n, i: run(db, clock, service.consume, "acme", "automation_runs", 7).allowed
    )
    assert sum(results) == 1000 // 7  # 142 grants of 7 = 994; a 143rd would pass 1,000
    assert run(db, clock, service.check, "acme", "automation_runs").used == 142 * 7


def test_concurrent_retries_of_the_same_idempotency_keys_count_once(db, clock):
    with db.session() as s:
        make_account(s, "acme", now=clock.now(), tier="starter")

    def work(n: int, i: int) -> tuple[str, dict]:
        key = f"job-{i}"  # every thread sends the same ten keys at the same time
        return key, run(db, clock, service.consume, "acme", "api_calls", 3, key).to_json()

    results = hammer(16, 10, work)
    assert len(results) == 160
    assert run(db, clock, service.check, "acme", "api_calls").used == 3 * 10
    answers: dict[str, list[dict]] = {}
    for key, body in results:
        answers.setdefault(key, []).append(body)
    for key, bodies in answers.items():
        assert all(body == bodies[0] for body in bodies), key  # every retry: the first answer
    assert sorted(bodies[0]["used"] for bodies in answers.values()) == list(range(3, 31, 3))


def test_concurrent_gauge_consume_and_release_never_go_negative_and_balance(db, clock):
    with db.session() as s:
        make_account(s, "acme", now=clock.now(), tier="starter")  # 10 projects
    consumers = 18
    all_consumed = threading.Barrier(THREADS)
    steps: list[tuple[str, bool, int]] = []

    def work(n: int, i: int) -> None:
        if n >= consumers:  # these threads release units they never took, while others take
            for _ in range(10):
                d = run(db, clock, service.release, "acme", "projects", 1)
                steps.append(("release", d.allowed, d.used))
            all_consumed.wait()
            return
        held = 0
        for _ in range(5):  # 90 attempts at 10 projects: the cap is certainly reached
            d = run(db, clock, service.consume, "acme", "projects", 1)
            steps.append(("consume", d.allowed, d.used))
            held += d.allowed
        all_consumed.wait()
        for _ in range(held):
            d = run(db, clock, service.release, "acme", "projects", 1)
            steps.append(("release", d.allowed, d.used))

    hammer(THREADS, 1, work)
    assert all(0 <= used <= 10 for _, _, used in steps)
    assert sum(1 for kind, ok, _ in steps if kind == "consume" and not ok) >= 20
    # Every unit taken is given back after it, and releases stop at zero: the gauge ends at 0.
    assert run(db, clock, service.check, "acme", "projects").used == 0


def test_concurrent_gauge_sets_stay_within_the_cap(db, clock):
    with db.session() as s:
        make_account(s, "acme", now=clock.now(), tier="starter")  # 10 projects

    def work(n: int, i: int) -> tuple[str, int, bool, int]:
        rng = random.Random(n * 1000 + i)
        if n % 3 == 0:
            value = rng.randint(0, 14)
            d = run(db, clock, service.set_gauge, "acme", "projects", value)
            return "set", value, d.allowed, d.used
        if n % 3 == 1:
            d = run(db, clock, service.consume, "acme", "projects", 1)
            return "consume", 1, d.allowed, d.used
        d = run(db, clock, service.release, "acme", "projects", 2)
        return "release", 2, d.allowed, d.used

    results = hammer(THREADS, 10, work)
    assert all(0 <= used <= 10 for *_, used in results)
    for kind, value, allowed, used in results:
        if kind == "set":
            assert allowed == (value <= 10)  # the gauge never exceeds 10, so only this decides
            assert used == value if allowed else used < value
    final = run(db, clock, service.check, "acme", "projects").used
    assert 0 <= final <= 10


def test_concurrent_keyed_consumers_at_the_limit_never_pass_it_and_retries_count_nothing(db, clock):
    # Keyed consumes count and claim in one autocommitted statement on PostgreSQL: exactly the
    # limit, each grant with its own new total, and every key counted once.
    with db.session() as s:
        make_account(s, "acme", now=clock.now())  # free: 100 automation runs per month

    def work(n: int, i: int) -> tuple[str, bool, int]:
        key = f"run-{n}-{i}"
        d = run(db, clock, service.consume, "acme", "automation_runs", 1, key)
        return key, d.allowed, d.used

    results = hammer(THREADS, 10, work)  # 240 attempts at a limit of 100
    grants = sorted(used for _, allowed, used in results if allowed)
    assert grants == list(range(1, 101))
    assert run(db, clock, service.check, "acme", "automation_runs").used == 100
    # A retry of every key answers as first answered and counts nothing more.
    for key, allowed, used in random.sample(results, 40):
        again = run(db, clock, service.consume, "acme", "automation_runs", 1, key)
        assert (again.allowed, again.used) == (allowed, used), key
    assert run(db, clock, service.check, "acme", "automation_runs").used == 100


def test_concurrent_keyed_consumers_below_any_limit_count_exactly(db, clock):
    with db.session() as s:
        make_account(s, "acme", now=clock.now(), tier="pro")  # 10,000 runs per period

    def work(n: int, i: int) -> int:
        return run(db, clock, service.consume, "acme", "automation_runs", 3, f"k-{n}-{i}").used

    totals = hammer(16, 15, work)
    assert sorted(totals) == list(range(3, 3 * 240 + 1, 3))  # each saw its own new total
    assert run(db, clock, service.check, "acme", "automation_runs").used == 720
