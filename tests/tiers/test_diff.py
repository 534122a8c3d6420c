"""tiers/diff.py: what changed between two catalogs, structured and as text."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiers.diff import ADDED, CHANGED, REMOVED, Change, diff_catalogs, render, summary
from tiers.loader import load_catalog_text

DEMO_TEXT = (Path(__file__).parents[2] / "examples" / "catalog.yaml").read_text()
DEMO = load_catalog_text(DEMO_TEXT)


def changed(*replacements: tuple[str, str]) -> list[Change]:
    text = DEMO_TEXT
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    return diff_catalogs(DEMO, load_catalog_text(text))


def lines(changes: list[Change]) -> list[str]:
    return render(changes).splitlines()


def test_identical_catalogs_have_no_changes():
    assert diff_catalogs(DEMO, load_catalog_text(DEMO_TEXT)) == []
    assert render([]) == "no changes"
    assert summary([]) == "no changes"


def test_price_change_names_interval_currency_and_both_amounts():
    changes = changed(("month: {usd: 2900, eur: 2700}", "month: {usd: 3200, eur: 2700}"))
    assert changes == [Change(CHANGED, "price", "pro.prices.month.usd", "usd 29.00", "usd 32.00")]
    assert lines(changes) == ["~ pro.prices.month: usd 29.00 -> 32.00"]


def test_price_added_and_removed_per_interval():
    text = (
        "    prices:\n      month: {usd: 1500, eur: 1500}\n",
        "    prices:\n      month: {usd: 1500}\n      year: {usd: 15000, eur: 15000}\n",
    )
    assert lines(changed(text)) == [
        "- team_legacy.prices.month: eur 15.00 removed",
        "+ team_legacy.prices.year: usd 150.00 added",
        "+ team_legacy.prices.year: eur 150.00 added",
    ]


def test_limit_change_uses_thousands_separators():
    changes = changed(("api_calls: {limit: 100000, overage: 5000}", "api_calls: 150000"))
    assert lines(changes) == ["~ pro.api_calls: 100,000 (+5,000 overage) -> 150,000"]
    assert changes[0].area == "limit"


def test_boolean_feature_removed_and_metered_made_unlimited():
    changes = changed(
        ("      audit_log: true\n\n  - id: business", "\n  - id: business"),
        ("      seats: 100\n", "      seats: unlimited\n"),
    )
    assert lines(changes) == [
        "~ pro.audit_log: included -> not included",
        "~ business.seats: 100 -> unlimited",
    ]


def test_tier_added_removed_and_renamed():
    text = DEMO_TEXT.replace("name: Pro\n", "name: Pro Plus\n")
    text = text[: text.index("  # Sold until")] + text[text.index("addons:") :]
    text = text.replace(
        "  - id: enterprise",
        "  - id: scale\n    name: Scale\n    hidden: true\n\n  - id: enterprise",
    )
    changes = diff_catalogs(DEMO, load_catalog_text(text))
    assert lines(changes) == [
        "- tier removed: team_legacy (Team (legacy))",
        "~ pro renamed: 'Pro' -> 'Pro Plus'",
        "+ tier added: scale (Scale)",
    ]
    assert [c.action for c in changes] == [REMOVED, CHANGED, ADDED]


def test_tier_order_and_flags():
    changes = changed(("    recommended: true\n", ""), ("trial_days: 14\n", "trial_days: 30\n"))
    assert lines(changes) == ["~ starter.trial_days: 14 -> 30", "~ pro.recommended: yes -> no"]


def test_addons_and_promotions_added_removed_changed():
    text = DEMO_TEXT.replace("available_to: [starter, pro]\n", "available_to: [starter]\n")
    text = text.replace("month: {usd: 2500, eur: 2300}", "month: {usd: 2700, eur: 2300}")
    text = text.replace("grants:\n      seats: 5\n", "grants:\n      seats: 10\n")
    text = text.replace("percent_off: 20", "percent_off: 25").replace("2027-03-31", "2027-06-30")
    start, end = text.index("  - id: onboarding"), text.index("  - id: seat_pack")
    text = text[:start] + text[end:]
    assert lines(diff_catalogs(DEMO, load_catalog_text(text))) == [
        "- addon removed: onboarding (Onboarding package)",
        "~ extended_support.available_to: [starter, pro] -> [starter]",
        "~ seat_pack.prices.month: usd 25.00 -> 27.00",
        "~ seat_pack.grants.seats: 5 -> 10",
        "~ yearly_launch.percent_off: 20 -> 25",
        "~ yearly_launch.ends_at: 2027-03-31T00:00:00Z -> 2027-06-30T00:00:00Z",
    ]


def test_offer_settings_and_currencies_changed():
    changes = changed(
        ("nudge_threshold: 80%", "nudge_threshold: 75"),
        ("quote_valid_minutes: 30", "quote_valid_minutes: 60"),
    )
    assert lines(changes) == [
        "~ offers.nudge_threshold: 80% -> 75%",
        "~ offers.quote_valid_minutes: 30 -> 60",
    ]
    assert summary(changes) == "2 changes: 2 offer settings changed"


def test_from_nothing_everything_is_added():
    changes = diff_catalogs(None, DEMO)
    assert {c.action for c in changes} == {ADDED}
    assert summary(changes) == (
        "20 changes: 2 currencies added, 8 features added, 6 tiers added, 3 add-ons added, "
        "1 promotion added"
    )
    assert "+ tier added: pro (Pro)" in lines(changes)


@pytest.mark.parametrize(
    ("change", "text"),
    [
        (Change(ADDED, "currency", "gbp"), "currency added: gbp"),
        (Change(REMOVED, "price", "pro.prices.year.eur", old="eur 270.00"),
         "pro.prices.year: eur 270.00 removed"),
        (Change(CHANGED, "catalog", "name", "A", "B"), "name: A -> B"),
    ],
)  # fmt: skip
def test_change_text(change, text):
    assert change.text == text
