"""Schema migrations with Alembic: `tiergate db upgrade` and the helpers tests use."""

from __future__ import annotations

import click
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from tiergate.config import PROJECT_ROOT
from tiergate.db import make_engine


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Create or upgrade the schema at `url` to `revision`."""
    command.upgrade(alembic_config(url), revision)


def current_revisions(url: str) -> tuple[str, ...] | None:
    """The revisions the database at `url` is at (empty: no schema yet; None: unreadable, and
    Alembic reports why when it tries)."""
    try:
        engine = make_engine(url)
        try:
            with engine.connect() as connection:
                return tuple(MigrationContext.configure(connection).get_current_heads())
        finally:
            engine.dispose()
    except SQLAlchemyError:
        return None


def safe_url(url: str) -> str:
    """`url` with its password hidden, for printing."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "the configured database"


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
    scripts = ScriptDirectory.from_config(config)
    known = [script.revision for script in scripts.walk_revisions()]
    if revision not in ("head", *known):
        raise click.BadParameter(
            f"{revision!r} is not a revision: use head or one of {', '.join(sorted(known))}.",
            param_hint="REVISION",
        )
    before = current_revisions(url) or ()
    if revision != "head":
        # Alembic's upgrade to an older revision silently does nothing: say so instead.
        newer = [r for r in before if r != revision and _is_ancestor(scripts, revision, r)]
        if newer:
            raise click.ClickException(
                f"The database at {safe_url(url)} is at revision {', '.join(before)}, newer "
                f"than {revision}: `db upgrade` never downgrades. Nothing was changed."
            )
    try:
        command.upgrade(config, revision)
    except CommandError as exc:
        raise click.ClickException(f"Cannot upgrade to {revision}: {exc}") from None
    after = current_revisions(url)
    at = revision if after is None else ", ".join(after) or "none"
    click.echo(f"Database at {safe_url(url)} is at revision {at}.")


def _is_ancestor(scripts: ScriptDirectory, older: str, newer: str) -> bool:
    return any(s.revision == older for s in scripts.iterate_revisions(newer, "base"))
