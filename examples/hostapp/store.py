"""Trackly's own data: projects per workspace, in a small SQLite file (stdlib sqlite3)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app, g

SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_projects_account ON projects (account_id);
CREATE TABLE IF NOT EXISTS notices (
    id TEXT PRIMARY KEY,  -- tiergate's notification id: a notification delivered twice is one
    account_id TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""


def init_app(app: Flask) -> None:
    with sqlite3.connect(app.config["DATABASE"]) as conn:
        conn.executescript(SCHEMA)
    app.teardown_appcontext(_close)


def db() -> sqlite3.Connection:
    if "trackly_db" not in g:
        g.trackly_db = sqlite3.connect(current_app.config["DATABASE"])
        g.trackly_db.row_factory = sqlite3.Row
    conn: sqlite3.Connection = g.trackly_db
    return conn


def _close(_exc: BaseException | None) -> None:
    conn = g.pop("trackly_db", None)
    if conn is not None:
        conn.close()


def list_projects(account_id: str) -> list[dict[str, Any]]:
    """The workspace's projects, oldest first."""
    rows = db().execute(
        "SELECT id, name, created_at FROM projects WHERE account_id = ? ORDER BY id", (account_id,)
    )
    return [dict(row) for row in rows]


def get_project(account_id: str, project_id: int) -> dict[str, Any] | None:
    row = (
        db()
        .execute(
            "SELECT id, name, created_at FROM projects WHERE account_id = ? AND id = ?",
            (account_id, project_id),
        )
        .fetchone()
    )
    return dict(row) if row else None


def add_project(account_id: str, name: str) -> dict[str, Any]:
    """Store a project (the caller has already consumed a `projects` unit at tiergate)."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    with db() as conn:
        cursor = conn.execute(
            "INSERT INTO projects (account_id, name, created_at) VALUES (?, ?, ?)",
            (account_id, name, now),
        )
    return {"id": cursor.lastrowid, "name": name, "created_at": now}


def delete_project(account_id: str, project_id: int) -> bool:
    """Delete the project; False when the workspace has no such project."""
    with db() as conn:
        cursor = conn.execute(
            "DELETE FROM projects WHERE account_id = ? AND id = ?", (account_id, project_id)
        )
    return cursor.rowcount == 1


def add_notice(notice_id: str, account_id: str, text: str) -> bool:
    """Keep a notice from tiergate once (False: this notification was already received)."""
    conn = db()
    cursor = conn.execute(
        "INSERT OR IGNORE INTO notices (id, account_id, text, created_at) VALUES (?, ?, ?, ?)",
        (notice_id, account_id, text, datetime.now(UTC).isoformat(timespec="seconds")),
    )
    conn.commit()
    return cursor.rowcount == 1


def notices(account_id: str, limit: int = 3) -> list[str]:
    """The workspace's newest notices, newest first."""
    rows = db().execute(
        "SELECT text FROM notices WHERE account_id = ? ORDER BY created_at DESC, rowid DESC "
        "LIMIT ?",
        (account_id, limit),
    )
    return [row["text"] for row in rows]
