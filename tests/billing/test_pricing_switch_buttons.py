"""The signed-in pricing page (`/pricing?t=...`) has no dead plan buttons, on either tab."""

from __future__ import annotations

import html
import re
from typing import Any

from billing import portal
from tests.billing.conftest import subscribe
from tests.billing.test_pages import db, version

__all__ = ["db", "version"]


def _buttons(page: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'href="(/billing/[^"]+)"', page)]


def test_switch_buttons_on_the_yearly_tab_of_a_monthly_customer_lead_somewhere(
    app: Any, client: Any, db: Any, clock: Any, version: int
) -> None:
    """A Pro customer billed monthly opens the pricing page from the app and picks the yearly
    tab: "Switch to Starter" leads to the downgrade page at the subscription's own interval
    (Starter per year would bill now: not a move at the period end)."""
    with db() as s:
        subscribe(s, "acme", clock, version, tier="pro", interval="month")
    token = portal.account_token(app.config, "acme")
    page = client.get(f"/pricing?t={token}&interval=year").get_data(as_text=True)
    switch = [b for b in _buttons(page) if b.startswith("/billing/downgrade")]
    assert switch, "no Switch to ... button for the lower paid tier"
    for link in switch:
        response = client.get(link)
        assert response.status_code == 200, (
            f"{link} -> {response.status_code}: "
            + re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)))[:400]
        )
