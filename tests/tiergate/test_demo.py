"""`tiergate demo`: the embedded default prepares the database and the demo catalog."""

from __future__ import annotations

from click.testing import CliRunner

from gating import apikeys
from tiergate.cli import main
from tiergate.db import get_db
from tiergate.demo import demo_command


def test_demo_upgrades_the_database_and_publishes_the_catalog_once(tmp_path, monkeypatch):
    monkeypatch.setenv("TIERGATE_DATABASE_URL", f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    from click.testing import CliRunner

    runner = CliRunner()
    first = runner.invoke(main, ["demo", "--no-serve"])
    assert first.exit_code == 0, first.output
    assert "Demo catalog published as version 1." in first.output
    again = runner.invoke(main, ["demo", "--no-serve"])
    assert "Demo catalog already published as version 1." in again.output


def test_demo_is_registered_on_the_tiergate_command():
    assert main.get_command(None, "demo") is demo_command


def test_demo_prints_the_urls_and_a_key_command_the_example_host_app_can_use(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from tiergate import demo

    served = []
    monkeypatch.setattr(demo, "run_simple", lambda host, port, app, **kw: served.append(port))
    monkeypatch.setenv("TIERGATE_DATABASE_URL", f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    result = CliRunner().invoke(main, ["demo", "--port", "5055"])
    assert result.exit_code == 0, result.output
    assert served == [5055]
    assert "Pricing table:   http://127.0.0.1:5055/pricing" in result.output
    # Trackly creates its accounts, so the key needs the accounts scope as well as gate
    assert "apikey create --name demo --scope gate --scope accounts" in result.output


def test_demo_on_another_port_makes_links_to_that_port(tmp_path, monkeypatch):
    from tiergate import demo

    served = []
    monkeypatch.setattr(demo, "run_simple", lambda host, port, app, **kw: served.append(app))
    monkeypatch.setenv("TIERGATE_DATABASE_URL", f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    monkeypatch.delenv("TIERGATE_BASE_URL", raising=False)
    result = CliRunner().invoke(main, ["demo", "--port", "8000"])
    assert result.exit_code == 0, result.output
    app = served[0]
    with app.app_context():
        from tiergate.extensions import get_clock

        with get_db(app).session() as s:
            _, key = apikeys.create_key(s, get_clock(), name="t", scopes=("gate", "accounts"))
    client = app.test_client()
    auth = {"Authorization": f"Bearer {key}"}
    assert client.put("/v1/accounts/acme", json={"name": "Acme"}, headers=auth).status_code == 201
    link = client.post("/v1/accounts/acme/billing_link", json={}, headers=auth).get_json()
    # Its links lead to where it serves (they led to the default port 5000).
    assert link["url"].startswith("http://127.0.0.1:8000/"), link["url"]
