"""`tiergate catalog diff/publish`: a promotion's amount_off is money, shown as charged."""

from __future__ import annotations

from tiers.cli import catalog_group
from tiers.diff import diff_catalogs, render
from tiers.loader import load_catalog_text

CATALOG = """
format: 1
currencies: [usd, kwd, jpy]
tiers:
  - id: free
    name: Free
  - id: pro
    name: Pro
    prices:
      month: {{usd: 2900, kwd: 12340, jpy: 3000}}
promotions:
  - id: launch
    name: Launch
    tiers: [pro]
    amount_off: {{usd: {usd}, kwd: {kwd}, jpy: 500}}
"""


def test_a_changed_amount_off_is_shown_in_the_currencys_units_not_raw_minor_units() -> None:
    old = load_catalog_text(CATALOG.format(usd=500, kwd=1000))
    new = load_catalog_text(CATALOG.format(usd=1000, kwd=2000))
    text = render(diff_catalogs(old, new))
    # usd 5.00 -> 10.00, kwd 1.000 -> 2.000: printed today as
    # "~ launch.amount_off: {usd: 500, kwd: 1,000, jpy: 500} -> {usd: 1,000, kwd: 2,000, ...}",
    # which reads as $500 -> $1,000 and 1,000 -> 2,000 dinars.
    assert "usd: 1,000" not in text and "kwd: 2,000" not in text, text
    assert "10.00" in text and "2.000" in text, text


def test_the_publish_command_prints_the_same_raw_amounts(app, tmp_path, demo_catalog) -> None:  # type: ignore[no-untyped-def]
    runner = app.test_cli_runner()
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(CATALOG.format(usd=500, kwd=1000))
    second.write_text(CATALOG.format(usd=1000, kwd=2000))
    assert runner.invoke(catalog_group, ["publish", str(first), "--note", "a"]).exit_code == 0
    result = runner.invoke(catalog_group, ["publish", str(second), "--note", "b"])
    assert result.exit_code == 0, result.output
    assert "kwd: 2,000" not in result.output, result.output
