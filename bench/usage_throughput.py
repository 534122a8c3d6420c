"""POST /v1/usage on PostgreSQL: 16 clients on ONE account, vs the bare Flask baseline.

Two phases against the same server:
1. throughput: every request consumes 1 api_call of one account whose limit (an override of
   10**9) is never reached; each request carries a fresh idempotency key, as TiergateClient
   sends. Ratio vs the baseline's throughput (target >= 0.65).
2. the race at the limit: 16 clients consume from one free-tier account (limit 1000 api_calls)
   until well past the limit; exactly 1000 requests may be granted (200) and the counter must
   read 1000 afterwards: zero grants beyond the limit.

    /tmp/venv/bin/python bench/usage_throughput.py --seconds 10
"""

from __future__ import annotations

import argparse
import sys

import harness

TARGET_RATIO = 0.65
FAST = "bench_usage"
RACE = "bench_race"
RACE_LIMIT = 1000  # the demo catalog's free-tier api_calls per month


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--postgres-admin-url", default=harness.PG_ADMIN_DEFAULT)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args(argv)
    load = {"connections": args.connections, "seconds": args.seconds}
    body = {"account_id": FAST, "feature": "api_calls", "quantity": 1}

    def measure_baseline(label: str) -> harness.LoadResult:
        with harness.Server("baseline_app:app", chdir=harness.BENCH_DIR) as base:
            req = harness.Request("/v1/usage", body, {"Authorization": "Bearer x"}, unique_key=True)
            harness.drive("warmup", base.url, req, seconds=args.warmup)
            return harness.drive(label, base.url, req, **load, server=base)

    before = measure_baseline("baseline (bare Flask), before")

    prepared = harness.prepare_tiergate(args.db, args.postgres_admin_url)
    try:
        with harness.Server("tiergate:create_app()", env=prepared.env()) as server:
            key = prepared.api_key
            for account in (FAST, RACE):
                harness.api(server.url, key, "PUT", f"/v1/accounts/{account}", {"name": account})
            harness.api(
                server.url,
                key,
                "POST",
                f"/v1/accounts/{FAST}/overrides",
                {"kind": "limit", "feature": "api_calls", "limit": 10**9, "reason": "bench"},
            )
            req = harness.tiergate_request("/v1/usage", key, body, unique_key=True)
            warmup = harness.drive("warmup", server.url, req, seconds=args.warmup)
            result = harness.drive(
                f"tiergate usage ({args.db})", server.url, req, **load, server=server
            )
            fast_used = _used(server.url, key, FAST)

            race_body = {"account_id": RACE, "feature": "api_calls", "quantity": 1}
            race_req = harness.tiergate_request("/v1/usage", key, race_body, unique_key=True)
            race = harness.drive(
                f"race at limit {RACE_LIMIT} ({args.db})",
                server.url,
                race_req,
                connections=args.connections,
                seconds=args.seconds,
                max_requests=RACE_LIMIT * 3,
            )
            race_used = _used(server.url, key, RACE)
    finally:
        prepared.drop()

    # The machine's speed drifts: the baseline is measured before and after, and its mean used.
    after = measure_baseline("baseline (bare Flask), after")
    baseline_rps = (before.rps + after.rps) / 2
    ratio = round(result.rps / baseline_rps, 3)
    granted = race.statuses.get(200, 0)
    harness.print_table([before, result, race, after])
    # Every grant (warmup included) is counted exactly once.
    counted_ok = fast_used == warmup.statuses.get(200, 0) + result.statuses.get(200, 0)
    race_ok = granted == RACE_LIMIT and race_used == RACE_LIMIT and race.requests > RACE_LIMIT
    print(
        f"ratio: {ratio:.3f} (target >= {TARGET_RATIO}) "
        f"{'met' if ratio >= TARGET_RATIO else 'NOT MET'}"
    )
    grants = warmup.statuses.get(200, 0) + result.statuses.get(200, 0)
    print(
        f"counted: {fast_used} used after {grants} grants: {'exact' if counted_ok else 'MISMATCH'}"
    )
    print(
        f"race: {granted} granted (200), {race.statuses.get(402, 0)} denied (402), counter "
        f"{race_used}, limit {RACE_LIMIT}: {'no over-grant' if race_ok else 'FAILED'}"
    )
    path = harness.write_results(
        "usage_throughput",
        {
            "db": args.db,
            "load": load,
            "baseline": {"before": before, "after": after, "mean_rps": baseline_rps},
            "tiergate": result,
            "ratio": ratio,
            "target_ratio": TARGET_RATIO,
            "fast_account_used": fast_used,
            "fast_account_grants": warmup.statuses.get(200, 0) + result.statuses.get(200, 0),
            "counted_exactly": counted_ok,
            "race": {
                "result": race,
                "limit": RACE_LIMIT,
                "granted": granted,
                "counter_after": race_used,
                "ok": race_ok,
            },
        },
    )
    print(f"results: {path}")
    return 0 if (ratio >= TARGET_RATIO and race_ok and counted_ok) else 1


def _used(url: str, key: str, account: str) -> int:
    ents = harness.api(url, key, "GET", f"/v1/accounts/{account}/entitlements")
    return int(ents["features"]["api_calls"]["used"])


if __name__ == "__main__":
    sys.exit(main())
