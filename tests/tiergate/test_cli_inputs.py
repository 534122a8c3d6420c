"""Command-line input that must be refused with one clear line and change nothing: values the
database cannot or should not hold, versions and revisions that do not exist."""

from __future__ import annotations

import pytest

from billing.cli import billing_group
from billing.webhook_cli import webhooks_group
from gating.cli import apikey_group
from tests.test_bad_input_sweep import snapshot
from tiergate.migrate import db_group
from tiers.cli import catalog_group

CONTROL = "must be one line of text without control characters"


@pytest.mark.parametrize(
    ("group", "args"),
    [
        (apikey_group, ["create", "--name", "web\x00prod", "--scope", "gate"]),
        (apikey_group, ["create", "--name", "web\nprod", "--scope", "gate"]),
        (apikey_group, ["revoke", "tg_\x00"]),
        (catalog_group, ["publish", "examples/catalog.yaml", "--note", "first\x00"]),
        (catalog_group, ["publish", "examples/catalog.yaml", "--note", "a", "--author", "a\nb"]),
        (catalog_group, ["migrate", "--from", "1", "--to", "1", "--tier", "pro\x00"]),
        (webhooks_group, ["replay", "evt_\x00"]),
        (billing_group, ["reconcile", "--account", "acme\x00"]),
    ],
)
def test_a_control_character_in_a_text_argument_is_refused(app, demo_catalog, group, args):
    before = snapshot(app)
    result = app.test_cli_runner().invoke(group, args)
    assert result.exit_code == 2 and CONTROL in result.output, result.output
    assert snapshot(app) == before


@pytest.mark.parametrize(
    "args",
    [
        ["--from", "1", "--to", "99999999999999999999"],
        ["--from", "99999999999999999999", "--to", "1", "--dry-run"],
    ],
)
def test_migrating_to_a_version_beyond_any_says_it_does_not_exist(app, demo_catalog, args):
    before = snapshot(app)
    result = app.test_cli_runner().invoke(catalog_group, ["migrate", *args])
    assert result.exit_code == 1 and "does not exist" in result.output, result.output
    assert snapshot(app) == before


@pytest.mark.parametrize("revision", ["nope", "", "head+999", "base:head"])
def test_upgrading_to_an_unknown_revision_names_the_known_ones(app, tmp_path, revision):
    app.config["DATABASE_URL"] = f"sqlite:///{tmp_path / 'scratch.sqlite3'}"
    result = app.test_cli_runner().invoke(db_group, ["upgrade", revision])
    assert result.exit_code == 2, result.output
    assert "is not a revision: use head or one of 0001, 0002" in result.output
    assert "Traceback" not in result.output


def test_upgrading_to_a_known_revision_works(app, tmp_path):
    app.config["DATABASE_URL"] = f"sqlite:///{tmp_path / 'scratch.sqlite3'}"
    result = app.test_cli_runner().invoke(db_group, ["upgrade", "0002"])
    assert result.exit_code == 0 and "is at revision 0002" in result.output, result.output


def test_a_database_without_tables_is_one_line_saying_to_run_db_upgrade(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from tiergate.cli import main

    monkeypatch.setenv("TIERGATE_DATABASE_URL", f"sqlite:///{tmp_path / 'new.sqlite3'}")
    result = CliRunner().invoke(main, ["apikey", "list"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "no such table: api_keys" in result.output
    assert "run `tiergate db upgrade`" in result.output and "Traceback" not in result.output


def test_a_database_that_cannot_be_reached_is_one_line(monkeypatch):
    from click.testing import CliRunner

    from tiergate.cli import main

    monkeypatch.setenv("TIERGATE_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/x")
    result = CliRunner().invoke(main, ["catalog", "history"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert result.output.startswith("Error: the database cannot be used (")
    assert "TIERGATE_DATABASE_URL" in result.output
