"""The downgrade and cancel pages spell out the loss before the confirm button. Once the plan
has moved since the page was opened (an upgrade or the yearly switch in another tab, another
change scheduled), confirming the old page schedules nothing: the page comes back (409) with
the loss as it is now and says the plan changed. An old page without the field the check
needs, or with that field changed by hand, is refused the same way."""

from __future__ import annotations

import html
import re
from typing import Any

from sqlalchemy import select

from billing import downgrade, portal
from billing.manual import ManualBilling
from gating.models import Account, UsageCounter
from tests.billing.conftest import form_fields, set_gauge, subscribe
from tests.billing.test_pages import SELF, db, path, post_form, version

__all__ = ["db", "version"]  # fixtures used here

CHANGED = "Your plan changed since this page was opened, so nothing was scheduled."
OUT_OF_DATE = "This page is out of date, so nothing was scheduled."


def _token(app: Any) -> str:
    return portal.account_token(app.config, "acme")


def _open(app: Any, client: Any, url: str) -> str:
    response = client.get(f"{url}{'&' if '?' in url else '?'}t={_token(app)}")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return str(response.get_data(as_text=True))


def _upgrade_in_another_tab(app: Any, client: Any, tier: str) -> None:
    """The pricing page's upgrade: its exact offer, paid."""
    offer = client.get(f"/billing/upgrade?t={_token(app)}&tier={tier}")
    assert offer.status_code == 302, offer.get_data(as_text=True)[:500]
    link = path(offer.headers["Location"])
    page = client.get(link).get_data(as_text=True)
    offer_id = link.split("?")[0].rsplit("/", 1)[1]
    assert post_form(client, page, f"/offers/{offer_id}/accept").status_code == 302


def _plan(db: Any) -> tuple[Any, ...]:
    with db() as s:
        sub = s.get(Account, "acme").subscription
        return (
            sub.tier_id,
            sub.interval,
            sub.scheduled_tier_id,
            sub.scheduled_interval,
            sub.cancel_at_period_end,
        )


def _text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def test_a_downgrade_confirmed_after_an_upgrade_in_another_tab_shows_the_loss_now(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    with db() as s:
        subscribe(s, "acme", clock, version, tier="pro")
    page = _open(app, client, "/billing/downgrade?tier=starter")
    assert "Move from Pro to Starter" in page and "Single sign-on" not in page
    _upgrade_in_another_tab(app, client, "business")
    before = _plan(db)
    assert before == ("business", "month", None, None, False)
    refused = post_form(client, page, SELF, url="/billing/downgrade")
    assert refused.status_code == 409
    text = _text(refused)
    assert CHANGED in text
    # The loss from Business, which the old page never showed.
    assert "<h1>Move from Business to Starter</h1>" in text
    assert '<li class="lost-feature">Single sign-on (SAML)</li>' in text
    assert _plan(db) == before
    # The page shown now is the one confirmed: that schedules the move.
    done = post_form(client, text, SELF, url="/billing/downgrade")
    assert done.status_code == 200
    assert "You move to Starter, billed monthly, on November 30, 2026." in _text(done)
    assert _plan(db) == ("business", "month", "starter", None, False)


def test_a_downgrade_confirmed_after_another_change_was_scheduled_says_it_replaces_it(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    with db() as s:
        subscribe(s, "acme", clock, version, tier="pro")
    page = _open(app, client, "/billing/downgrade?tier=starter")
    assert "This replaces the change already scheduled" not in page
    cancel = _open(app, client, "/billing/cancel")
    assert post_form(client, cancel, SELF, url="/billing/cancel").status_code == 200
    refused = post_form(client, page, SELF, url="/billing/downgrade")
    assert refused.status_code == 409
    text = _text(refused)
    assert CHANGED in text
    assert (
        "This replaces the change already scheduled: your subscription ends on November 30, 2026."
    ) in text
    assert _plan(db) == ("pro", "month", None, None, True)


def test_a_cancellation_confirmed_after_the_yearly_switch_in_another_tab_shows_the_new_date(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    with db() as s:
        subscribe(s, "acme", clock, version)
    page = _open(app, client, "/billing/cancel")
    assert "Cancel on November 30, 2026" in page
    yearly = _open(app, client, "/billing/yearly")
    assert post_form(client, yearly, SELF, url="/billing/yearly").status_code == 302
    before = _plan(db)
    assert before[:2] == ("starter", "year")
    refused = post_form(client, page, SELF, url="/billing/cancel")
    assert refused.status_code == 409
    text = _text(refused)
    assert CHANGED in text
    with db() as s:
        end = s.get(Account, "acme").subscription.current_period_end
    assert f"Cancel on {end:%B %-d, %Y}" in text and "Cancel on November 30, 2026" not in text
    assert _plan(db) == before


def test_a_downgrade_still_confirms_when_only_the_usage_counts_moved(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    """Usage above the new limit is shown with its count; the count moving while the page is
    open does not change what the customer agreed to."""
    with db() as s:
        subscribe(s, "acme", clock, version, tier="pro")
        set_gauge(s, "acme", "projects", 12, clock)
    page = _open(app, client, "/billing/downgrade?tier=starter")
    assert "12 projects, new limit 10" in page
    with db() as s:  # one more project, created in the app meanwhile
        s.scalar(select(UsageCounter).where(UsageCounter.feature_id == "projects")).used = 13
    done = post_form(client, page, SELF, url="/billing/downgrade")
    assert done.status_code == 200
    assert _plan(db) == ("pro", "month", "starter", None, False)


def test_a_cancellation_confirmed_from_its_page_ends_the_plan_at_the_period_end(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    with db() as s:
        subscribe(s, "acme", clock, version)
    page = _open(app, client, "/billing/cancel")
    done = post_form(client, page, SELF, url="/billing/cancel")
    assert done.status_code == 200
    assert "Your subscription ends on November 30, 2026." in _text(done)
    assert _plan(db) == ("starter", "month", None, None, True)


def test_an_old_page_without_the_check_is_shown_again_and_schedules_nothing(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    """A page cached from before the check: its form has the tier, not what it showed."""
    with db() as s:
        subscribe(s, "acme", clock, version, tier="pro")
    for url, action in (
        ("/billing/downgrade?tier=starter", "/billing/downgrade"),
        ("/billing/cancel", "/billing/cancel"),
    ):
        fields = form_fields(_open(app, client, url), SELF)
        del fields["shown"]
        refused = client.post(action, data=fields)
        assert refused.status_code == 409, action
        text = _text(refused)
        assert OUT_OF_DATE in text, action
        assert 'name="shown" value="' in text  # the page shown now can be confirmed
        assert _plan(db) == ("pro", "month", None, None, False), action


def test_a_page_whose_check_was_changed_by_hand_schedules_nothing(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    with db() as s:
        subscribe(s, "acme", clock, version, tier="pro")
    for url, action in (
        ("/billing/downgrade?tier=starter", "/billing/downgrade"),
        ("/billing/cancel", "/billing/cancel"),
    ):
        fields = form_fields(_open(app, client, url), SELF)
        shown = fields["shown"]
        for forged in (shown[:-1] + ("0" if shown[-1] != "0" else "1"), shown + "0", "x" * 5000):
            refused = client.post(action, data={**fields, "shown": forged})
            assert refused.status_code == 409, (action, forged[:40])
            assert CHANGED in _text(refused)
            assert _plan(db) == ("pro", "month", None, None, False), action


def test_a_downgrade_page_changed_by_hand_to_another_tier_schedules_nothing(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    """The form's tier changed by hand: the page spelled out the move to Starter, not Pro."""
    with db() as s:
        subscribe(s, "acme", clock, version, tier="business")
    page = _open(app, client, "/billing/downgrade?tier=starter")
    refused = post_form(client, page, SELF, {"tier": "pro"}, url="/billing/downgrade")
    assert refused.status_code == 409
    text = _text(refused)
    assert CHANGED in text and "<h1>Move from Business to Pro</h1>" in text
    assert _plan(db) == ("business", "month", None, None, False)


def test_keep_my_current_plan_keeps_the_plan_of_now_whatever_was_scheduled_since(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    """Resuming carries no check: it keeps the plan the account is on now and charges
    nothing, so a billing page opened before another change was scheduled can still use it."""
    with db() as s:
        subscribe(s, "acme", clock, version, tier="pro")
    cancel = _open(app, client, "/billing/cancel")
    post_form(client, cancel, SELF, url="/billing/cancel")
    overview = _open(app, client, "/billing")
    assert "Your subscription ends on November 30, 2026." in overview
    starter = _open(app, client, "/billing/downgrade?tier=starter")
    assert post_form(client, starter, SELF, url="/billing/downgrade").status_code == 200
    assert _plan(db) == ("pro", "month", "starter", None, False)
    response = post_form(client, overview, "/billing/resume")
    assert response.status_code == 200
    assert "Your Pro subscription continues." in _text(response)
    assert _plan(db) == ("pro", "month", None, None, False)


def test_confirming_a_downgrade_preview_made_before_the_plan_moved_is_refused(
    app: Any, db: Any, clock: Any, version: int
) -> None:
    """The service's own check, with the preview's fingerprint: refused, nothing scheduled;
    without a fingerprint (no page) the change is scheduled as asked."""
    with db() as s:
        subscribe(s, "acme", clock, version, tier="pro")
    with db() as s:
        shown = downgrade.downgrade_preview(s, clock, "acme", "starter").fingerprint
        cancel_shown = downgrade.downgrade_preview(s, clock, "acme", None).fingerprint
        assert re.fullmatch(r"[0-9a-f]{32}", shown) and shown != cancel_shown
        s.get(Account, "acme").subscription.interval = "year"  # a webhook's change
    for confirm in (
        lambda s: downgrade.confirm_downgrade(
            s, clock, ManualBilling(), "acme", "starter", "month", shown=shown
        ),
        lambda s: downgrade.cancel(s, clock, ManualBilling(), "acme", shown=cancel_shown),
    ):
        with db() as s:
            try:
                confirm(s)
            except downgrade.PreviewChanged as exc:
                assert exc.message.startswith(CHANGED)
                s.rollback()
            else:
                raise AssertionError("a stale preview was confirmed")
        assert _plan(db) == ("pro", "year", None, None, False)
    with db() as s:
        downgrade.confirm_downgrade(s, clock, ManualBilling(), "acme", "starter", "month")
    assert _plan(db) == ("pro", "year", "starter", "month", False)
