"""`tiergate apikey create|list|revoke`: manage the API's server-to-server keys."""

from __future__ import annotations

from datetime import datetime, timedelta

import click
from flask.cli import with_appcontext

from gating import apikeys, funnel
from tiergate.db import get_db
from tiergate.exceptions import TiergateError
from tiergate.extensions import get_clock
from tiergate.inputs import ONE_LINE


@click.group("apikey")
def apikey_group() -> None:
    """Create, list and revoke API keys (scopes: gate, accounts, admin)."""


@apikey_group.command("create")
@click.option(
    "--name", required=True, type=ONE_LINE, help="Who or what uses the key, e.g. 'web app prod'."
)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(apikeys.SCOPES),
    help="Repeat for several: gate (check/usage), accounts (accounts/overrides), admin (all).",
)
@with_appcontext
def create_command(name: str, scopes: tuple[str, ...]) -> None:
    """Create a key and print it once: it cannot be shown again."""
    try:
        with get_db().session() as session:
            row, raw_key = apikeys.create_key(session, get_clock(), name=name, scopes=scopes)
            prefix, scope_text = row.prefix, row.scopes
    except TiergateError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Created API key {prefix!r} ({name}) with scopes: {scope_text}")
    click.echo("Store it now; it cannot be shown again:")
    click.echo(raw_key)


@apikey_group.command("list")
@with_appcontext
def list_command() -> None:
    """List keys: prefix, name, scopes, created, last used, revoked."""
    with get_db().session() as session:
        rows = apikeys.list_keys(session)
        if not rows:
            click.echo("No API keys. Create one with: tiergate apikey create --name N --scope gate")
            return
        header = ("PREFIX", "SCOPES", "CREATED", "LAST USED", "STATUS")
        click.echo("{:<10} {:<20} {:<17} {:<17} {:<8} NAME".format(*header))
        for row in rows:
            status = "revoked" if row.revoked_at else "active"
            click.echo(
                f"{row.prefix:<10} {row.scopes:<20} {_when(row.created_at):<17} "
                f"{_when(row.last_used_at):<17} {status:<8} {row.name}"
            )


@apikey_group.command("revoke")
@click.argument("prefix", type=ONE_LINE)
@with_appcontext
def revoke_command(prefix: str) -> None:
    """Revoke the key with PREFIX (other workers stop accepting it within 10 seconds)."""
    try:
        with get_db().session() as session:
            row = apikeys.revoke_key(session, get_clock(), prefix)
            label = f"{row.prefix!r} ({row.name})"
    except TiergateError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Revoked API key {label}.")


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "never"


@click.command("funnel")
@click.option(
    "--days",
    default=30,
    show_default=True,
    type=click.IntRange(1, 3660),
    help="Offers created in the last N days.",
)
@with_appcontext
def funnel_command(days: int) -> None:
    """The upsell funnel: offers shown, clicked, dismissed, paid; conversion and MRR added."""
    now = get_clock().now()
    with get_db().session() as session:
        result = funnel.funnel_window(session, get_clock(), now - timedelta(days=days), None)
    click.echo(funnel.funnel_text(result))
