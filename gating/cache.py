"""What the gate loads for an account, kept in this process for a second or two.

Every check and consume needs the account's subscription, add-ons, overrides and the newest
catalog version. Those change rarely (an upgrade, a webhook, the product team), while checks
come many times a second, so each process keeps what it loaded for `ttl` seconds
(`TIERGATE_GATE_CACHE_SECONDS`, default 1; 0 turns the cache off):

- A change committed through this process (any session of the app's Database) drops the
  account's entry at commit; a new catalog version drops every entry. A change to one of the
  account's offers (a new quote, one restated, an event: shown, dismissed, paid) is such a
  change: the entry also keeps the offers its denials answered with (gating/service.py).
- A change committed by another process (another gunicorn instance, a CLI run) is seen at the
  latest `ttl` seconds later. Usage is never cached: limits are enforced by one atomic
  statement on the current counter, so the staleness bounds only how soon a new tier's limits
  apply, never whether a limit holds.
- Entitlements are resolved from the cached rows with the clock's current time on every call,
  so trials, grace periods, period ends and override expiries take effect on time.

A load that raced with a commit is not stored (the generation counter), so an entry never
holds state older than the last change this process committed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, sessionmaker

from gating.entitlements import OverrideView, SubscriptionView, trial_ends
from gating.models import Account, AccountAddOn, Offer, OfferEvent, Override, Subscription
from tiers.models import CatalogVersion

MAX_ENTRIES = 100_000
_TOUCHED = "tiergate.gate_cache.touched"
_ALL = "*"


@dataclass(frozen=True)
class AccountState:
    """The rows entitlements are resolved from (not the resolution: that depends on now)."""

    account_id: str
    newest_version: int | None
    subscription: SubscriptionView | None
    addons: tuple[tuple[str, int], ...]
    overrides: tuple[OverrideView, ...]
    # The last resolution and the time window it holds for (see stable_window); not state.
    resolved: list[Any] = field(default_factory=list, compare=False, repr=False)
    # Offers answered from this state (gating/service.py _offer): a repeated denial reuses
    # its offer without reading it again. Dropped with the entry, so also when a local commit
    # records an event on one of the account's offers (a dismissal starts a cooldown).
    offers: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def stable_window(self, now: datetime, grace_days: int) -> tuple[datetime, datetime]:
        """The span around `now` in which resolving this state gives the same answer: every
        time resolve() compares `now` with (override expiries, the trial's end,
        the past-due grace end, the period end) lies outside it."""
        moments = [o.expires_at for o in self.overrides if o.expires_at is not None]
        sub = self.subscription
        if sub is not None:
            moments += [
                trial_ends(sub),
                (sub.past_due_since or sub.period_end) + timedelta(days=grace_days),
                sub.period_end,
            ]
        since = max((m for m in moments if m <= now), default=datetime.min.replace(tzinfo=UTC))
        until = min((m for m in moments if m > now), default=datetime.max.replace(tzinfo=UTC))
        return since, until


class GateCache:
    """Per-process AccountState entries with a time to live, dropped on local commits."""

    def __init__(self, ttl: float, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._monotonic = monotonic
        self._entries: dict[str, tuple[float, AccountState]] = {}
        self._generation = 0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    @property
    def generation(self) -> int:
        """Read before loading; pass to put() so a load that raced a commit is not kept."""
        return self._generation

    def get(self, account_id: str) -> AccountState | None:
        entry = self._entries.get(account_id)
        if entry is None or entry[0] <= self._monotonic():
            return None
        return entry[1]

    def put(self, state: AccountState, generation: int) -> None:
        if not self.enabled:
            return
        with self._lock:
            if generation != self._generation:
                return
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[state.account_id] = (self._monotonic() + self.ttl, state)

    def invalidate(self, account_ids: set[str] | None = None) -> None:
        """Drop the given accounts' entries (None: all of them)."""
        with self._lock:
            self._generation += 1
            if account_ids is None:
                self._entries.clear()
            else:
                for account_id in account_ids:
                    self._entries.pop(account_id, None)

    def watch(self, factory: sessionmaker[Session]) -> None:
        """Drop entries when a session of `factory` commits a change that affects them."""
        event.listen(factory, "after_flush", _collect)
        event.listen(factory, "after_commit", lambda session: self._commit(session))
        event.listen(factory, "after_rollback", _forget)

    def _commit(self, session: Session) -> None:
        touched: set[str] | None = session.info.pop(_TOUCHED, None)
        if touched:
            self.invalidate(None if _ALL in touched else touched)


def _collect(session: Session, _context: Any) -> None:
    touched: set[str] = session.info.setdefault(_TOUCHED, set())
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, Account):
            touched.add(obj.id)
        elif isinstance(obj, Subscription | AccountAddOn | Override):
            touched.add(obj.account_id or _ALL)
        elif isinstance(obj, CatalogVersion):
            touched.add(_ALL)
        elif isinstance(obj, Offer):  # a new quote, or one restated (usage, prompt)
            touched.add(obj.account_id or _ALL)
        elif isinstance(obj, OfferEvent):  # shown, dismissed, paid: the offer's answer moved
            offer = inspect(obj).attrs.offer.loaded_value  # never a query mid-flush
            touched.add(offer.account_id if isinstance(offer, Offer) else _ALL)


def _forget(session: Session) -> None:
    session.info.pop(_TOUCHED, None)
