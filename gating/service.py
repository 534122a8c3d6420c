"""The gate: may account A use feature F / consume N units of it? Entitlements, atomic usage,
idempotent consumes and, on a denial or a nudge, the upgrade offer.

The hot path is lean: the account's subscription, add-ons, overrides and the newest catalog
version come from the per-process cache of gating/cache.py (on a miss: one query, plus one for
add-ons or overrides when it has any); catalogs come from the per-version cache of
tiers/store.py; entitlements are resolved at the clock's time on every call. So a boolean check
needs no database round trip, a metered check one read of the counter, and a consume one atomic
statement (gating/usage.py; on PostgreSQL the same statement claims the idempotency key) and one
more to store the answer. `consume` commits its count before it builds the answer. A denial
repeated from the same cached state is answered with the offer it got before (see `_offer`),
so asking again about a locked feature reads nothing either.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, exists, func, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gating import periods, usage
from gating.accounts import get_account
from gating.cache import AccountState, GateCache
from gating.entitlements import (
    Entitlements,
    FeatureAccess,
    OverrideView,
    SubscriptionView,
    not_in_plan,
    resolve,
)
from gating.models import Account, AccountAddOn, Override, Subscription, UsageRequest
from tiergate.clock import Clock
from tiergate.exceptions import Conflict, InvalidRequest, NotFound
from tiers import store
from tiers.checks import did_you_mean
from tiers.model import FeatureKind
from tiers.models import CatalogVersion

MAX_UNITS = 10**12
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class GateSettings:
    past_due_grace_days: int = 7
    base_url: str = "http://127.0.0.1:5000"
    # (account_id, offer_id) -> the customer's signed link to the offer page; the HTTP edge
    # supplies it so offers in API answers open without a second call.
    offer_link: Callable[[str, str], str] | None = None
    # What the gate loaded per account, kept for a second (gating/cache.py); None: no cache.
    cache: GateCache | None = None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    feature: str
    limit: int | None  # None: unlimited (or a boolean feature)
    used: int | None  # None for boolean features
    remaining: int | None  # None: unlimited / boolean
    reason: str | None = None  # None | limit_reached | feature_not_in_tier | no_access
    offer: dict[str, Any] | None = None
    nudge: bool = False  # allowed, but usage crossed the nudge threshold
    message: str | None = None  # a denial or nudge explained for the customer

    def to_json(self) -> dict[str, Any]:
        """The HTTP body of /v1/check and /v1/usage."""
        return {
            "allowed": self.allowed,
            "feature": self.feature,
            "limit": self.limit,
            "used": self.used,
            "remaining": self.remaining,
            "reason": self.reason,
            "message": self.message,
            "nudge": self.nudge,
            "offer": self.offer,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Decision:
        """The decision stored for an idempotency key, as first answered."""
        values = {name: body.get(name) for name in cls.__dataclass_fields__}
        return cls(**values | {"nudge": bool(body.get("nudge"))})


# ---- loading ------------------------------------------------------------------------------


def load_entitlements(
    session: Session, clock: Clock, account_id: str, settings: GateSettings
) -> Entitlements:
    """The account's effective entitlements now, resolved from its (possibly cached) state."""
    return _load(session, clock, account_id, settings)[0]


def _load(
    session: Session, clock: Clock, account_id: str, settings: GateSettings
) -> tuple[Entitlements, dict[Any, Any]]:
    """The entitlements now, and the offers already answered from the same cached state."""
    if not isinstance(account_id, str):
        raise InvalidRequest(f"account_id must be a string, not {account_id!r}")
    now = clock.now()
    state = _account_state(session, now, account_id, settings.cache)
    grace_days = settings.past_due_grace_days
    if state.resolved:  # resolved before: still right while now is in the same window
        since, until, days, entitlements = state.resolved
        if since <= now < until and days == grace_days:
            return entitlements, state.offers
    newest = store.load(session, state.newest_version)  # version None: raises NoCatalog
    sub = state.subscription
    pinned = store.load(session, sub.catalog_version) if sub is not None else None
    entitlements = resolve(
        newest=(newest.version, newest.catalog),
        pinned=(pinned.version, pinned.catalog) if pinned else None,
        subscription=sub,
        addons=list(state.addons),
        overrides=list(state.overrides),
        now=now,
        grace_days=grace_days,
    )
    state.resolved[:] = [*state.stable_window(now, grace_days), grace_days, entitlements]
    return entitlements, state.offers


def _account_state(
    session: Session, now: datetime, account_id: str, cache: GateCache | None
) -> AccountState:
    """The rows entitlements come from: from the cache, or one query when the account has no
    add-ons or overrides (plus one for each it has)."""
    if cache is not None:
        cached = cache.get(account_id)
        if cached is not None:
            return cached
        generation = cache.generation
    newest_version = select(func.max(CatalogVersion.version)).scalar_subquery()
    has_addons = exists().where(
        AccountAddOn.account_id == Account.id, AccountAddOn.active.is_(True)
    )
    has_overrides = exists().where(Override.account_id == Account.id, _unexpired(now))
    row = session.execute(
        select(Subscription, newest_version, has_addons, has_overrides)
        .select_from(Account)
        .outerjoin(Subscription, Subscription.account_id == Account.id)
        .where(Account.id == account_id)
    ).one_or_none()
    if row is None:
        get_account(session, account_id)  # raises the NotFound that says how to create it
    sub, version, with_addons, with_overrides = row  # type: ignore[misc]
    addons: tuple[tuple[str, int], ...] = ()
    if with_addons:
        addons = tuple(
            (addon_id, quantity)
            for addon_id, quantity in session.execute(
                select(AccountAddOn.addon_id, AccountAddOn.quantity).where(
                    AccountAddOn.account_id == account_id, AccountAddOn.active.is_(True)
                )
            )
        )
    overrides: tuple[OverrideView, ...] = ()
    if with_overrides:
        overrides = tuple(
            OverrideView(o.kind.value, o.feature_id, o.limit, o.days, o.expires_at)
            for o in session.scalars(
                select(Override).where(Override.account_id == account_id, _unexpired(now))
            )
        )
    state = AccountState(account_id, version, _subscription_view(sub), addons, overrides)
    if cache is not None:
        cache.put(state, generation)
    return state


def _unexpired(now: datetime) -> Any:
    return or_(Override.expires_at.is_(None), Override.expires_at > now)


def _subscription_view(sub: Any) -> SubscriptionView | None:
    if sub is None:
        return None
    return SubscriptionView(
        tier_id=sub.tier_id,
        interval=sub.interval,
        currency=sub.currency,
        status=sub.status.value,
        catalog_version=sub.catalog_version,
        period_start=sub.current_period_start,
        period_end=sub.current_period_end,
        trial_end=sub.trial_end,
        cancel_at_period_end=sub.cancel_at_period_end,
        past_due_since=sub.past_due_since,
    )


def _access(session: Session, ent: Entitlements, feature_id: str) -> FeatureAccess:
    if not isinstance(feature_id, str):
        raise InvalidRequest(f"feature must be a string, not {feature_id!r}")
    access = ent.features.get(feature_id)
    if access is not None:
        return access
    newest = store.load(session).catalog
    feature = newest.feature(feature_id)
    if feature is None:
        known = list(dict.fromkeys([*ent.catalog.features, *newest.features]))
        raise NotFound(
            f"Feature {feature_id!r} is not in the catalog" + did_you_mean(feature_id, known)
        )
    return not_in_plan(feature)  # added after the account's pinned catalog version


def _units(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{name} must be a whole number, not {value!r}")
    if not minimum <= value <= MAX_UNITS:
        raise InvalidRequest(f"{name} must be between {minimum} and {MAX_UNITS:,}, not {value}")
    return value


def _period_start(access: FeatureAccess, ent: Entitlements, clock: Clock) -> datetime:
    return periods.current_period(access.feature, clock.now(), ent.billing_anchor)[0]


# ---- answers ------------------------------------------------------------------------------


def _usage_text(access: FeatureAccess, used: int) -> str:
    feature = access.feature
    if access.limit is None:
        return f"{used:,} {feature.units(used)} used"
    return f"{used:,} of {access.limit:,} {feature.units(access.limit)} used"


def _denial_message(
    ent: Entitlements, access: FeatureAccess, reason: str, used: int | None, requested: int
) -> str:
    if reason == "no_access":
        return "This account has no plan that gives access: choose a plan to continue."
    tier = ent.tier.name if ent.tier else "this plan"
    if reason == "feature_not_in_tier":
        if access.source == "override":  # switched off for this account, whatever the plan
            return f"{access.feature.name} is switched off for your account."
        return f"{access.feature.name} is not included in {tier}."
    used = used or 0
    left = None if access.cap is None else access.cap - used
    # A limit set for the account (an override) is not the plan's: a plan change keeps it.
    whose = "your account's" if access.source == "override" else f"the {tier}"
    if left is not None and left > 0:  # units remain, just not as many as asked
        unit = access.feature.units(left)
        on = (
            "within the limit set for your account" if access.source == "override" else f"on {tier}"
        )
        return f"{_usage_text(access, used)}: {left:,} {unit} left {on}, {requested:,} asked for."
    return f"{_usage_text(access, used)}: {whose} limit is reached."


_MEMO_ENTRIES = 64  # offers remembered per cached account state (it lives a second)
_NO_EXPIRY = datetime.max.replace(tzinfo=UTC)


def _offer(
    session: Session,
    clock: Clock,
    account_id: str,
    ent: Entitlements,
    feature_id: str,
    used: int | None,
    requested: int | None,
    trigger: str,
    settings: GateSettings,
    memo: dict[Any, Any] | None = None,
) -> dict[str, Any] | None:
    """The offer that unlocks the need, as the API shows it (None: no upgrade unlocks it). An
    account with no plan at all is offered its first plan."""
    # A denial repeated from the same cached state (same entitlements, usage and request) is
    # answered with the offer it got last time, while that offer holds: a host app asking
    # about a locked feature on every page view costs no reads. The memo goes with the state
    # (at most the cache's ttl, and at once on a local commit for the account: an event on
    # its offers, a new plan, a new catalog).
    key = (feature_id, used, requested, trigger)
    hit = memo.get(key) if memo is not None else None
    if hit is not None and hit[0] is ent and clock.now() < hit[1]:
        return dict(hit[2])
    try:
        # Imported here: gating/offers.py builds on billing, which this module must not need.
        from gating import offers
    except ImportError:
        return None
    started = clock.now()
    offer = offers.offer_for(
        session,
        clock,
        account=get_account(session, account_id),
        entitlements=ent,
        feature_id=feature_id,
        used=used,
        requested=requested,
        trigger=trigger,
        settings=settings,
    )
    if offer is None:
        return None
    body: dict[str, Any] = offers.offer_json(offer, settings.base_url)
    if settings.offer_link is not None:
        body["accept_url"] = settings.offer_link(account_id, offer.id)
    if memo is not None and _unchanged(session, offer, started):
        if len(memo) >= _MEMO_ENTRIES:
            memo.clear()
        memo[key] = (ent, offer.expires_at or _NO_EXPIRY, dict(body))
    return body


def _unchanged(session: Session, offer: Any, started: datetime) -> bool:
    """An offer stored before this request (created before it `started`: one it created may
    be flushed, but it is not committed) and reused exactly as it was (nothing to write)."""
    return (
        offer not in session.new
        and not session.is_modified(offer)
        and offer.created_at is not None
        and offer.created_at < started
    )


def _deny(
    session: Session,
    clock: Clock,
    account_id: str,
    ent: Entitlements,
    access: FeatureAccess,
    requested: int,
    used: int | None,
    settings: GateSettings,
    memo: dict[Any, Any] | None = None,
) -> Decision:
    """The denial of `requested` units at `used`, with the offer that would unlock it."""
    if ent.tier is None and access.source != "override":
        reason = "no_access"
    elif access.enabled and access.feature.metered:
        reason = "limit_reached"
    else:
        reason = "feature_not_in_tier"
    fid = access.feature.id
    trigger = "limit_reached"
    offer = _offer(session, clock, account_id, ent, fid, used, requested, trigger, settings, memo)
    limit = access.limit if access.feature.metered else None
    remaining = None if limit is None or used is None else max(limit - used, 0)
    message = _denial_message(ent, access, reason, used, requested)
    return Decision(False, fid, limit, used, remaining, reason, offer, message=message)


_NEVER = 2**62  # a usage no counter reaches (BIGINT)


def _stated_limit(access: FeatureAccess) -> int | None:
    """The limit an answer states: a metered feature's (None: unlimited)."""
    return access.limit if access.feature.metered else None


def _nudge_from(access: FeatureAccess) -> int:
    """The usage from which an allowed answer nudges (with an offer): the nudge threshold, or
    past the limit (an overage allowance); _NEVER for an unlimited or unmetered feature."""
    limit = _stated_limit(access)
    if limit is None:
        return _NEVER
    return min(limit + 1, access.nudge_at if access.nudge_at is not None else _NEVER)


def _allow(
    session: Session,
    clock: Clock,
    account_id: str,
    ent: Entitlements,
    access: FeatureAccess,
    used: int | None,
    settings: GateSettings,
    *,
    requested: int = 0,
    memo: dict[Any, Any] | None = None,
) -> Decision:
    """Allowed at `used` (the usage now). The nudge is judged on the usage after `requested`
    more units (a check's prospective use; a consume has counted them already)."""
    fid = access.feature.id
    limit = _stated_limit(access)
    remaining = None if limit is None or used is None else max(limit - used, 0)
    after = None if used is None else used + requested
    if after is None or after < _nudge_from(access) or used is None or limit is None:
        return Decision(True, fid, limit, used, remaining)
    offer = _offer(session, clock, account_id, ent, fid, used, requested, "nudge", settings, memo)
    message = f"{_usage_text(access, used)}."
    if requested:  # nothing is counted yet: say what the use would make it
        message = (
            f"{_usage_text(access, used)}; {requested:,} more would make {after:,} of {limit:,}."
        )
    return Decision(True, fid, limit, used, remaining, None, offer, True, message)


# ---- the gate -----------------------------------------------------------------------------


def check(
    session: Session,
    clock: Clock,
    account_id: str,
    feature_id: str,
    quantity: int = 1,
    *,
    settings: GateSettings,
) -> Decision:
    """May the account use `quantity` units now? Records no usage."""
    quantity = _units(quantity, "quantity", 1)
    ent, memo = _load(session, clock, account_id, settings)
    access = _access(session, ent, feature_id)
    if access.feature.kind is FeatureKind.BOOLEAN:
        if access.enabled:  # (no plan: only what an override grants)
            return Decision(True, feature_id, None, None, None)
        return _deny(session, clock, account_id, ent, access, quantity, None, settings, memo)
    used = usage.used(session, account_id, feature_id, _period_start(access, ent, clock))
    cap = access.cap
    if not access.enabled or (cap is not None and used + quantity > cap):
        return _deny(session, clock, account_id, ent, access, quantity, used, settings, memo)
    # Judge the nudge on the usage after this prospective use; state the usage as it is now.
    return _allow(
        session, clock, account_id, ent, access, used, settings, requested=quantity, memo=memo
    )


def consume(
    session: Session,
    clock: Clock,
    account_id: str,
    feature_id: str,
    quantity: int,
    idempotency_key: str | None = None,
    *,
    settings: GateSettings,
) -> Decision:
    """Atomically count `quantity` units if within the cap; a denial counts nothing. A retry
    with the same idempotency key returns the first answer without counting again."""
    quantity = _units(quantity, "quantity", 1)
    if idempotency_key is not None:
        _check_key(idempotency_key)
    ent, memo = _load(session, clock, account_id, settings)
    access = _access(session, ent, feature_id)
    if access.feature.kind is FeatureKind.BOOLEAN:
        raise InvalidRequest(
            f"{feature_id!r} is a boolean feature: use /v1/check, there is nothing to count"
        )
    start = _period_start(access, ent, clock)
    countable = access.enabled
    claim: int | None = None
    total: int | None = None
    counted = False  # the count is settled (total None: the cap said no, or not countable)
    answered = False  # the plain allowed answer was stored with the claim
    if idempotency_key is not None:
        request_hash = hashlib.sha256(f"{feature_id}\x00{quantity}".encode()).hexdigest()
        both: tuple[int, int | None] | None = None
        if countable and _postgres(session) and (access.cap is None or quantity <= access.cap):
            # One statement counts and claims the key, committed at once: the counter's row
            # lock is held for that statement only.
            try:
                both = usage.count_and_claim(
                    _engine(session),
                    account_id=account_id,
                    key=idempotency_key,
                    request_hash=request_hash,
                    feature_id=feature_id,
                    period_start=start,
                    quantity=quantity,
                    cap=access.cap,
                    now=clock.now(),
                    limit=_stated_limit(access),
                    answer_below=_nudge_from(access),
                )
            except IntegrityError:  # the key is known, or claimed meanwhile: nothing written
                both = None
        if both is not None:
            claim, total = both
            counted = True
            answered = total is not None and total < _nudge_from(access)
        else:  # another dialect, or the key is known: the first answer, or claim it now
            # (a request that can never fit is claimed here too, and denied below)
            first = _claim_key(session, clock, account_id, idempotency_key, request_hash)
            if isinstance(first, Decision):
                return first
            if isinstance(first, _Counted):  # counted, its answer never stored: rebuild it
                claim, total, counted = first.claim, first.total, True
            else:
                claim = first
    if countable and not counted and claim is None and _postgres(session):
        # one round trip, committed: nothing else to write
        total = usage.add(
            _engine(session), account_id, feature_id, start, quantity, access.cap, clock.now()
        )
    elif countable and not counted:
        total = usage.add(session, account_id, feature_id, start, quantity, access.cap, clock.now())
    if claim is not None and not counted:
        session.connection().execute(_COUNTED, {"claim": claim, "response": {"counted": total}})
    # The count is final: commit it now, so the counter's row lock is not held while the answer
    # (and any offer) is built. A crash from here on leaves {"counted": ...} on the claim, from
    # which a retry rebuilds the answer.
    if session.in_transaction():  # (a count committed on its own left nothing to commit)
        session.commit()
    if claim is not None and not answered and _postgres(session):
        # Hold the claim while the answer (and any offer) is built: a retry waits for it and
        # replays it, rather than build a second one; a crash releases it for the retry.
        answer = session.execute(
            select(UsageRequest.status_code, UsageRequest.response)
            .where(UsageRequest.id == claim)
            .with_for_update()
        ).one()
        if answer.status_code:  # a retry that found the claim free answered it meanwhile
            return Decision.from_json(answer.response)
    if total is None:
        used = usage.used(session, account_id, feature_id, start)
        decision = _deny(session, clock, account_id, ent, access, quantity, used, settings, memo)
    else:
        decision = _allow(session, clock, account_id, ent, access, total, settings, memo=memo)
    if claim is not None and not answered:
        status = 200 if decision.allowed else 402
        params = {"claim": claim, "status_code": status, "response": decision.to_json()}
        # committed with the request's transaction: with the offer it names and, on
        # PostgreSQL, the claim's lock held since the count
        session.connection().execute(_ANSWER, params)
    return decision


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _engine(session: Session) -> Engine:
    """The session's engine, for a statement committed on its own (usage.count_and_claim,
    usage.add): one round trip, not held until the request's end."""
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    return engine


@dataclass(frozen=True)
class _Counted:
    """A claimed key whose units were counted (total None: denied) but whose answer is lost."""

    claim: int
    total: int | None


def _check_key(key: Any) -> None:
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise InvalidRequest(
            f"idempotency_key must be a string of 1 to {MAX_KEY_LENGTH} characters, not {key!r}"
        )


def _claim_key(
    session: Session, clock: Clock, account_id: str, key: str, request_hash: str
) -> int | Decision | _Counted:
    """Claim an idempotency key (its row id: ours, go on) or the first answer given for it.

    On PostgreSQL a concurrent request with the same key waits on the unique index until the
    first commits (then sees its answer) or rolls back (then claims the key itself).
    """
    claim = usage.claim_statement(session.get_bind().dialect.name)
    params = {
        "account_id": account_id,
        "key": key,
        "request_hash": request_hash,
        "now": clock.now(),
    }
    for attempt in range(5):
        claimed = session.connection().execute(claim, params).scalar_one_or_none()
        if claimed is not None:
            return claimed
        first = session.execute(
            select(
                UsageRequest.request_hash, UsageRequest.status_code, UsageRequest.response
            ).where(UsageRequest.account_id == account_id, UsageRequest.idempotency_key == key)
        ).one_or_none()
        if first is not None and first.request_hash != request_hash:
            raise Conflict(
                f"idempotency key {key!r} reused with a different request (another feature "
                "or quantity): use a new key for a new request"
            )
        if first is not None and first.status_code:
            return Decision.from_json(first.response)
        # Gone (its transaction rolled back) or not answered yet: try again shortly.
        time.sleep(0.01 * (attempt + 1))
    if first is not None and "counted" in (first.response or {}):
        # Counted, but no answer yet. On PostgreSQL a first request still building its answer
        # holds the claim's row: wait for it (FOR UPDATE) and replay its answer. Only a claim
        # nobody holds is one whose process died: its answer is rebuilt from the count.
        again = session.execute(
            select(UsageRequest.id, UsageRequest.status_code, UsageRequest.response)
            .where(UsageRequest.account_id == account_id, UsageRequest.idempotency_key == key)
            .with_for_update()
        ).one_or_none()
        if again is not None and again.status_code:
            return Decision.from_json(again.response)
        if again is not None:
            return _Counted(again.id, again.response["counted"])
    raise Conflict(
        f"a request with idempotency key {key!r} is still being processed: retry in a moment"
    )


_REQUESTS = UsageRequest.__table__
_COUNTED = (
    update(_REQUESTS)
    .where(_REQUESTS.c.id == bindparam("claim"))
    .values(response=bindparam("response"))
)
_ANSWER = (
    update(_REQUESTS)
    .where(_REQUESTS.c.id == bindparam("claim"))
    .values(status_code=bindparam("status_code"), response=bindparam("response"))
)


def set_gauge(
    session: Session,
    clock: Clock,
    account_id: str,
    feature_id: str,
    value: int,
    *,
    settings: GateSettings,
) -> Decision:
    """Set a gauge to an absolute value: lowering always works, raising only within the cap."""
    value = _units(value, "value", 0)
    ent = load_entitlements(session, clock, account_id, settings)
    access = _access(session, ent, feature_id)
    if access.feature.kind is not FeatureKind.GAUGE:
        raise InvalidRequest(
            f"{feature_id!r} is a {access.feature.kind.value} feature: only gauges can be set"
        )
    cap = access.cap if access.enabled else 0
    gauge = periods.GAUGE_PERIOD
    result = usage.set_value(session, account_id, feature_id, gauge, value, cap, clock.now())
    if result is not None:
        return _allow(session, clock, account_id, ent, access, result, settings)
    used = usage.used(session, account_id, feature_id, gauge)
    return _deny(session, clock, account_id, ent, access, value - used, used, settings)


def release(
    session: Session,
    clock: Clock,
    account_id: str,
    feature_id: str,
    quantity: int,
    *,
    settings: GateSettings,
) -> Decision:
    """Give units back (a deleted project frees a gauge unit); usage never goes below zero."""
    quantity = _units(quantity, "quantity", 1)
    ent = load_entitlements(session, clock, account_id, settings)
    access = _access(session, ent, feature_id)
    if access.feature.kind is FeatureKind.BOOLEAN:
        raise InvalidRequest(f"{feature_id!r} is a boolean feature: there is nothing to release")
    start = _period_start(access, ent, clock)
    total = usage.release(session, account_id, feature_id, start, quantity, clock.now())
    limit = access.limit
    remaining = None if limit is None else max(limit - total, 0)
    return Decision(True, feature_id, limit, total, remaining)


def entitlements(
    session: Session, clock: Clock, account_id: str, *, settings: GateSettings
) -> dict[str, Any]:
    """Tier, status, catalog version and, per feature, limit, usage and reset time (the
    counters of every metered feature are read in one query)."""
    ent = load_entitlements(session, clock, account_id, settings)
    now = clock.now()
    # every feature the gate answers for: a newer catalog's too, not in an older plan
    every = dict(ent.features)
    for fid, feature in (ent.newer.features if ent.newer is not None else {}).items():
        if fid not in every:
            every[fid] = not_in_plan(feature)
    bounds = {
        fid: periods.current_period(a.feature, now, ent.billing_anchor)
        for fid, a in every.items()
        if a.feature.metered
    }
    used = usage.used_many(session, account_id, {fid: b[0] for fid, b in bounds.items()})
    features: dict[str, Any] = {}
    for fid, access in every.items():
        metered = access.feature.metered
        n = used.get(fid) if metered else None
        limit = access.limit if metered else None
        features[fid] = {
            "type": access.feature.kind.value,
            "enabled": access.enabled,
            "limit": limit,
            "used": n,
            "remaining": None if limit is None or n is None else max(limit - n, 0),
            "resets_at": bounds[fid][1] if metered else None,
            "nudge_at": access.nudge_at,
            "source": access.source,
        }
    return {
        "account_id": account_id,
        "tier": None if ent.tier is None else {"id": ent.tier.id, "name": ent.tier.name},
        "status": ent.status,
        "fallback_reason": ent.fallback_reason,
        "catalog_version": ent.catalog_version,
        "interval": ent.interval,
        "currency": ent.currency,
        "current_period_end": ent.billing_anchor[1] if ent.billing_anchor else None,
        "features": features,
    }
