"""The published development secret must never sign links of a service others can reach."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tiergate.cli import main
from tiergate.config import ConfigError, defaults, validate


def test_demo_served_on_all_interfaces_does_not_sign_links_with_the_public_dev_secret(
    tmp_path, monkeypatch
):
    # `tiergate demo` sets BASE_URL to http://0.0.0.0:PORT after the app is built and serves
    # on every interface: with the published development secret anyone on the network could
    # sign a billing link (cancel, buy add-ons) for any account. It refuses to start.
    from tiergate import demo

    served = []
    monkeypatch.setattr(demo, "run_simple", lambda host, port, app, **kw: served.append(app))
    monkeypatch.setenv("TIERGATE_DATABASE_URL", f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    monkeypatch.delenv("TIERGATE_BASE_URL", raising=False)
    monkeypatch.delenv("TIERGATE_SECRET_KEY", raising=False)
    result = CliRunner().invoke(main, ["demo", "--host", "0.0.0.0", "--port", "8000"])
    assert result.exit_code != 0 and served == []
    assert "TIERGATE_SECRET_KEY must be set" in result.output
    assert "(the demo serves on --host 0.0.0.0)" in result.output


def test_a_public_host_name_starting_with_127_is_not_this_machine(tmp_path) -> None:
    # _loopback() takes any host name starting with "127." for a loopback address.
    config = defaults(str(tmp_path)) | {"BASE_URL": "https://127.example.com"}
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        validate(config)
