"""API keys: format, hashing, verification cache, revocation, last-used throttling, scopes."""

from __future__ import annotations

import hashlib
import re

import pytest
from sqlalchemy import event, func, select, update

from gating import apikeys
from gating.models import ApiKey
from tiergate.db import get_db
from tiergate.exceptions import Conflict, InvalidRequest, NotFound, Unauthorized

pytest_plugins = ["tests.gating.api_fixtures"]


@pytest.fixture
def db(app):
    return get_db(app)


def _verify(db, clock, key, cache_seconds=10):
    return apikeys.verify_key(db.sessionmaker, clock, key, cache_seconds=cache_seconds)


def _row(db, prefix):
    with db.sessionmaker() as s:
        return s.scalar(select(ApiKey).where(ApiKey.prefix == prefix))


def test_created_key_is_tg_prefix_secret_and_only_its_sha256_is_stored(db, clock):
    with db.session() as s:
        row, key = apikeys.create_key(s, clock, name="web app", scopes=["accounts", "gate"])
    match = re.fullmatch(r"tg_([a-z0-9]{8})_([A-Za-z0-9_-]{32,})", key)
    assert match
    stored = _row(db, match.group(1))
    assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in (stored.key_hash, stored.prefix, stored.name)
    assert stored.scopes == "gate accounts"
    assert stored.created_at == clock.now() and stored.revoked_at is None


def test_prefixes_are_unique_across_many_keys(db, clock):
    with db.session() as s:
        prefixes = {
            apikeys.create_key(s, clock, name="k", scopes=["gate"])[0].prefix for _ in range(50)
        }
    assert len(prefixes) == 50


@pytest.mark.parametrize(
    ("name", "scopes", "message"),
    [
        ("ok", ["gate", "root"], "scopes: unknown scope 'root'; choose from gate, accounts, admin"),
        ("ok", [], "scopes: give at least one of gate, accounts, admin"),
        ("  ", ["gate"], "name: give the key a name of 1 to 200 characters"),
        ("x" * 201, ["gate"], "name: give the key a name of 1 to 200 characters"),
    ],
)
def test_create_rejects_bad_input_and_stores_nothing(db, clock, name, scopes, message):
    with pytest.raises(InvalidRequest) as info, db.session() as s:
        apikeys.create_key(s, clock, name=name, scopes=scopes)
    assert info.value.message == message
    with db.sessionmaker() as s:
        assert s.scalar(select(func.count()).select_from(ApiKey)) == 0


def test_verify_returns_the_identity_with_its_scopes(db, clock, make_api_key):
    key = make_api_key("gate", "accounts", name="billing job")
    identity = _verify(db, clock, key)
    assert identity.name == "billing job"
    assert identity.scopes == {"gate", "accounts"}
    assert identity.allows("gate") and not identity.allows("admin")


def test_admin_scope_allows_every_scope(db, clock, make_api_key):
    identity = _verify(db, clock, make_api_key("admin"))
    assert all(identity.allows(scope) for scope in apikeys.SCOPES)


def test_wrong_secret_with_a_real_prefix_is_unauthorized(db, clock, make_api_key):
    key = make_api_key("gate")
    forged = key[:12] + ("A" if key[12] != "A" else "B") + key[13:]
    with pytest.raises(Unauthorized) as info:
        _verify(db, clock, forged)
    assert "not valid" in info.value.message


@pytest.mark.parametrize("raw", ["", "tg_short_x", "sk_live_abc", "tg_ABCDEFGH_" + "s" * 40])
def test_malformed_key_is_unauthorized_without_a_query(db, clock, raw):
    with pytest.raises(Unauthorized) as info:
        _verify(db, clock, raw)
    assert "malformed" in info.value.message


def test_revoked_key_is_rejected_at_once_in_this_process(db, clock, make_api_key):
    key = make_api_key("gate")
    _verify(db, clock, key)  # now cached
    with db.session() as s:
        apikeys.revoke_key(s, clock, key[3:11])
    with pytest.raises(Unauthorized) as info:
        _verify(db, clock, key)
    assert "revoked" in info.value.message


def test_revocation_by_another_process_takes_effect_within_the_cache_ttl(
    db,
    clock,
    make_api_key,
):
    key = make_api_key("gate")
    _verify(db, clock, key)
    with db.session() as s:  # as the CLI in another process would: no cache invalidation here
        s.execute(update(ApiKey).values(revoked_at=clock.now()))
    clock.advance(seconds=9)
    assert _verify(db, clock, key).prefix == key[3:11]
    clock.advance(seconds=1)
    with pytest.raises(Unauthorized):
        _verify(db, clock, key)


def test_cached_key_is_verified_without_touching_the_database(db, clock, make_api_key):
    key = make_api_key("gate")
    _verify(db, clock, key)
    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        for _ in range(20):
            clock.advance(seconds=0.1)
            _verify(db, clock, key)
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert statements == []


def test_last_used_at_is_written_at_most_once_a_minute(db, clock, make_api_key):
    key = make_api_key("gate")
    first = clock.now()
    _verify(db, clock, key, cache_seconds=0)
    assert _row(db, key[3:11]).last_used_at == first
    clock.advance(seconds=59)
    _verify(db, clock, key, cache_seconds=0)
    assert _row(db, key[3:11]).last_used_at == first
    clock.advance(seconds=1)
    _verify(db, clock, key, cache_seconds=0)
    assert _row(db, key[3:11]).last_used_at == clock.now()


def test_revoke_unknown_prefix_is_not_found(db, clock):
    with pytest.raises(NotFound) as info, db.session() as s:
        apikeys.revoke_key(s, clock, "zzzzzzzz")
    assert info.value.message == "API key with prefix 'zzzzzzzz' does not exist"


def test_revoke_twice_is_a_conflict_and_keeps_the_first_date(db, clock, make_api_key):
    key = make_api_key("gate")
    with db.session() as s:
        apikeys.revoke_key(s, clock, key)  # the full key is accepted too
    first = _row(db, key[3:11]).revoked_at
    clock.advance(days=1)
    with pytest.raises(Conflict), db.session() as s:
        apikeys.revoke_key(s, clock, key[3:11])
    assert _row(db, key[3:11]).revoked_at == first


def test_list_keys_shows_newest_first_without_secrets(db, clock, make_api_key):
    make_api_key("gate", name="old")
    clock.advance(minutes=1)
    make_api_key("admin", name="new")
    with db.sessionmaker() as s:
        assert [k.name for k in apikeys.list_keys(s)] == ["new", "old"]
