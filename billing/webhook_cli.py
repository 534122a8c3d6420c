"""`tiergate webhooks list|replay` and `tiergate billing reconcile`."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from billing.cli import billing_group
from billing.sync_state import StripeSource
from tiergate.db import get_db
from tiergate.exceptions import NotFound, ProviderUnavailable
from tiergate.extensions import get_billing, get_clock
from tiergate.inputs import ONE_LINE


def _stripe() -> StripeSource:
    provider = get_billing()
    if not isinstance(provider, StripeSource):
        name = getattr(provider, "name", type(provider).__name__)
        raise click.ClickException(
            f"The billing provider is {name!r}: this command needs Stripe billing "
            "(set TIERGATE_STRIPE_SECRET_KEY)."
        )
    return provider


@click.group("webhooks")
def webhooks_group() -> None:
    """Stripe webhook events: list them, replay a failed one."""


@webhooks_group.command("list")
@click.option("--failed", is_flag=True, help="Only events whose processing failed.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@with_appcontext
def list_command(failed: bool, limit: int) -> None:
    """Stored events, newest first: id, type, received, status, attempts, error."""
    from billing import webhooks

    with get_db().session() as session:
        rows = webhooks.stored_events(session, failed=failed, limit=limit)
        lines = [
            f"{row.id}  {row.type:<45} {row.received_at:%Y-%m-%d %H:%M:%S}  "
            f"{'processed' if row.processed_at else 'FAILED' if row.error else 'pending'}  "
            f"attempts={row.attempts}" + (f"  error: {row.error}" if row.error else "")
            for row in rows
        ]
    for line in lines:
        click.echo(line)
    click.echo(f"{len(lines)} {'failed ' if failed else ''}event(s).")


@webhooks_group.command("replay")
@click.argument("event_id", type=ONE_LINE)
@with_appcontext
def replay_command(event_id: str) -> None:
    """Process a stored event again (a failed one, after fixing the cause)."""
    from billing import webhooks

    try:
        outcome = webhooks.replay(get_db(), get_clock(), _stripe(), event_id)
    except NotFound as exc:
        raise click.ClickException(exc.message) from None
    if outcome.status == "failed":
        raise click.ClickException(f"{event_id} failed again: {outcome.error}")
    click.echo(f"{event_id}: {outcome.note or outcome.status}")


@billing_group.command("reconcile")
@click.option("--account", "account_id", default=None, type=ONE_LINE, help="Only this account.")
@with_appcontext
def reconcile_command(account_id: str | None) -> None:
    """Compare local subscriptions and pending changes with Stripe and repair the local side."""
    from billing.reconcile import CHECK, reconcile

    provider = _stripe()
    try:
        with get_db().session() as session:
            fixes = reconcile(session, get_clock(), provider, account_id=account_id)
    except ProviderUnavailable as exc:
        raise click.ClickException(
            f"Stripe could not be reached ({exc.message.rstrip('.')}). Pending changes settled "
            "before it stopped are kept; nothing else was changed: "
            "run it again later."
        ) from None
    except NotFound as exc:
        raise click.ClickException(exc.message) from None
    checks = [line for line in fixes if line.startswith(CHECK)]
    for fix in fixes:
        click.echo(fix)
    if checks:  # the fixes above are made; these need a person
        raise click.ClickException(
            f"{len(fixes) - len(checks)} fix(es); {len(checks)} subscription(s) need "
            "checking: see above."
        )
    click.echo(f"{len(fixes)} fix(es); local billing now matches Stripe.")
