"""`tiergate stripe ...` commands: put the published catalog's products and prices into Stripe."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from tiergate.db import get_db
from tiergate.exceptions import TiergateError
from tiergate.extensions import get_billing, get_clock


@click.group("stripe")
def stripe_group() -> None:
    """Stripe operations (catalog sync)."""


@stripe_group.command("sync")
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
@with_appcontext
def sync_command(dry_run: bool) -> None:
    """Create or update Stripe Products, Prices and promotion codes for the newest catalog."""
    from billing import stripe_sync  # lazily: the CLI loads before the app is configured
    from billing.stripe_provider import StripeBilling
    from tiers import store

    billing = get_billing()
    if not isinstance(billing, StripeBilling):
        raise click.ClickException(
            "Billing is not through Stripe: set TIERGATE_STRIPE_SECRET_KEY (and "
            "TIERGATE_STRIPE_WEBHOOK_SECRET) to sync the catalog to Stripe."
        )
    try:
        with get_db().session() as session:
            published = store.load(session)
        now = get_clock().now()
        actions = stripe_sync.plan(billing.client, published, now)
    except TiergateError as exc:  # no catalog yet, Stripe unreachable or refusing the key
        raise click.ClickException(exc.message) from None
    for note in stripe_sync.code_notes(published.catalog, now):
        click.echo(note)
    for action in actions:
        click.echo(("would: " if dry_run else "") + action.description)
    if not actions:
        click.echo(f"Stripe already sells catalog version {published.version}: nothing to do.")
    elif dry_run:
        click.echo(f"Dry run: {len(actions)} change(s) planned, nothing changed in Stripe.")
    else:
        try:
            stripe_sync.apply(billing.client, actions)
        except TiergateError as exc:
            raise click.ClickException(
                f"{exc.message} Stopped part way: run `tiergate stripe sync` again, it makes "
                "only what is still missing."
            ) from None
        click.echo(
            f"{len(actions)} change(s) made: Stripe sells catalog version {published.version}."
        )
