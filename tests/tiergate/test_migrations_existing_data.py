"""Migrations 0008 (catalog_versions.content_hash no longer unique), 0009 and 0010 (override
ids never given twice) on a database that already holds data: a subscription pinned to a
published catalog version, an account override."""

from __future__ import annotations

from sqlalchemy import text

from tests.tiergate.test_migrations import _fresh_database
from tiergate.db import make_engine
from tiergate.migrate import upgrade


def test_0008_upgrades_a_database_with_subscribers(database_url, tmp_path):  # type: ignore[no-untyped-def]
    """An operator running tiergate on SQLite (the default) with one subscriber runs
    `tiergate db upgrade`: 0008 and 0009 apply (0008 rebuilds catalog_versions, which
    subscriptions and offers reference: the references are checked afterwards)."""
    url, drop = _fresh_database(database_url, tmp_path)
    try:
        upgrade(url, "0007")
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO catalog_versions (version, content_hash, source, document, author,"
                    " note, published_at) VALUES (1, :h, '', '{}', 'a', 'n', '2026-11-01 00:00:00')"
                ),
                {"h": "ab" * 32},
            )
            conn.execute(
                text(
                    "INSERT INTO accounts (id, metadata, created_at, updated_at) VALUES "
                    "('acme', '{}', '2026-11-01 00:00:00', '2026-11-01 00:00:00')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO subscriptions (account_id, tier_id, interval, currency, status,"
                    " catalog_version, current_period_start, current_period_end,"
                    " cancel_at_period_end, provider, created_at, updated_at) VALUES ('acme',"
                    " 'pro', 'month', 'usd', 'active', 1, '2026-11-01 00:00:00',"
                    " '2026-12-01 00:00:00', false, 'manual', '2026-11-01 00:00:00',"
                    " '2026-11-01 00:00:00')"
                )
            )
        engine.dispose()
        upgrade(url)
        engine = make_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM subscriptions")).scalar() == 1
            assert conn.execute(text("SELECT count(*) FROM catalog_versions")).scalar() == 1
        engine.dispose()
    finally:
        drop()


def test_0010_keeps_overrides_and_never_gives_a_removed_id_again(database_url, tmp_path):  # type: ignore[no-untyped-def]
    """An operator with an account override upgrades: the override keeps its id and its
    fields; once it is removed, the next override gets an id of its own (on SQLite 0010
    rebuilds the table with AUTOINCREMENT, PostgreSQL's sequence never gives an id twice)."""
    new_override = text(
        "INSERT INTO overrides (account_id, kind, feature_id, reason, created_at) VALUES"
        " ('acme', 'feature', :feature, 'pilot', '2026-11-01 00:00:00') RETURNING id"
    )
    url, drop = _fresh_database(database_url, tmp_path)
    try:
        upgrade(url, "0009")
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO accounts (id, metadata, created_at, updated_at) VALUES "
                    "('acme', '{}', '2026-11-01 00:00:00', '2026-11-01 00:00:00')"
                )
            )
            kept = conn.execute(new_override, {"feature": "sso"}).scalar_one()
        engine.dispose()
        upgrade(url)
        engine = make_engine(url)
        with engine.begin() as conn:
            rows = conn.execute(text("SELECT id, account_id, feature_id FROM overrides")).all()
            assert [tuple(row) for row in rows] == [(kept, "acme", "sso")]
            conn.execute(text("DELETE FROM overrides WHERE id = :id"), {"id": kept})
            added = conn.execute(new_override, {"feature": "pdf_export"}).scalar_one()
        assert added > kept
        engine.dispose()
    finally:
        drop()
