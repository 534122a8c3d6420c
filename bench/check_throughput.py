"""POST /v1/check throughput and latency vs a bare Flask JSON endpoint (target ratio >= 0.75).

Both apps are served by gunicorn with the same configuration (harness.GUNICORN_ARGS) and driven
by the same load (16 keep-alive connections for N seconds); the ratio is tiergate / baseline.
Two checks are measured by default: a boolean feature the account has (pdf_export, granted by
an override: answered from the gate's per-process cache, no database round trip) and a metered
gauge (projects: one read of the current counter, never cached). A third on request
(`--feature sso`): a boolean feature the account's tier lacks, so every answer is a denial with
its upgrade offer (a host app asking about a locked feature on each page view).

    /tmp/venv/bin/python bench/check_throughput.py --db sqlite --db postgres --seconds 10
"""

from __future__ import annotations

import argparse
import sys

import harness

TARGET_RATIO = 0.75
ACCOUNT = "bench_check"
FEATURES = ["pdf_export", "projects"]
DENIED = "sso"  # not in the free tier: denied, with an offer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--db",
        action="append",
        choices=["sqlite", "postgres"],
        help="tiergate's database (repeat for both; default sqlite)",
    )
    parser.add_argument("--postgres-admin-url", default=harness.PG_ADMIN_DEFAULT)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--feature",
        action="append",
        choices=[*FEATURES, DENIED],
        help="feature to check (repeat; default pdf_export boolean and projects gauge; "
        "sso: a denied boolean answered with an offer)",
    )
    args = parser.parse_args(argv)
    dbs = args.db or ["sqlite"]
    features = args.feature or FEATURES
    load = {"connections": args.connections, "seconds": args.seconds}
    body = {"account_id": ACCOUNT, "feature": features[0], "quantity": 1}

    def measure_baseline(label: str) -> harness.LoadResult:
        with harness.Server("baseline_app:app", chdir=harness.BENCH_DIR) as base:
            req = harness.Request("/v1/check", body, {"Authorization": "Bearer x"})
            harness.drive("warmup", base.url, req, seconds=args.warmup)
            return harness.drive(label, base.url, req, **load, server=base)

    rows = []
    before = measure_baseline("baseline (bare Flask), before")
    rows.append(before)
    references = {}
    if "postgres" in dbs:  # reference: the same app plus one `SELECT 1` per request
        env = {"BASELINE_DATABASE_URL": args.postgres_admin_url}
        with harness.Server("baseline_app:app", env=env, chdir=harness.BENCH_DIR) as base:
            req = harness.Request("/db/v1/check", body, {"Authorization": "Bearer x"})
            harness.drive("warmup", base.url, req, seconds=args.warmup)
            ref = harness.drive("reference: Flask + SELECT 1", base.url, req, **load, server=base)
        rows.append(ref)
        references["flask_plus_select_1_postgres"] = {"result": ref}

    results = {}
    for db in dbs:
        prepared = harness.prepare_tiergate(db, args.postgres_admin_url)
        try:
            with harness.Server("tiergate:create_app()", env=prepared.env()) as server:
                key = prepared.api_key
                harness.api(server.url, key, "PUT", f"/v1/accounts/{ACCOUNT}", {"name": "bench"})
                harness.api(
                    server.url,
                    key,
                    "POST",
                    f"/v1/accounts/{ACCOUNT}/overrides",
                    {"kind": "feature", "feature": "pdf_export", "reason": "benchmark"},
                )
                for feature in features:
                    body = {"account_id": ACCOUNT, "feature": feature, "quantity": 1}
                    req = harness.tiergate_request("/v1/check", key, body)
                    harness.drive("warmup", server.url, req, seconds=args.warmup)
                    name = f"tiergate check {feature} ({db})"
                    result = harness.drive(name, server.url, req, **load, server=server)
                    rows.append(result)
                    results[f"{db}/{feature}"] = {"result": result}
        finally:
            prepared.drop()

    # The machine's speed drifts: the baseline is measured before and after, and its mean used.
    after = measure_baseline("baseline (bare Flask), after")
    rows.append(after)
    baseline_rps = (before.rps + after.rps) / 2
    for entry in (*references.values(), *results.values()):
        entry["ratio"] = round(entry["result"].rps / baseline_rps, 3)

    harness.print_table(rows)
    for name, ref in references.items():
        print(f"reference {name}: ratio {ref['ratio']:.3f}")
    ok = True
    for run, r in results.items():
        met = r["ratio"] >= TARGET_RATIO and r["result"].statuses.get(200) == r["result"].requests
        ok &= met
        print(
            f"ratio {run}: {r['ratio']:.3f} (target >= {TARGET_RATIO}) "
            f"{'met' if met else 'NOT MET'}"
        )
    path = harness.write_results(
        "check_throughput",
        {
            "features": features,
            "load": load,
            "baseline": {"before": before, "after": after, "mean_rps": baseline_rps},
            "references": references,
            "tiergate": results,
            "target_ratio": TARGET_RATIO,
        },
    )
    print(f"results: {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
