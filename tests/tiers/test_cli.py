"""tiers/cli.py: the `tiergate catalog` commands, driven through Flask's CLI runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from gating.models import Subscription
from tiers.cli import catalog_group
from tiers.models import CatalogVersion

from .test_subscribers import DEMO_TEXT, demo_v2_text, pinned, subscribe, use

DEMO = Path(__file__).parents[2] / "examples" / "catalog.yaml"
MANY_ERRORS = Path(__file__).parent / "catalogs" / "many_errors.yaml"


@pytest.fixture
def run(app):
    runner = app.test_cli_runner()

    def invoke(*args: str, env: dict[str, str] | None = None):
        return runner.invoke(catalog_group, list(args), env=env)

    return invoke


@pytest.fixture
def v2_file(tmp_path) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(demo_v2_text())
    return path


def version_count(session) -> int:
    return session.scalar(select(func.count()).select_from(CatalogVersion))


def test_validate_valid_file_prints_a_summary(run):
    result = run("validate", str(DEMO))
    assert result.exit_code == 0
    assert result.output == (
        f"{DEMO} is valid: 6 tiers, 8 features, 3 add-ons, 1 promotion, currencies usd, eur.\n"
    )


def test_validate_invalid_file_prints_every_error_and_exits_1(run):
    result = run("validate", str(MANY_ERRORS))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 19
    assert lines[0].startswith(f"{MANY_ERRORS}: currencies[1]: 'usdd' is not a currency code")
    assert lines[-1] == f"{MANY_ERRORS}: 18 problems; nothing was changed."


def test_validate_missing_file_is_a_clear_error(run, tmp_path):
    result = run("validate", str(tmp_path / "none.yaml"))
    assert result.exit_code == 1
    assert "cannot read the file: No such file or directory" in result.output


def test_diff_without_any_published_version_says_everything_is_new(run):
    result = run("diff", str(DEMO))
    assert result.exit_code == 0
    assert result.output.startswith("no published version yet: everything is new\n")
    assert "+ tier added: pro (Pro)" in result.output


def test_diff_against_the_newest_published_version(run, demo_catalog, v2_file):
    result = run("diff", str(v2_file))
    assert result.exit_code == 0
    assert f"Changes from version {demo_catalog.version} to {v2_file}" in result.output
    assert "~ pro.prices.month: usd 29.00 -> 32.00" in result.output
    assert "~ pro.seats: 25 -> 10" in result.output
    assert run("diff", str(DEMO)).output == (
        f"no changes: {DEMO} matches version {demo_catalog.version}\n"
    )


def test_publish_stores_a_version_and_prints_hash_and_changes(run, session):
    result = run("publish", str(DEMO), "--note", "launch", "--author", "ana")
    assert result.exit_code == 0, result.output
    row = session.scalar(select(CatalogVersion))
    assert (row.version, row.author, row.note, row.source) == (1, "ana", "launch", DEMO_TEXT)
    assert result.output.startswith(
        f"Published catalog version 1 (sha256 {row.content_hash[:12]}) by ana.\n"
        "20 changes: 2 currencies added"
    )


def test_publish_author_defaults_to_the_environment(run, session):
    result = run("publish", str(DEMO), "--note", "launch", env={"TIERGATE_AUTHOR": "bo"})
    assert result.exit_code == 0
    assert session.scalar(select(CatalogVersion.author)) == "bo"


def test_publishing_identical_content_is_a_no_op(run, demo_catalog, session):
    result = run("publish", str(DEMO), "--note", "again")
    assert result.exit_code == 0
    assert result.output.startswith(
        f"no-op: {DEMO} is identical to the newest published version {demo_catalog.version} "
    )
    assert "nothing was published" in result.output
    assert version_count(session) == 1


def test_publish_refuses_an_invalid_file_and_stores_nothing(run, session):
    result = run("publish", str(MANY_ERRORS), "--note", "oops")
    assert result.exit_code == 1
    assert "nothing was changed" in result.output
    assert version_count(session) == 0


def test_publish_needs_a_note(run, session):
    assert run("publish", str(DEMO)).exit_code == 2  # click: missing option
    result = run("publish", str(DEMO), "--note", "  ")
    assert result.exit_code == 1
    assert "--note must say why" in result.output
    assert version_count(session) == 0


def test_new_versions_do_not_move_pinned_subscriptions(run, demo_catalog, session, clock, v2_file):
    subscribe(session, clock, "acme", "pro", demo_catalog.version)
    session.commit()
    result = run("publish", str(v2_file), "--note", "stricter pro")
    assert result.exit_code == 0
    assert "Published catalog version 2" in result.output
    assert pinned(session) == {"acme": demo_catalog.version}


def test_history_lists_versions(run, demo_catalog, v2_file, clock):
    clock.advance(days=1)
    run("publish", str(v2_file), "--note", "stricter pro", "--author", "ana")
    lines = run("history").output.splitlines()
    assert lines[0].split() == ["ver", "published", "(UTC)", "author", "hash", "note"]
    assert lines[1].split()[:4] == ["2", "2026-11-16", "12:00Z", "ana"]
    assert lines[1].endswith("stricter pro")
    assert lines[2].split()[0] == "1"


def test_history_before_any_publish(run):
    assert run("history").output == "no published versions yet\n"


def test_show_prints_the_stored_source(run, demo_catalog, v2_file):
    run("publish", str(v2_file), "--note", "v2")
    assert run("show", "1").output == DEMO_TEXT
    assert run("show").output == demo_v2_text()


def test_show_unknown_version_exits_1(run, demo_catalog):
    result = run("show", "7")
    assert result.exit_code == 1
    assert result.output == (
        f"Error: Catalog version 7 does not exist (the newest is {demo_catalog.version}).\n"
    )


def test_migrate_dry_run_reports_and_changes_nothing(run, demo_catalog, session, clock, v2_file):
    run("publish", str(v2_file), "--note", "v2")
    subscribe(session, clock, "acme", "pro", 1)
    use(session, clock, "acme", "seats", 12)
    session.commit()
    result = run("migrate", "--from", "1", "--to", "2", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Would move 1 subscription(s) from catalog version 1 to 2." in result.output
    assert "acme (pro): loses audit_log; over the new seats limit (12 used, limit 10)" in (
        result.output
    )
    assert pinned(session) == {"acme": 1}


def test_migrate_moves_subscriptions(run, demo_catalog, session, clock, v2_file):
    run("publish", str(v2_file), "--note", "v2")
    subscribe(session, clock, "acme", "pro", 1)
    subscribe(session, clock, "bolt", "starter", 1)
    session.commit()
    result = run("migrate", "--from", "1", "--to", "2", "--tier", "starter")
    assert result.exit_code == 0
    assert result.output.startswith("Moved 1 subscription(s) from catalog version 1 to 2.")
    assert pinned(session) == {"acme": 1, "bolt": 2}
    assert session.scalar(select(Subscription.updated_at).where(Subscription.account_id == "bolt"))


def test_migrate_refuses_a_missing_tier_without_force(run, demo_catalog, session, clock, v2_file):
    run("publish", str(v2_file), "--note", "v2")
    subscribe(session, clock, "old", "team_legacy", 1)
    subscribe(session, clock, "acme", "pro", 1)
    session.commit()
    result = run("migrate", "--from", "1", "--to", "2")
    assert result.exit_code == 1
    assert result.output.startswith("Error: Catalog version 2 has no tier 'team_legacy'")
    assert pinned(session) == {"old": 1, "acme": 1}
    forced = run("migrate", "--from", "1", "--to", "2", "--force")
    assert forced.exit_code == 0
    assert "skipped old: tier 'team_legacy' does not exist in version 2" in forced.output
    assert pinned(session) == {"old": 1, "acme": 2}


def test_migrate_unknown_version_exits_1(run, demo_catalog):
    result = run("migrate", "--from", "1", "--to", "5")
    assert result.exit_code == 1
    assert result.output == "Error: Catalog version 5 does not exist.\n"


def test_migrate_refuses_a_tier_the_target_does_not_sell_at_the_interval(
    run, demo_catalog, session, clock, tmp_path
):
    from .test_subscribers import monthly_only_starter_text

    path = tmp_path / "monthly.yaml"
    path.write_text(monthly_only_starter_text())
    run("publish", str(path), "--note", "starter monthly only")
    subscribe(session, clock, "acme", "starter", 1, interval="year")
    session.commit()
    result = run("migrate", "--from", "1", "--to", "2")
    assert result.exit_code == 1
    assert result.output.startswith("Error: Catalog version 2 does not sell 'starter' per year")
    forced = run("migrate", "--from", "1", "--to", "2", "--force")
    assert forced.exit_code == 0
    assert "skipped acme: version 2 does not sell 'starter' per year in usd" in forced.output
    assert pinned(session) == {"acme": 1}


def test_publish_refuses_an_author_longer_than_its_column(run, session):
    result = run("publish", str(DEMO), "--note", "v1", "--author", "a" * 201)
    assert (result.exit_code, result.output) == (
        1,
        "Error: The author is 201 characters long: at most 200.\n",
    )
    assert version_count(session) == 0


def test_publish_of_an_unprintable_name_is_refused_without_a_traceback(run, session, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(DEMO_TEXT.replace("    name: Pro\n", '    name: "Pro \\ud800"\n', 1))
    result = run("publish", str(path), "--note", "v1")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "tiers[2].name: contains a lone surrogate (\\ud800, character 5)" in result.output
    assert version_count(session) == 0
