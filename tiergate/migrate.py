"""Schema migrations with Alembic: `tiergate db upgrade` and the helpers tests use."""

from __future__ import annotations

import click
from alembic import command
from alembic.config import Config
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
    """Create or upgrade the database schema."""
    upgrade(current_app.config["DATABASE_URL"], revision)
    click.echo(f"Database at {current_app.config['DATABASE_URL']} is at revision {revision}.")
