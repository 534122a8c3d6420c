"""`tiergate catalog publish` of the content of an older version: a rollback."""

from __future__ import annotations

from tests.tiers.test_cli import DEMO, run, v2_file  # noqa: F401 - fixtures
from tiers import store


def test_publishing_a_revert_to_an_older_version_does_not_exit_0_while_serving_the_newer(
    run,  # noqa: F811
    demo_catalog,
    v2_file,  # noqa: F811
    session,
):
    """v2 (dearer Pro) is live; the team reverts it in git and publishes the v1 file again:
    it becomes version 3, with v1's content, and the newest catalog sells Pro at $29.00 again.
    Publishing it once more is a no-op."""
    assert run("publish", str(v2_file), "--note", "dearer pro").exit_code == 0
    diff = run("diff", str(DEMO))
    assert "~ pro.prices.month: usd 32.00 -> 29.00" in diff.output  # what the review sees
    result = run("publish", str(DEMO), "--note", "revert: back to 29.00")
    assert result.exit_code == 0, result.output
    assert "Published catalog version 3 (sha256" in result.output
    assert f", the content of version {demo_catalog.version})" in result.output
    newest = store.load(session)
    assert (newest.version, newest.catalog.tier("pro").price("month", "usd")) == (3, 2900)
    again = run("publish", str(DEMO), "--note", "once more")
    assert again.exit_code == 0 and "no-op" in again.output
