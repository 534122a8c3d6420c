"""Publishing and diffing: an order that customers see (features, the default currency) is
new content, and the diff shows it."""

from __future__ import annotations

from pathlib import Path

from tiers.cli import catalog_group
from tiers.diff import diff_catalogs
from tiers.loader import load_catalog_text
from tiers.store import content_hash

DEMO_TEXT = (Path(__file__).parents[2] / "examples" / "catalog.yaml").read_text()


def _features_reordered() -> str:
    """The demo with `sso` moved to the top of `features` (the pricing table's row order)."""
    text = DEMO_TEXT
    start, sso, end = text.index("  projects:\n"), text.index("  sso:\n"), text.index("\ntiers:")
    return text[:start] + text[sso:end] + "\n" + text[start:sso] + text[end:]


def _currencies_swapped() -> str:
    return DEMO_TEXT.replace("currencies: [usd, eur]", "currencies: [eur, usd]", 1)


def test_reordering_features_changes_the_content_hash(app, clock):
    """The pricing table lists features in catalog order (tiers/pricing.py _groups): moving a
    feature up is a visible change, so it is new content."""
    old, new = load_catalog_text(DEMO_TEXT), load_catalog_text(_features_reordered())
    assert list(new.features)[0] == "sso" != list(old.features)[0]
    assert content_hash(old) != content_hash(new)


def test_reordering_features_is_published_as_a_new_version(app, tmp_path):
    runner = app.test_cli_runner()
    first, second = tmp_path / "v1.yaml", tmp_path / "v2.yaml"
    first.write_text(DEMO_TEXT)
    second.write_text(_features_reordered())
    assert runner.invoke(catalog_group, ["publish", str(first), "--note", "v1"]).exit_code == 0
    result = runner.invoke(catalog_group, ["publish", str(second), "--note", "SSO first"])
    assert result.exit_code == 0
    assert "no-op" not in result.output, result.output
    assert "Published catalog version 2" in result.output


def test_diff_reports_a_change_of_default_currency():
    """`currencies: [eur, usd]` makes EUR the default (the pricing table's currency for every
    visitor)."""
    changes = diff_catalogs(load_catalog_text(DEMO_TEXT), load_catalog_text(_currencies_swapped()))
    assert [(c.path, c.old, c.new) for c in changes] == [("default currency", "USD", "EUR")]


def test_diff_command_does_not_claim_a_match_that_publish_disagrees_with(app, tmp_path):
    runner = app.test_cli_runner()
    first, second = tmp_path / "v1.yaml", tmp_path / "v2.yaml"
    first.write_text(DEMO_TEXT)
    second.write_text(_currencies_swapped())
    assert runner.invoke(catalog_group, ["publish", str(first), "--note", "v1"]).exit_code == 0
    diff = runner.invoke(catalog_group, ["diff", str(second)])
    published = runner.invoke(catalog_group, ["publish", str(second), "--note", "eur first"])
    assert "Published catalog version 2" in published.output  # a new version was made ...
    assert "no changes" not in diff.output, diff.output  # ... so the review must see why
    assert "no changes" not in published.output, published.output
