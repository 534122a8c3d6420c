"""Shared helpers of the billing race tests: threads released together, each with its own
session (its own PostgreSQL connection), and offers quoted the way the app quotes them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from billing.records import live_subscription
from gating import offers
from gating.models import Account
from tiers import store
from tiers.model import Tier


@dataclass(frozen=True)
class Ents:
    tier: Tier
    catalog_version: int
    features: dict | None = None


def tier_offer(session: Any, clock: Any, account_id: str, tier_id: str) -> str:
    """The pricing-page offer for `tier_id` (gating/offers.offer_for_tier), its id."""
    account = session.get(Account, account_id)
    published = store.load(session)
    sub = live_subscription(account)
    tier = published.catalog.tier(sub.tier_id if sub else "free")
    ents = Ents(tier, sub.catalog_version if sub else published.version)
    offer = offers.offer_for_tier(
        session, clock, account=account, entitlements=ents, tier_id=tier_id
    )
    session.flush()
    return offer.id


ERRORS: list[BaseException] = []  # every exception a thread raised, for a failure's detail


def together(*work: Callable[[], Any], timeout: float = 20) -> list[Any]:
    """Run each callable in its own thread, released at the same instant; their outcomes
    (an exception is an outcome: its class name and first line)."""
    ERRORS.clear()  # this run's only
    out: list[Any] = [None] * len(work)
    barrier = threading.Barrier(len(work))

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = work[i]()
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            ERRORS.append(exc)
            out[i] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "a thread hung (a lock never released?)"
    return out
