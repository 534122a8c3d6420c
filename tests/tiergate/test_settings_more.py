"""Settings an operator sets wrong, and `tiergate demo` on the IPv6 loopback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tiergate import create_app
from tiergate.cli import main
from tiergate.config import ConfigError


def test_a_stripe_webhook_tolerance_that_is_not_a_number_fails_at_start(
    tmp_path, monkeypatch
) -> None:
    """docs/billing.md documents TIERGATE_STRIPE_WEBHOOK_TOLERANCE (seconds, 300). Written
    "5m", the service starts, and then every Stripe delivery is answered 500
    (billing/webhook_web.py: int("5m") raises ValueError) until Stripe disables the endpoint."""
    monkeypatch.setenv("TIERGATE_STRIPE_WEBHOOK_TOLERANCE", "5m")
    config = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}",
        "STRIPE_SECRET_KEY": "sk_test_x",
        "STRIPE_WEBHOOK_SECRET": "whsec_x",
    }
    try:
        app = create_app(config)
    except ConfigError as exc:
        assert "TIERGATE_STRIPE_WEBHOOK_TOLERANCE" in str(exc)
        return
    from tiergate.db import Base, get_db, import_models

    import_models()
    Base.metadata.create_all(get_db(app).engine)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = app.test_client().post(
        "/webhooks/stripe", data=b"{}", headers={"Stripe-Signature": "t=1,v1=00"}
    )
    pytest.fail(f"started; a webhook delivery is answered {response.status_code}")


def test_sql_echo_written_wrong_is_one_line_not_a_traceback(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TIERGATE_DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    monkeypatch.setenv("TIERGATE_SQL_ECHO", "yes")
    result = CliRunner().invoke(main, ["catalog", "history"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "TIERGATE_SQL_ECHO" in result.output, result.output


def test_demo_on_the_ipv6_loopback_serves_with_links_that_work(tmp_path, monkeypatch) -> None:
    """`tiergate demo --host ::1` is this machine (loopback by address), yet it is refused as a
    public TIERGATE_BASE_URL, which the operator did not set, shown as http://::1:5000 (not a
    URL: IPv6 hosts need brackets)."""
    from tiergate import demo

    served = []
    monkeypatch.setattr(demo, "run_simple", lambda host, port, app, **kw: served.append(host))
    monkeypatch.setenv("TIERGATE_DATABASE_URL", f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    monkeypatch.delenv("TIERGATE_BASE_URL", raising=False)
    monkeypatch.delenv("TIERGATE_SECRET_KEY", raising=False)
    result = CliRunner().invoke(main, ["demo", "--host", "::1", "--port", "5124"])
    assert result.exit_code == 0, result.output
    assert "http://[::1]:5124/pricing" in result.output, result.output


def test_demo_refuses_a_port_it_cannot_serve_on_instead_of_printing_dead_links(
    tmp_path, monkeypatch
) -> None:
    """`tiergate demo --port 70000` prints http://127.0.0.1:70000/pricing and the other links,
    then werkzeug serves on 70000 - 65536 = 4464: every printed link is dead."""
    from tiergate import demo

    served = []
    monkeypatch.setattr(demo, "run_simple", lambda host, port, app, **kw: served.append(port))
    monkeypatch.setenv("TIERGATE_DATABASE_URL", f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    monkeypatch.delenv("TIERGATE_BASE_URL", raising=False)
    result = CliRunner().invoke(main, ["demo", "--port", "70000"])
    assert result.exit_code != 0 and served == [], result.output
