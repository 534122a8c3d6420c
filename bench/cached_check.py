"""In-process cached boolean check through the Flask extension vs GrowthBook's `is_on`.

`Gate.is_enabled(account, feature)` on a cache hit is one dict lookup plus a clock read (target
<= 5 microseconds). GrowthBook's in-process `is_on` evaluates its feature rules locally and is
measured in the same run as the reference. No network: the entitlements are fetched once from
a client stub and then served from the cache.

    /tmp/venv/bin/python bench/cached_check.py --number 1000000
"""

from __future__ import annotations

import argparse
import sys
import timeit
from typing import Any

import harness
from flask import Flask

from tiergate_client import Entitlements, FeatureState, TiergateClient
from tiergate_client.flask import Gate

TARGET_US = 5.0
ACCOUNT = "acct_bench"


class EntitlementsOnce(TiergateClient):
    """Answers entitlements from memory and counts the calls (a miss would show up here)."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9", "unused")
        self.calls = 0

    def entitlements(self, account_id: str) -> Entitlements:
        self.calls += 1
        features = {
            "pdf_export": FeatureState("pdf_export", "boolean", True),
            "sso": FeatureState("sso", "boolean", False),
            "projects": FeatureState("projects", "gauge", True, limit=10, used=2, remaining=8),
        }
        return Entitlements(account_id, "starter", "Starter", "active", 1, features)


def growthbook_client() -> Any:
    from growthbook import GrowthBook

    # The same decision expressed as GrowthBook features: on for starter and up.
    paid = {"tier": {"$in": ["starter", "pro", "business", "enterprise"]}}
    features = {
        "pdf_export": {"defaultValue": False, "rules": [{"condition": paid, "force": True}]},
        "sso": {
            "defaultValue": False,
            "rules": [{"condition": {"tier": {"$in": ["business"]}}, "force": True}],
        },
    }
    return GrowthBook(attributes={"id": ACCOUNT, "tier": "starter"}, features=features)


def per_call_us(stmt: Any, number: int, repeat: int) -> tuple[float, float]:
    """(best, median) microseconds per call over `repeat` runs of `number` calls."""
    runs = sorted(timeit.repeat(stmt, number=number, repeat=repeat))
    return runs[0] / number * 1e6, runs[len(runs) // 2] / number * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=1_000_000, help="calls per run")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    client = EntitlementsOnce()
    gate = Gate(client=client, account_loader=lambda: ACCOUNT, cache_ttl=3600.0)
    app = Flask("bench")
    gate.init_app(app)
    assert gate.is_enabled(ACCOUNT, "pdf_export") and not gate.is_enabled(ACCOUNT, "sso")

    @gate.requires("pdf_export")
    def view() -> str:
        return "ok"

    gb = growthbook_client()
    assert gb.is_on("pdf_export") and not gb.is_on("sso")

    is_enabled = gate.is_enabled
    is_on = gb.is_on
    rows: dict[str, tuple[float, float]] = {}
    rows["gate.is_enabled (cached)"] = per_call_us(
        lambda: is_enabled(ACCOUNT, "pdf_export"), args.number, args.repeat
    )
    rows["gate.is_enabled, feature off"] = per_call_us(
        lambda: is_enabled(ACCOUNT, "sso"), args.number, args.repeat
    )
    with app.test_request_context("/export"):
        rows["@gate.requires view call"] = per_call_us(view, args.number // 4, args.repeat)
    rows["growthbook is_on"] = per_call_us(lambda: is_on("pdf_export"), args.number, args.repeat)
    rows["growthbook is_on, feature off"] = per_call_us(
        lambda: is_on("sso"), args.number, args.repeat
    )
    rows["empty lambda (loop overhead)"] = per_call_us(lambda: None, args.number, args.repeat)
    assert client.calls == 1, "every timed check must be a cache hit"

    print(f"{'check':<32} {'best us':>8} {'median us':>10}")
    for name, (best, median) in rows.items():
        print(f"{name:<32} {best:>8.3f} {median:>10.3f}")
    cached = rows["gate.is_enabled (cached)"][1]
    met = cached <= TARGET_US
    print(
        f"cached check: {cached:.3f} us (target <= {TARGET_US}) {'met' if met else 'NOT MET'}; "
        f"growthbook is_on: {rows['growthbook is_on'][1]:.3f} us"
    )
    path = harness.write_results(
        "cached_check",
        {
            "number": args.number,
            "repeat": args.repeat,
            "target_us": TARGET_US,
            "us_per_call": {
                k: {"best": round(b, 4), "median": round(m, 4)} for k, (b, m) in rows.items()
            },
            "entitlement_fetches": client.calls,
        },
    )
    print(f"results: {path}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
