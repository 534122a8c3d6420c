"""`tiergate catalog ...`: validate, diff, publish and inspect catalog versions, move subscribers.

Thin: each command parses its arguments, calls tiers.loader / tiers.store / tiers.diff /
tiers.subscribers, commits, and prints. Problems exit with status 1 and a clear message.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import click
from flask.cli import with_appcontext
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tiergate.db import get_db
from tiergate.exceptions import NoCatalog, TiergateError
from tiergate.extensions import get_clock
from tiergate.inputs import ONE_LINE
from tiers import store
from tiers.diff import diff_catalogs, render, summary
from tiers.loader import CatalogInvalid, load_catalog_file
from tiers.model import Catalog
from tiers.subscribers import migrate_subscribers

FILE = click.Path(dir_okay=False, path_type=str)


@click.group("catalog")
def catalog_group() -> None:
    """Validate, diff, publish and inspect the pricing catalog."""


def _fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    raise SystemExit(1)


def _load(path: str) -> tuple[Catalog, str]:
    try:
        return load_catalog_file(path)
    except CatalogInvalid as error:
        count = len(error.issues)
        _fail(f"{error}\n{path}: {count} problem{'s' if count != 1 else ''}; nothing was changed.")


@contextmanager
def _session() -> Iterator[Session]:
    """A committing session; domain errors become a one-line message and exit status 1."""
    try:
        with get_db().session() as session:
            yield session
    except TiergateError as error:
        _fail(f"Error: {error.message}")


def _latest(session: Session) -> store.Published | None:
    try:
        return store.load(session)
    except NoCatalog:
        return None


def _describe(catalog: Catalog) -> str:
    def count(n: int, noun: str) -> str:
        return f"{n} {noun}{'s' if n != 1 else ''}"

    return ", ".join(
        [
            count(len(catalog.tiers), "tier"),
            count(len(catalog.features), "feature"),
            count(len(catalog.addons), "add-on"),
            count(len(catalog.promotions), "promotion"),
            "currencies " + ", ".join(catalog.currencies),
        ]
    )


@catalog_group.command("validate")
@click.argument("file", type=FILE)
def validate_command(file: str) -> None:
    """Check FILE and print every problem (exit 1), or a one-line summary (exit 0)."""
    catalog, _ = _load(file)
    click.echo(f"{file} is valid: {_describe(catalog)}.")


@catalog_group.command("diff")
@click.argument("file", type=FILE)
@with_appcontext
def diff_command(file: str) -> None:
    """Show what FILE changes compared with the newest published version."""
    catalog, _ = _load(file)
    with _session() as session:
        latest = _latest(session)
    if latest is None:
        click.echo("no published version yet: everything is new")
        click.echo(render(diff_catalogs(None, catalog)))
        return
    changes = diff_catalogs(latest.catalog, catalog)
    if not changes:
        click.echo(f"no changes: {file} matches version {latest.version}")
        return
    click.echo(f"Changes from version {latest.version} to {file} ({summary(changes)}):")
    click.echo(render(changes))


@catalog_group.command("publish")
@click.argument("file", type=FILE)
@click.option(
    "--note", required=True, type=ONE_LINE, help="Why this version exists (shown in history)."
)
@click.option(
    "--author", default=None, type=ONE_LINE, help="Defaults to $TIERGATE_AUTHOR or your user name."
)
@with_appcontext
def publish_command(file: str, note: str, author: str | None) -> None:
    """Validate FILE and publish it as a new immutable version (identical content: no-op)."""
    if not note.strip():
        _fail("Error: --note must say why this version is published.")
    author = (author or os.environ.get("TIERGATE_AUTHOR") or getpass.getuser()).strip()
    if not author:
        _fail("Error: --author must not be empty.")
    catalog, source = _load(file)
    try:
        with _session() as session:
            latest = _latest(session)
            result = store.publish(
                session,
                catalog,
                source=source,
                author=author,
                note=note.strip(),
                now=get_clock().now(),
            )
            row = result.version
            version, digest = row.version, row.content_hash
    except IntegrityError:  # store.publish serialises publishes; this is only a backstop
        _fail(
            "Error: another publish took the same version number; nothing was published: "
            "run the command again."
        )
    if not result.created:
        click.echo(
            f"no-op: {file} is identical to the newest published version {version} "
            f"(sha256 {digest[:12]}); nothing was published."
        )
        return
    changes = diff_catalogs(latest.catalog if latest else None, catalog)
    rollback = f", the content of version {result.same_as}" if result.same_as else ""
    click.echo(
        f"Published catalog version {version} (sha256 {digest[:12]}{rollback}) by {author}."
    )
    click.echo(f"{summary(changes)}:" if changes else "no changes")
    if changes:
        click.echo(render(changes))
    click.echo("Existing subscriptions stay on their versions; move them with `catalog migrate`.")


@catalog_group.command("history")
@with_appcontext
def history_command() -> None:
    """List published versions, newest first."""
    with _session() as session:
        rows = store.history(session)
        lines = [
            f"{r.version:>4}  {r.published_at:%Y-%m-%d %H:%M}Z  {r.author:<16}  "
            f"{r.content_hash[:12]}  {r.note}"
            for r in rows
        ]
    if not lines:
        click.echo("no published versions yet")
        return
    click.echo(f"{'ver':>4}  {'published (UTC)':<17}  {'author':<16}  {'hash':<12}  note")
    click.echo("\n".join(lines))


@catalog_group.command("show")
@click.argument("version", type=int, required=False)
@with_appcontext
def show_command(version: int | None) -> None:
    """Print the YAML source of VERSION (default: the newest), exactly as published."""
    with _session() as session:
        source = store.get_version(session, version).source
    click.echo(source, nl=not source.endswith("\n"))


@catalog_group.command("migrate")
@click.option("--from", "from_version", type=int, required=True, help="Version to move from.")
@click.option("--to", "to_version", type=int, required=True, help="Version to move to.")
@click.option(
    "--tier", "tier_id", default=None, type=ONE_LINE, help="Only subscriptions on this tier."
)
@click.option("--dry-run", is_flag=True, help="Report the impact; change nothing.")
@click.option("--force", is_flag=True, help="Skip subscriptions whose tier the target lacks.")
@with_appcontext
def migrate_command(
    from_version: int, to_version: int, tier_id: str | None, dry_run: bool, force: bool
) -> None:
    """Move subscriptions pinned to one catalog version to another, reporting who loses what."""
    with _session() as session:
        report = migrate_subscribers(
            session,
            get_clock(),
            from_version=from_version,
            to_version=to_version,
            tier_id=tier_id,
            dry_run=dry_run,
            force=force,
        )
    click.echo("\n".join(report.lines()))
