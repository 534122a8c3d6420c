"""Flask extension: gate views on tiergate with `@gate.requires(...)` and `@gate.consumes(...)`.

Boolean checks read a short-lived local copy of the account's entitlements (one dict lookup and a
clock read on a hit); metered consumes always go to tiergate. When tiergate cannot be reached,
each feature fails open or closed as configured (closed unless listed in `fail_open`), calls are
skipped for `failure_cooldown` seconds instead of waiting on timeouts every request, and one
warning is logged per minute.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import (
    Flask,
    abort,
    g,
    jsonify,
    redirect,
    render_template,
    render_template_string,
    request,
)
from werkzeug.wrappers import Response as BaseResponse

from tiergate_client.client import (
    Entitlements,
    GateResult,
    TiergateClient,
    TiergateError,
    TiergateUnavailable,
    _as_dict,
)

__all__ = ["Gate", "REFUSED", "UNAVAILABLE"]

log = logging.getLogger("tiergate_client")

UNAVAILABLE = "tiergate_unavailable"  # GateResult.reason when tiergate could not answer
# GateResult.reason when tiergate refused the question itself (an account it does not know, a
# feature not in the catalog, a revoked key): a bug to fix, answered closed, never a 500
REFUSED = "tiergate_refused"
WARN_EVERY = 60.0  # seconds between "tiergate is unreachable" warnings
MAX_UNCONFIRMED = 1000  # lost consumes remembered for settling; more are logged and dropped
SETTLE_BATCH = 10  # lost consumes settled after one successful call (bounds its extra latency)

DENIED_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title></head>
<body><main>
<h1>{{ title }}</h1>
<p>{{ message }}</p>
{% if offer and offer.accept_url %}<p><a href="{{ offer.accept_url }}">See the upgrade</a></p>
{% endif %}<p><a href="javascript:history.back()">Go back</a></p>
</main></body></html>
"""


class _CoolingDown(TiergateUnavailable):
    """Not sent at all: tiergate failed moments ago (failure_cooldown)."""


class _LostConsume(NamedTuple):
    """A consume sent by `consumes` whose answer never came: tiergate may have counted it."""

    account_id: str
    feature: str
    quantity: int
    idempotency_key: str


@dataclass
class _Refreshes:
    """An account's entitlement fetches in flight, and how often it was invalidated meanwhile."""

    in_flight: int = 0
    generation: int = 0


class Gate:
    """Feature gating for one Flask app (or several) against one tiergate server."""

    def __init__(
        self,
        app: Flask | None = None,
        client: TiergateClient | None = None,
        *,
        account_loader: Callable[[], str | None] | None = None,
        cache_ttl: float = 5.0,
        fail_open: Iterable[str] = frozenset(),
        fail_closed: Iterable[str] = frozenset(),
        api_prefix: str = "/api/",
        upgrade_url: str | Callable[[GateResult], str] | None = None,
        denied_template: str | None = None,
        failure_cooldown: float = 2.0,
        max_cached_accounts: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fail_open = frozenset(fail_open)
        self.fail_closed = frozenset(fail_closed)
        both = self.fail_open & self.fail_closed
        if both:
            raise ValueError(f"features listed in both fail_open and fail_closed: {sorted(both)}")
        if cache_ttl < 0:
            raise ValueError(f"cache_ttl must be 0 or more seconds, not {cache_ttl}")
        self.client = client
        self.account_loader = account_loader
        self.cache_ttl = cache_ttl
        self.api_prefix = api_prefix
        self.upgrade_url = upgrade_url
        self.denied_template = denied_template
        self.failure_cooldown = failure_cooldown
        self.max_cached_accounts = max_cached_accounts
        self._now = clock
        # account_id -> (expires_at, enabled feature ids, entitlements)
        self._cache: dict[str, tuple[float, frozenset[str], Entitlements]] = {}
        # accounts with a fetch in flight: an invalidate() bumps the generation, so that a fetch
        # begun before it does not store its older answer (kept only while fetches are in flight)
        self._refreshes: dict[str, _Refreshes] = {}
        self._unconfirmed: list[_LostConsume] = []
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._last_warning = float("-inf")
        self._suppressed = 0
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register on `app`; builds the client from TIERGATE_URL / TIERGATE_API_KEY if needed."""
        if self.client is None:
            url, key = app.config.get("TIERGATE_URL"), app.config.get("TIERGATE_API_KEY")
            if not url or not key:
                raise RuntimeError(
                    "Gate needs a client or the TIERGATE_URL and TIERGATE_API_KEY settings"
                )
            self.client = TiergateClient(
                url, key, timeout=float(app.config.get("TIERGATE_TIMEOUT", 2.0))
            )
        if self.account_loader is None:
            raise RuntimeError("Gate needs account_loader: a callable returning the account id")
        app.extensions["tiergate"] = self

    # -- checks usable anywhere (views, templates, background jobs) ---------------------------

    def is_enabled(self, account_id: str, feature: str) -> bool:
        """Whether the account's tier includes `feature`, from a cache at most cache_ttl old."""
        entry = self._cache.get(account_id)
        if entry is not None and entry[0] > self._now():
            return feature in entry[1]
        fetched = self._refresh(account_id)
        if fetched is None:
            return feature in self.fail_open
        return feature in fetched[0]

    def entitlements(self, account_id: str, *, fresh: bool = False) -> Entitlements | None:
        """The account's entitlements (cached unless `fresh`); None when tiergate is unreachable."""
        entry = self._cache.get(account_id)
        if not fresh and entry is not None and entry[0] > self._now():
            return entry[2]
        fetched = self._refresh(account_id)
        return None if fetched is None else fetched[1]

    def check(self, account_id: str, feature: str, quantity: int = 1) -> GateResult:
        """Ask tiergate (never the cache) whether `quantity` units would be allowed."""
        return self._call(feature, self._client().check, account_id, feature, quantity)[0]

    def consume(
        self, account_id: str, feature: str, quantity: int = 1, idempotency_key: str | None = None
    ) -> GateResult:
        """Use units of a metered feature; tiergate decides, with the fail policy as fallback."""
        return self._consume(account_id, feature, quantity, idempotency_key)[0]

    def release(self, account_id: str, feature: str, quantity: int = 1) -> GateResult | None:
        """Give back gauge units; None (and a logged error) when tiergate could not be told."""
        release = functools.partial(self._guarded, self._client().release)
        return self._give_back(release, account_id, feature, quantity)

    def invalidate(self, account_id: str | None = None) -> None:
        """Forget cached entitlements of one account (after an upgrade), or of all."""
        with self._lock:
            if account_id is None:
                self._cache.clear()
                refreshes: Iterable[_Refreshes] = self._refreshes.values()
            else:
                self._cache.pop(account_id, None)
                one = self._refreshes.get(account_id)
                refreshes = [] if one is None else [one]
            for refresh in refreshes:  # a fetch in flight now may predate the change
                refresh.generation += 1

    # -- decorators ---------------------------------------------------------------------------

    def requires(self, feature: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Let the view run only when the current account's tier includes `feature`."""

        def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(view)
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                account_id = self._current_account()
                if self.is_enabled(account_id, feature):
                    return view(*args, **kwargs)
                if self._now() < self._down_until:
                    return self.deny(GateResult(False, feature, reason=UNAVAILABLE))
                # Rare path: ask tiergate for the reason and the upgrade offer.
                result = self.check(account_id, feature)
                self.invalidate(account_id)  # stale (just upgraded), or may be upgraded now
                if result.allowed:
                    return view(*args, **kwargs)
                return self.deny(result)

            return wrapped

        return decorator

    def consumes(
        self, feature: str, quantity: int | Callable[[], int] = 1
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Consume units before the view runs; give them back if the view raises, or, when
        tiergate's answer was lost and the view did not run, once tiergate answers again."""

        def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(view)
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                account_id = self._current_account()
                n = quantity() if callable(quantity) else quantity
                key = uuid.uuid4().hex  # ours, so that a lost answer can be asked for again
                result, lost = self._consume(account_id, feature, n, key)
                if not result.allowed:
                    if lost:
                        self._remember(_LostConsume(account_id, feature, n, key))
                    return self.deny(result)
                g.setdefault("tiergate_results", {})[feature] = result
                try:
                    return view(*args, **kwargs)
                except Exception:
                    if result.reason != UNAVAILABLE:  # units were really taken
                        self.release(account_id, feature, n)
                    elif lost:
                        self._remember(_LostConsume(account_id, feature, n, key))
                    raise

            return wrapped

        return decorator

    def deny(self, result: GateResult) -> BaseResponse | tuple[Any, int]:
        """The response for a denial: JSON for API requests, a redirect or a page for HTML."""
        unavailable = result.reason == UNAVAILABLE
        status = 503 if unavailable else 403 if result.reason == REFUSED else 402
        message = describe(result)
        if self._wants_json():
            body = {
                "error": {"code": result.reason or "denied", "message": message, "details": None},
                "allowed": False,
                "feature": result.feature,
                "reason": result.reason,
                "limit": result.limit,
                "used": result.used,
                "remaining": result.remaining,
                "offer": result.offer,
            }
            return jsonify(body), status
        target = self._upgrade_target(result)
        if target is not None:
            return redirect(target, 303)
        title = (
            "Temporarily unavailable"
            if unavailable
            else "Not available"
            if result.reason == REFUSED
            else "Upgrade needed"
        )
        context = {"title": title, "message": message, "offer": result.offer, "result": result}
        if self.denied_template:
            return render_template(self.denied_template, **context), status
        return render_template_string(DENIED_PAGE, **context), status

    # -- internals ----------------------------------------------------------------------------

    def billing_link(self, account_id: str, return_url: str | None = None) -> str:
        """A fresh signed link to the account's billing pages (TiergateClient.billing_link).
        The account's cached entitlements are dropped: whatever the customer buys there shows
        the moment they come back, not after the cache TTL."""
        self.invalidate(account_id)
        return self._client().billing_link(account_id, return_url)

    def _client(self) -> TiergateClient:
        if self.client is None:
            raise RuntimeError("Gate is not initialised: call gate.init_app(app) first")
        return self.client

    def _current_account(self) -> str:
        account_id = self.account_loader() if self.account_loader else None
        if not account_id:
            abort(401)
        return account_id

    def _refresh(self, account_id: str) -> tuple[frozenset[str], Entitlements | None] | None:
        """Fetch and cache the account's entitlements: (enabled features, entitlements), or
        (nothing, None) when tiergate refused, or None when it could not be reached."""
        with self._fetching(account_id) as (refresh, generation):
            try:
                ents = self._guarded(self._client().entitlements, account_id)
            except TiergateUnavailable:
                return None
            except TiergateError as exc:
                self._refused(exc, "entitlements", account_id)
                with self._lock:
                    self._cache.pop(account_id, None)  # nor is the old entry served
                return frozenset(), None  # closed: nothing is enabled for a refused question
            enabled = frozenset(fid for fid, f in ents.features.items() if f.enabled)
            with self._lock:
                self._cache.pop(account_id, None)  # re-insert at the end: dict order = age
                if refresh.generation == generation:  # else invalidated while in flight
                    self._cache[account_id] = (self._now() + self.cache_ttl, enabled, ents)
                    if len(self._cache) > self.max_cached_accounts:
                        self._evict()
            return enabled, ents

    @contextlib.contextmanager
    def _fetching(self, account_id: str) -> Iterator[tuple[_Refreshes, int]]:
        """Register a fetch of the account's entitlements while it runs, so that it sees an
        invalidate() made meanwhile (its generation then differs from the one yielded)."""
        with self._lock:
            refresh = self._refreshes.setdefault(account_id, _Refreshes())
            refresh.in_flight += 1
            generation = refresh.generation
        try:
            yield refresh, generation
        finally:
            with self._lock:
                refresh.in_flight -= 1
                if refresh.in_flight == 0:
                    del self._refreshes[account_id]

    def _evict(self) -> None:
        now = self._now()
        for key in [k for k, v in self._cache.items() if v[0] <= now]:
            del self._cache[key]
        while len(self._cache) > self.max_cached_accounts:
            del self._cache[next(iter(self._cache))]

    def _call(
        self, feature: str, fn: Callable[..., GateResult], *args: Any
    ) -> tuple[GateResult, bool]:
        """tiergate's answer, or the fail policy's; and True when the request was sent but no
        answer came back (tiergate may have acted on it)."""
        try:
            result: GateResult = self._guarded(fn, *args)
            return result, False
        except TiergateUnavailable as exc:
            lost = not isinstance(exc, _CoolingDown)
            return GateResult(feature in self.fail_open, feature, reason=UNAVAILABLE), lost
        except TiergateError as exc:
            self._refused(exc, f"{feature} check", *args[:1])
            return GateResult(False, feature, reason=REFUSED), False

    def _consume(
        self, account_id: str, feature: str, quantity: int, idempotency_key: str | None
    ) -> tuple[GateResult, bool]:
        """Gate.consume, and True when its answer was lost (tiergate may have counted it)."""
        answer = self._call(
            feature, self._client().consume, account_id, feature, quantity, idempotency_key
        )
        self.invalidate(account_id)  # the cached usage figures are now out of date
        return answer

    def _remember(self, lost: _LostConsume) -> None:
        """Keep a lost consume (its view did not run) to settle once tiergate answers again."""
        with self._lock:
            if len(self._unconfirmed) < MAX_UNCONFIRMED:
                self._unconfirmed.append(lost)
                return
        log.error(
            "could not settle a lost consume of %d %s for account %s: too many pending; "
            "resync with set_usage",
            lost.quantity,
            lost.feature,
            lost.account_id,
        )

    def _settle(self) -> None:
        """Ask tiergate again for lost consumes, with their own keys (so nothing counts twice),
        and give back the units of each it did count: their views never ran."""
        with self._lock:  # each lost consume is taken by one thread: released once
            batch = self._unconfirmed[:SETTLE_BATCH]
            del self._unconfirmed[:SETTLE_BATCH]
        client = self._client()
        for i, lost in enumerate(batch):
            try:
                answer = client.consume(
                    lost.account_id, lost.feature, lost.quantity, lost.idempotency_key
                )
            except TiergateUnavailable:  # down again: the rest waits for the next success
                with self._lock:
                    self._unconfirmed[:0] = batch[i:]
                return
            except TiergateError as exc:
                if exc.status == 409:  # the first request is still being processed
                    self._remember(lost)
                else:
                    self._refused(exc, f"{lost.feature} consume", lost.account_id)
                continue
            if not answer.allowed:  # tiergate counted nothing
                continue
            try:
                self._give_back(client.release, lost.account_id, lost.feature, lost.quantity)
            except TiergateError as exc:  # logged: this runs inside another request
                self._refused(exc, f"{lost.feature} release", lost.account_id)

    def _give_back(
        self, release: Callable[..., GateResult], account_id: str, feature: str, quantity: int
    ) -> GateResult | None:
        """release(), with the cache dropped and a failure logged (None) rather than raised."""
        self.invalidate(account_id)
        try:
            return release(account_id, feature, quantity)
        except TiergateUnavailable as exc:
            log.error(
                "could not release %d %s for account %s (%s): resync with set_usage",
                quantity,
                feature,
                account_id,
                exc.message,
            )
            return None

    def _refused(self, exc: TiergateError, what: str, *about: Any) -> None:
        """Log that tiergate answered but refused the question (a bug or a setup problem; the
        caller answers closed). It says nothing about tiergate being down."""
        log.error(
            "tiergate refused the %s request for %s: %s (%s)",
            what,
            ", ".join(str(a) for a in about) or "-",
            exc.message,
            exc.code,
        )

    def _guarded(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call tiergate unless it failed moments ago; remember and report failures."""
        if self._now() < self._down_until:
            self._suppressed += 1
            raise _CoolingDown("tiergate failed moments ago; not retrying yet")
        try:
            result = fn(*args)
        except TiergateUnavailable as exc:
            self._down_until = self._now() + self.failure_cooldown
            self._warn(exc)
            raise
        if self._unconfirmed:  # tiergate answers again: settle what an outage left open
            self._settle()
        return result

    def _warn(self, exc: TiergateUnavailable) -> None:
        now = self._now()
        if now - self._last_warning < WARN_EVERY:
            self._suppressed += 1
            return
        open_ = ", ".join(sorted(self.fail_open)) or "none"
        log.warning(
            "tiergate is unreachable (%s); failing open for: %s; closed for everything else "
            "(%d failures since the last warning)",
            exc.message,
            open_,
            self._suppressed,
        )
        self._last_warning, self._suppressed = now, 0

    def _wants_json(self) -> bool:
        if self.api_prefix and request.path.startswith(self.api_prefix):
            return True
        best = request.accept_mimetypes.best_match(["text/html", "application/json"])
        return best == "application/json"

    def _upgrade_target(self, result: GateResult) -> str | None:
        offer = result.offer or {}
        if result.reason == UNAVAILABLE or not offer.get("prompt"):
            return None
        if callable(self.upgrade_url):
            return self.upgrade_url(result)
        if self.upgrade_url:  # its own query (e.g. ?src=gate) is kept
            parts = urlsplit(self.upgrade_url)
            query = [
                *parse_qsl(parts.query, keep_blank_values=True),
                ("feature", result.feature),
                ("offer", offer.get("id") or ""),
            ]
            return urlunsplit(parts._replace(query=urlencode(query)))
        return offer.get("accept_url")


def describe(result: GateResult) -> str:
    """Plain sentences saying why the request was refused and what the upgrade costs."""
    if result.reason == UNAVAILABLE:
        return "Feature checks are temporarily unavailable; please try again in a moment."
    if result.reason == REFUSED:
        return "This could not be checked for your account. Please contact support."
    offer = result.offer or {}
    if isinstance(offer.get("reason"), str):  # the offer's words, e.g. "Free includes 3..."
        text = str(offer["reason"]).rstrip(".") + "."
    elif result.message:  # tiergate's words for this answer (e.g. the account's own limit)
        text = result.message.rstrip(".") + "."
    elif result.reason == "limit_reached" and result.limit is not None:
        text = f"You have used {result.used} of {result.limit} {result.feature} on your plan."
    elif result.reason == "no_access":
        text = "Your account has no active plan."
    else:
        text = f"Your plan does not include {result.feature}."
    to = _as_dict(offer.get("to"))
    shown = _as_dict(offer.get("display"))
    if to.get("name") and shown.get("new_recurring"):
        text += f" Upgrade to {to['name']}: {shown['new_recurring']}"
        if offer.get("trial_end") and offer.get("amount_due_today") == 0:
            text += ", starting with a free trial (nothing due today)"
        elif shown.get("amount_due_today"):
            text += f", {shown['amount_due_today']} due today"
        text += "."
    return text
