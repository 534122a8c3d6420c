"""`tiergate billing ...` commands (the period end for manual billing) and
`tiergate notifications ...` (notifications to the host app)."""

from __future__ import annotations

from typing import cast

import click
from flask import current_app
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
    from billing import notifications, service  # lazily: the CLI loads before the app

    provider = cast(BillingProvider, get_billing())
    with get_db().session() as session:
        results = service.apply_period_end(session, get_clock(), provider)
        lines = [service.renew_line(result) for result in results]
        done = sum(result.status is service.FlowStatus.DONE for result in results)
    with get_db().session() as session:  # Stripe sends its own trial_will_end
        told = notifications.trials_ending(session, get_clock(), provider.name)
    for line in lines:
        click.echo(line)
    click.echo(f"{done} period end(s) processed with {provider.name} billing.")
    for line in told:
        click.echo(line)
    stuck = [line for line in lines if line.startswith(service.NOT_RENEWED)]
    if stuck:  # the others were renewed; a scheduler sees the failure
        raise click.ClickException(f"{len(stuck)} subscription(s) could not be renewed: see above.")


@click.group("notifications")
def notifications_group() -> None:
    """Notifications to the host app (TIERGATE_NOTIFY_URL): deliver them, list them."""


@notifications_group.command("deliver")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@with_appcontext
def deliver_command(limit: int) -> None:
    """POST the due notifications to TIERGATE_NOTIFY_URL (run it every minute)."""
    from billing import notifications

    url, secret = current_app.config.get("NOTIFY_URL"), current_app.config.get("NOTIFY_SECRET")
    if not url or not secret:
        raise click.ClickException(
            "Set TIERGATE_NOTIFY_URL (the host app's endpoint) and TIERGATE_NOTIFY_SECRET (the "
            "key it checks signatures with) to deliver notifications."
        )
    with get_db().session() as session:
        lines = notifications.deliver_due(session, get_clock(), url, secret, limit=limit)
    for line in lines:
        click.echo(line)
    delivered = sum(line.endswith(": delivered") for line in lines)
    given_up = sum("gave up after" in line for line in lines)
    retrying = len(lines) - delivered - given_up
    click.echo(
        f"{delivered} notification(s) delivered, {retrying} to retry, {given_up} given up on."
    )
    if given_up:  # lost for good: a scheduler sees it (the others are tried again)
        raise click.ClickException(
            f"{given_up} notification(s) could not be delivered and will not be tried again: "
            "see above (`tiergate notifications list --failed`)."
        )


@notifications_group.command("list")
@click.option("--failed", is_flag=True, help="Only those not delivered after an attempt.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@with_appcontext
def list_notifications(failed: bool, limit: int) -> None:
    """Notifications, newest first: id, type, account, status, attempts, last error."""
    from billing import notifications

    with get_db().session() as session:
        rows = notifications.stored(session, failed=failed, limit=limit)
        lines = []
        for note in rows:
            if note.delivered_at is not None:
                status = f"delivered {note.delivered_at:%Y-%m-%d %H:%M}"
            elif note.next_attempt_at is None:
                status = "failed (gave up)"
            elif note.attempts:
                status = f"retrying at {note.next_attempt_at:%Y-%m-%d %H:%M}"
            else:
                status = "due"
            error = f"  {note.last_error}" if note.last_error else ""
            lines.append(
                f"{note.id}  {note.type}  {note.account_id}  {status}  "
                f"attempts={note.attempts}{error}"
            )
    for line in lines:
        click.echo(line)
    if not lines:
        click.echo("No notifications" + (" failed." if failed else "."))
