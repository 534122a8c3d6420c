"""Operator commands end in one clear line, never a traceback (README: "A missing or invalid
required setting fails at start with one line saying which and why"): `stripe sync` with no
catalog or no Stripe, a database URL tiergate cannot use."""

# ruff: noqa: F811 - the pytest fixtures imported from stripe_fixtures are parameters here
from __future__ import annotations

import pytest
import stripe
from click.testing import CliRunner

from billing.stripe_provider import API_VERSION, StripeBilling
from tests.billing.stripe_fixtures import (
    WEBHOOK_SECRET,
    fake_stripe,  # noqa: F401 - a fixture
    stripe_billing,  # noqa: F401 - a fixture
)
from tiergate import create_app
from tiergate.cli import main
from tiergate.config import ConfigError


def _one_line_failure(result) -> None:
    assert result.exit_code != 0, result.output
    # click turns a ClickException / SystemExit into exit code 1 with no exception object
    # left; anything else is an uncaught exception (a traceback for the operator).
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"traceback: {type(result.exception).__name__}: {result.exception}"
    )


def test_stripe_sync_before_any_catalog_is_published_says_so_in_one_line(app, stripe_billing):
    """An operator who sets up Stripe and runs `tiergate stripe sync` before publishing a
    catalog expects the same one line `catalog show` gives ("No catalog has been published
    yet: run `tiergate catalog publish ...`") and exit 1."""
    app.extensions["tiergate.billing"] = stripe_billing
    result = app.test_cli_runner().invoke(main, ["stripe", "sync", "--dry-run"])
    _one_line_failure(result)
    assert "No catalog has been published yet" in result.output


def test_stripe_sync_when_stripe_cannot_be_reached_is_one_line(app, demo_catalog):
    """`tiergate stripe sync` while Stripe is unreachable (network, outage) says so in one
    line and exit 1, as `billing reconcile` does."""
    client = stripe.StripeClient(
        "sk_test_tiergate",
        stripe_version=API_VERSION,
        base_addresses={"api": "http://127.0.0.1:9"},  # nothing listens there
        max_network_retries=0,
        http_client=stripe.new_default_http_client(timeout=2),
    )
    app.extensions["tiergate.billing"] = StripeBilling(
        client,  # type: ignore[arg-type]
        webhook_secret=WEBHOOK_SECRET,
        base_url="http://localhost",
        catalog_version=lambda: 1,
    )
    result = app.test_cli_runner().invoke(main, ["stripe", "sync"])
    _one_line_failure(result)
    assert "Stripe could not be reached" in result.output


@pytest.mark.parametrize("url", ["postgres://tiergate@127.0.0.1/tiergate", "mysql://u@h/db"])
def test_a_database_url_sqlalchemy_cannot_load_is_a_config_error(url):
    """A common operator mistake is a Heroku-style `postgres://` URL (SQLAlchemy only knows
    `postgresql://`) or a driver that is not installed. README: an invalid required setting
    "fails at start with one line saying which and why" (ConfigError, which the CLI prints as one
    line), with a hint for the first."""
    with pytest.raises(ConfigError, match="TIERGATE_DATABASE_URL"):
        create_app({"TESTING": True, "DATABASE_URL": url})
    if url.startswith("postgres:"):
        with pytest.raises(ConfigError, match="did you mean postgresql://"):
            create_app({"TESTING": True, "DATABASE_URL": url})


def test_cli_with_a_postgres_scheme_url_prints_one_line(monkeypatch):
    """The same through the `tiergate` command: one line naming TIERGATE_DATABASE_URL and exit
    1."""
    monkeypatch.setenv("TIERGATE_DATABASE_URL", "postgres://tiergate@127.0.0.1/tiergate")
    result = CliRunner().invoke(main, ["funnel"])
    _one_line_failure(result)
    assert "TIERGATE_DATABASE_URL" in result.output
