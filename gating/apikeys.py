"""Server-to-server API keys: create (shown once), verify (hash + tiny cache), revoke, scopes.

A key reads `tg_<prefix>_<secret>`: the 8-character prefix is stored in clear, unique and used
to find the row; the database keeps only the SHA-256 of the whole key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps
from typing import Any

from flask import current_app, g, request
from flask_smorest import Blueprint
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session
from werkzeug.exceptions import UnsupportedMediaType

from gating.models import ApiKey
from tiergate.clock import Clock
from tiergate.exceptions import Conflict, Forbidden, InvalidRequest, NotFound, Unauthorized

SCOPES = ("gate", "accounts", "admin")
PREFIX_LENGTH = 8
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_KEY_PATTERN = re.compile(r"^tg_([a-z0-9]{8})_([A-Za-z0-9_-]{32,128})\Z")
LAST_USED_RESOLUTION = timedelta(minutes=1)
DEFAULT_CACHE_SECONDS = 10


@dataclass(frozen=True)
class KeyIdentity:
    """Who is calling: the verified key's id, prefix, name and scopes."""

    id: int
    prefix: str
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def hash_key(raw_key: str) -> str:
    """The SHA-256 hex digest stored for a key."""
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def _clean_scopes(scopes: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(scopes))
    if not chosen:
        raise InvalidRequest(f"scopes: give at least one of {', '.join(SCOPES)}")
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown:
        raise InvalidRequest(
            f"scopes: unknown scope {unknown[0]!r}; choose from {', '.join(SCOPES)}"
        )
    return [s for s in SCOPES if s in chosen]


def create_key(
    session: Session, clock: Clock, *, name: str, scopes: Iterable[str]
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the full key, which is never retrievable again."""
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise InvalidRequest("name: give the key a name of 1 to 200 characters")
    chosen = _clean_scopes(scopes)
    while True:
        prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
        if session.scalar(select(ApiKey.id).where(ApiKey.prefix == prefix)) is None:
            break
    raw_key = f"tg_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(
        prefix=prefix,
        key_hash=hash_key(raw_key),
        name=name,
        scopes=" ".join(chosen),
        created_at=clock.now(),
    )
    session.add(row)
    session.flush()
    return row, raw_key


def list_keys(session: Session) -> list[ApiKey]:
    """Every key, newest first (revoked ones included)."""
    return list(
        session.scalars(select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id.desc()))
    )


def revoke_key(session: Session, clock: Clock, prefix: str) -> ApiKey:
    """Revoke the key with this prefix (accepts the full key too)."""
    match = _KEY_PATTERN.match(prefix)
    prefix = match.group(1) if match else prefix.removeprefix("tg_")
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None:
        raise NotFound(f"API key with prefix {prefix!r} does not exist")
    if row.revoked_at is not None:
        raise Conflict(f"API key {prefix!r} was already revoked at {row.revoked_at.isoformat()}")
    row.revoked_at = clock.now()
    _forget(row.key_hash)
    return row


# A tiny per-process LRU of verified key hash -> (identity, revoked, checked at, last used), so
# the hot check path does not query the database for the key on every request. Consequence:
# a key revoked by another process (the CLI, another worker) stops working within the cache TTL
# (API_KEY_CACHE_SECONDS, default 10 s); revoking in this process takes effect immediately.
@dataclass
class _Cached:
    identity: KeyIdentity
    revoked: bool
    checked_at: datetime
    last_used_at: datetime | None


class _KeyCache:
    def __init__(self, size: int = 1024) -> None:
        self._entries: OrderedDict[str, _Cached] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def get(self, key_hash: str) -> _Cached | None:
        with self._lock:
            entry = self._entries.get(key_hash)
            if entry is not None:
                self._entries.move_to_end(key_hash)
            return entry

    def put(self, key_hash: str, entry: _Cached) -> None:
        with self._lock:
            self._entries[key_hash] = entry
            self._entries.move_to_end(key_hash)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def discard(self, key_hash: str) -> None:
        with self._lock:
            self._entries.pop(key_hash, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_cache = _KeyCache()


def _forget(key_hash: str) -> None:
    _cache.discard(key_hash)


def clear_cache() -> None:
    """Drop every cached key (tests, or after bulk revocation)."""
    _cache.clear()


def verify_key(
    sessionmaker: Callable[[], Any], clock: Clock, raw_key: str, *, cache_seconds: float
) -> KeyIdentity:
    """The identity behind a raw key, or Unauthorized; touches last_used_at once a minute."""
    match = _KEY_PATTERN.match(raw_key)
    if not match:
        raise Unauthorized(
            "The API key is malformed: expected 'tg_' + 8 characters + '_' + the secret."
        )
    key_hash = hash_key(raw_key)
    now = clock.now()
    entry = _cache.get(key_hash)
    if entry is None or now - entry.checked_at >= timedelta(seconds=cache_seconds):
        entry = _load(sessionmaker, match.group(1), key_hash, now)
        if entry is None:
            _cache.discard(key_hash)
            raise Unauthorized("The API key is not valid: no key with that prefix and secret.")
        _cache.put(key_hash, entry)
    if entry.revoked:
        raise Unauthorized(f"The API key {entry.identity.prefix!r} has been revoked.")
    if entry.last_used_at is None or now - entry.last_used_at >= LAST_USED_RESOLUTION:
        _touch(sessionmaker, entry.identity.id, now)
        entry.last_used_at = now
    return entry.identity


def _load(
    sessionmaker: Callable[[], Any], prefix: str, key_hash: str, now: datetime
) -> _Cached | None:
    # A separate short session: the request's own session stays untouched until the view runs
    # (on SQLite a stale read snapshot could not later be upgraded to a write).
    with sessionmaker() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
        if row is None or not hmac.compare_digest(row.key_hash, key_hash):
            return None
        identity = KeyIdentity(row.id, row.prefix, row.name, frozenset(row.scopes.split()))
        return _Cached(identity, row.revoked_at is not None, now, row.last_used_at)


def _touch(sessionmaker: Callable[[], Any], key_id: int, now: datetime) -> None:
    # Conditional, so concurrent workers write last_used_at at most once a minute per key.
    with sessionmaker() as session, session.begin():
        session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .where(
                or_(
                    ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= now - LAST_USED_RESOLUTION
                )
            )
            .values(last_used_at=now)
        )


def _bearer_token() -> str:
    header = request.headers.get("Authorization")
    if not header:
        raise Unauthorized("Missing API key: send it as the header 'Authorization: Bearer tg_...'.")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "Malformed Authorization header: expected 'Authorization: Bearer tg_...'."
        )
    return token.strip()


def _route_label() -> str:
    rule = request.url_rule.rule if request.url_rule else request.path
    return request.method + " " + re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)


def current_key() -> KeyIdentity:
    """The key that authenticated the current request."""
    return g.api_key


def authenticate(*scopes: str) -> KeyIdentity:
    """Verify the request's bearer key and that it holds one of `scopes` (admin holds all)."""
    from tiergate.db import get_db
    from tiergate.extensions import get_clock

    identity = verify_key(
        get_db().sessionmaker,
        get_clock(),
        _bearer_token(),
        cache_seconds=current_app.config.get("API_KEY_CACHE_SECONDS", DEFAULT_CACHE_SECONDS),
    )
    if not any(identity.allows(scope) for scope in scopes):
        held = ", ".join(f"'{s}'" for s in SCOPES if s in identity.scopes)
        noun = "scope" if len(identity.scopes) == 1 else "scopes"
        needed = " or ".join(f"'{s}'" for s in scopes)
        raise Forbidden(
            f"this key has {noun} {held}; {_route_label()} needs {needed}",
            details={"key_scopes": sorted(identity.scopes), "required_scopes": list(scopes)},
        )
    g.api_key = identity
    return identity


def _require_json_body() -> None:
    has_body = request.method in ("POST", "PUT", "PATCH") and request.get_data(cache=True)
    if has_body and not request.is_json:
        raise UnsupportedMediaType(
            f"Send the request body as JSON with 'Content-Type: application/json' "
            f"(got {request.mimetype or 'no Content-Type'!r})."
        )


def require_scope(*scopes: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a view (outermost, under @bp.route): bearer key with one of `scopes`, JSON body."""
    for scope in scopes:
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}")

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            authenticate(*scopes)
            _require_json_body()
            return view(*args, **kwargs)

        documented = Blueprint.doc(
            security=[{"bearerAuth": []}], **{"x-required-scopes": list(scopes)}
        )
        return documented(wrapper)

    return decorator
