"""PLACEHOLDER until validation lands: reads a catalog file without validating it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from tiers.model import Catalog


@dataclass(frozen=True)
class CatalogIssue:
    path: str  # e.g. "tiers[2].features.api_calls"
    message: str


class CatalogInvalid(Exception):
    def __init__(self, filename: str, issues: list[CatalogIssue]) -> None:
        self.filename = filename
        self.issues = issues
        super().__init__("\n".join(f"{filename}: {i.path}: {i.message}" for i in issues))


def load_catalog_text(text: str, filename: str = "<catalog>") -> Catalog:
    return Catalog.from_document(yaml.safe_load(text))


def load_catalog_file(path: str | Path) -> tuple[Catalog, str]:
    text = Path(path).read_text(encoding="utf-8")
    return load_catalog_text(text, str(path)), text
