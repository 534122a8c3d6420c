"""The signed-in pricing page: every enabled button leads to a page that works."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest

from billing import portal
from tests.billing.conftest import subscribe
from tiergate.db import get_db

STATES = {
    "trialing": dict(tier="starter", status="trialing"),
    "past_due": dict(tier="starter", status="past_due"),
    "canceling": dict(tier="pro", cancel=True),
    "yearly": dict(tier="pro", interval="year"),
    "scheduled_down": dict(tier="pro", scheduled="starter"),
    "business": dict(tier="business"),
    "yearly_starter": dict(tier="starter", interval="year"),
    "eur_pro": dict(tier="pro", currency="eur"),
}


@pytest.mark.parametrize("state", list(STATES))
@pytest.mark.parametrize("tab", ["month", "year"])
def test_every_pricing_button_of_a_signed_in_account_works(
    app, client, clock, demo_catalog, state, tab
) -> None:
    spec = dict(STATES[state])
    cancel = spec.pop("cancel", False)
    scheduled = spec.pop("scheduled", None)
    status = spec.get("status", "active")
    with get_db(app).session() as s:
        account = subscribe(s, "acme", clock, int(demo_catalog.version), **spec)
        sub = account.subscription
        sub.cancel_at_period_end = cancel
        sub.scheduled_tier_id = scheduled
        if status == "trialing":
            sub.trial_end = clock.now() + timedelta(days=5)
        if status == "past_due":
            sub.past_due_since = clock.now() - timedelta(days=1)
    token = portal.account_token(app.config, "acme")
    page = client.get(f"/pricing?t={token}&interval={tab}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    cells = re.findall(r'<td class="cta-cell[^"]*">(.*?)</td>', text, re.S)
    assert cells
    failures = []
    for cell in cells:
        m = re.search(r'href="(/billing[^"]+)"', cell)
        if not m:
            continue
        url = html.unescape(m.group(1))
        answer = client.get(url)
        if answer.status_code >= 400:
            body = re.sub(r"<[^>]+>", " ", answer.get_data(as_text=True))
            failures.append(
                (
                    url.split("?")[0],
                    re.search(r"t=[^&]*&?(.*)", url).group(1),
                    answer.status_code,
                    " ".join(body.split())[-300:],
                )
            )
    assert not failures, failures
