"""tiergate/migrate.py: `tiergate db upgrade` says truthfully where the database is."""

from __future__ import annotations

import sqlite3

import tiergate.migrate as migrate_module
from tiergate.migrate import db_group


def head_of(path) -> str:
    with sqlite3.connect(path) as conn:
        return conn.execute("select version_num from alembic_version").fetchone()[0]


def test_upgrade_prints_the_revision_the_database_is_really_at(app, tmp_path):
    path = tmp_path / "scratch.sqlite3"
    app.config["DATABASE_URL"] = f"sqlite:///{path}"
    result = app.test_cli_runner().invoke(db_group, ["upgrade"])
    assert result.exit_code == 0, result.output
    assert result.output == f"Database at sqlite:///{path} is at revision {head_of(path)}.\n"


def test_upgrade_to_an_older_revision_is_refused_and_changes_nothing(app, tmp_path):
    path = tmp_path / "scratch.sqlite3"
    app.config["DATABASE_URL"] = f"sqlite:///{path}"
    runner = app.test_cli_runner()
    assert runner.invoke(db_group, ["upgrade"]).exit_code == 0
    head = head_of(path)
    result = runner.invoke(db_group, ["upgrade", "0001"])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: The database at sqlite:///{path} is at revision {head}, newer than 0001: "
        "`db upgrade` never downgrades. Nothing was changed.\n"
    )
    assert head_of(path) == head


def test_upgrade_to_the_current_revision_is_a_no_op(app, tmp_path):
    path = tmp_path / "scratch.sqlite3"
    app.config["DATABASE_URL"] = f"sqlite:///{path}"
    runner = app.test_cli_runner()
    assert runner.invoke(db_group, ["upgrade", "0001"]).exit_code == 0
    result = runner.invoke(db_group, ["upgrade", "0001"])
    assert result.exit_code == 0
    assert result.output.endswith("is at revision 0001.\n")


def test_upgrade_never_prints_the_database_password(app, monkeypatch):
    monkeypatch.setattr(migrate_module.command, "upgrade", lambda config, revision: None)
    app.config["DATABASE_URL"] = "postgresql://tiergate:s3cr3t-pw@db.invalid:5432/prod"
    result = app.test_cli_runner().invoke(db_group, ["upgrade"])
    assert result.exit_code == 0, result.output
    assert result.output == (
        "Database at postgresql://tiergate:***@db.invalid:5432/prod is at revision head.\n"
    )
