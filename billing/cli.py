"""`tiergate billing ...` commands: the period end for manual billing."""

from __future__ import annotations

from typing import cast

import click
from flask.cli import with_appcontext

from billing.provider import BillingProvider
from tiergate.db import get_db
from tiergate.extensions import get_billing, get_clock


@click.group("billing")
def billing_group() -> None:
    """Billing operations (manual billing's renewals)."""


@billing_group.command("renew")
@with_appcontext
def renew_command() -> None:
    """Apply scheduled changes and renew every subscription whose period has ended."""
    from billing import service  # lazily: the CLI loads before the app is configured

    provider = cast(BillingProvider, get_billing())
    with get_db().session() as session:
        results = service.apply_period_end(session, get_clock(), provider)
        lines = [result.message for result in results]
    for line in lines:
        click.echo(line)
    click.echo(f"{len(lines)} period end(s) processed with {provider.name} billing.")
