"""Schema migrations with Alembic: `tiergate db upgrade` and the helpers tests use."""

from __future__ import annotations

import click
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from flask import current_app
from flask.cli import with_appcontext

from tiergate.config import PROJECT_ROOT


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Create or upgrade the schema at `url` to `revision`."""
    command.upgrade(alembic_config(url), revision)


@click.group("db")
def db_group() -> None:
    """Database schema commands."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def upgrade_command(revision: str) -> None:
    """Create or upgrade the database schema (REVISION: head, the default, or a revision id)."""
    url = current_app.config["DATABASE_URL"]
    config = alembic_config(url)
    known = [script.revision for script in ScriptDirectory.from_config(config).walk_revisions()]
    if revision not in ("head", *known):
        raise click.BadParameter(
            f"{revision!r} is not a revision: use head or one of {', '.join(sorted(known))}.",
            param_hint="REVISION",
        )
    try:
        command.upgrade(config, revision)
    except CommandError as exc:  # e.g. a revision older than the database's
        raise click.ClickException(f"Cannot upgrade to {revision}: {exc}") from None
    click.echo(f"Database at {url} is at revision {revision}.")
