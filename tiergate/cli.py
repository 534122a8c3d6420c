"""The `tiergate` command: Flask's CLI around the app factory plus our command groups."""

from __future__ import annotations

from typing import Any

import click
from flask.cli import FlaskGroup
from sqlalchemy.exc import OperationalError, ProgrammingError

from tiergate import create_app
from tiergate.config import ConfigError
from tiergate.migrate import db_group


def _create_app() -> object:
    try:
        return create_app()
    except ConfigError as exc:  # one clear line for the operator, no traceback
        raise click.ClickException(str(exc)) from None


class TiergateGroup(FlaskGroup):
    """Flask's CLI group; a database that cannot be reached or has no schema yet is one line
    that says what to do, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (OperationalError, ProgrammingError) as exc:
            first = str(exc.orig or exc).strip().splitlines()[0]
            raise click.ClickException(
                f"the database cannot be used ({first}): check TIERGATE_DATABASE_URL, and run "
                "`tiergate db upgrade` to create or update its tables"
            ) from None


@click.group(cls=TiergateGroup, create_app=_create_app, add_default_commands=True)
def main() -> None:
    """tiergate: pricing-tier catalog, feature gate and in-app upgrades."""


main.add_command(db_group)


def _register() -> None:
    from billing.cli import billing_group, notifications_group
    from billing.stripe_cli import stripe_group
    from billing.webhook_cli import webhooks_group  # also adds `billing reconcile`
    from gating.cli import apikey_group, funnel_command
    from tiergate.demo import demo_command
    from tiers.cli import catalog_group

    for command in (
        apikey_group,
        billing_group,
        catalog_group,
        demo_command,
        funnel_command,
        notifications_group,
        stripe_group,
        webhooks_group,
    ):
        main.add_command(command)


_register()
