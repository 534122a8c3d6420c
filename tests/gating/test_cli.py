"""`tiergate apikey create|list|revoke` through Flask's CLI runner."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from gating import apikeys
from gating.cli import apikey_group
from gating.models import ApiKey
from tiergate.db import get_db


def _invoke(app, *args):
    return app.test_cli_runner().invoke(apikey_group, list(args))


def _count(app):
    with get_db(app).sessionmaker() as s:
        return s.scalar(select(func.count()).select_from(ApiKey))


def test_create_prints_the_key_once_and_it_verifies_with_the_scopes(app, clock):
    result = _invoke(app, "create", "--name", "web prod", "--scope", "gate", "--scope", "accounts")
    assert result.exit_code == 0, result.output
    key = re.search(r"^(tg_[a-z0-9]{8}_\S{32,})$", result.output, re.M).group(1)
    assert "cannot be shown again" in result.output
    identity = apikeys.verify_key(get_db(app).sessionmaker, clock, key, cache_seconds=0)
    assert identity.name == "web prod" and identity.scopes == {"gate", "accounts"}


def test_create_without_scope_or_with_unknown_scope_fails_and_stores_nothing(app):
    missing = _invoke(app, "create", "--name", "x")
    unknown = _invoke(app, "create", "--name", "x", "--scope", "root")
    assert missing.exit_code == 2 and "--scope" in missing.output
    assert unknown.exit_code == 2 and "'root' is not one of 'gate', 'accounts', 'admin'" in (
        unknown.output
    )
    assert _count(app) == 0


def test_list_shows_prefix_scopes_and_status_but_never_the_secret(app):
    key = _invoke(app, "create", "--name", "ci", "--scope", "admin").output.strip().splitlines()[-1]
    _invoke(app, "revoke", key[3:11])
    result = _invoke(app, "list")
    assert result.exit_code == 0
    line = next(row for row in result.output.splitlines() if row.startswith(key[3:11]))
    assert "admin" in line and "revoked" in line and line.endswith("ci")
    assert key[12:] not in result.output


def test_list_without_keys_says_how_to_create_one(app):
    assert "tiergate apikey create" in _invoke(app, "list").output


def test_revoke_stops_the_key_at_once(app, clock):
    key = _invoke(app, "create", "--name", "old", "--scope", "gate").output.strip().splitlines()[-1]
    result = _invoke(app, "revoke", key[3:11])
    assert result.exit_code == 0 and f"Revoked API key '{key[3:11]}' (old)." in result.output
    with get_db(app).sessionmaker() as s:
        assert s.scalar(select(ApiKey.revoked_at)) == clock.now()


def test_revoke_unknown_prefix_fails_with_a_clear_message(app):
    result = _invoke(app, "revoke", "nope1234")
    assert result.exit_code == 1
    assert "API key with prefix 'nope1234' does not exist" in result.output
