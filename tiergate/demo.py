"""`tiergate demo`: the embedded default in one command (SQLite, demo catalog, manual billing)."""

from __future__ import annotations

import getpass
import os

import click
from flask import current_app
from flask.cli import with_appcontext
from werkzeug.serving import run_simple

from tiergate.config import PROJECT_ROOT, ConfigError, validate
from tiergate.db import get_db
from tiergate.extensions import get_clock
from tiergate.migrate import upgrade
from tiers import store
from tiers.loader import load_catalog_file

DEMO_CATALOG = PROJECT_ROOT / "examples" / "catalog.yaml"


def prepare_demo() -> str:
    """Create or upgrade the database and publish the demo catalog; returns what happened."""
    upgrade(current_app.config["DATABASE_URL"])
    catalog, source = load_catalog_file(DEMO_CATALOG)
    with get_db().session() as session:
        result = store.publish(
            session,
            catalog,
            source=source,
            author=getpass.getuser(),
            note="demo catalog",
            now=get_clock().now(),
        )
        version = result.version.version
    state = "published" if result.created else "already published"
    return f"Demo catalog {state} as version {version}."


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--no-serve", is_flag=True, help="Prepare the database and catalog, then exit.")
@with_appcontext
def demo_command(host: str, port: int, no_serve: bool) -> None:
    """Set up the SQLite database, publish the demo catalog and serve on localhost."""
    click.echo(prepare_demo())
    if no_serve:
        return
    base = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"  # IPv6
    if "TIERGATE_BASE_URL" not in os.environ:  # the links it makes lead to where it serves
        current_app.config["BASE_URL"] = base
        try:  # served beyond this machine, the public development secret must not sign links
            validate(current_app.config)
        except ConfigError as exc:
            raise click.ClickException(f"{exc} (the demo serves on --host {host})") from None
    click.echo(f"Pricing table:   {base}/pricing")
    click.echo(f"Catalog JSON:    {base}/v1/catalog")
    click.echo(f"API reference:   {base}/docs")
    click.echo(
        f"Billing page:    {base}/billing (a signed link: POST /v1/accounts/ID/billing_link)"
    )
    click.echo(
        "API key for the host app: tiergate apikey create --name demo --scope gate --scope accounts"
    )
    click.echo("Stop with Ctrl+C.")
    # Flask's own CLI ignores app.run(); serve with werkzeug directly (threaded, no reloader).
    run_simple(host, port, current_app._get_current_object(), threaded=True)
