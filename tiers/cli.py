"""`tiergate catalog ...` commands (PLACEHOLDER: filled in by the catalog work)."""

from __future__ import annotations

import click


@click.group("catalog")
def catalog_group() -> None:
    """Validate, diff, publish and inspect the pricing catalog."""
