"""`tiergate demo`: the embedded default prepares the database and the demo catalog."""

from __future__ import annotations

from tiergate.cli import main
from tiergate.demo import demo_command


def test_demo_upgrades_the_database_and_publishes_the_catalog_once(tmp_path, monkeypatch):
    monkeypatch.setenv("TIERGATE_DATABASE_URL", f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    from click.testing import CliRunner

    runner = CliRunner()
    first = runner.invoke(main, ["demo", "--no-serve"])
    assert first.exit_code == 0, first.output
    assert "Demo catalog published as version 1." in first.output
    # the key it suggests is enough for the example host app (it creates accounts)
    assert "apikey create --name demo --scope gate --scope accounts" in first.output
    again = runner.invoke(main, ["demo", "--no-serve"])
    assert "Demo catalog already published as version 1." in again.output


def test_demo_is_registered_on_the_tiergate_command():
    assert main.get_command(None, "demo") is demo_command
