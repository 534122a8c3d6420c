"""The post-purchase cross-sell right after a first plan's trial started from an offer."""

from __future__ import annotations

import html
import re
from datetime import timedelta

from tests.billing.test_trial_offers_manual import accept, invoices, offer_page, renew_at


def test_the_cross_sell_after_a_trial_start_does_not_call_its_zero_amount_prorated(
    app, client, clock, demo_catalog
) -> None:  # type: ignore[no-untyped-def]
    """Pro's trial starts from an offer (audit log); the success page cross-sells Extended
    support ($0.00 today, then $49.00 per month). Its page says "$0.00 (prorated for the rest
    of your billing period)": nothing is prorated during a trial, and the $49.00 is first
    charged with the plan when the trial ends (November 29: $78.00)."""
    offer_id, _, page = offer_page(app, client, clock, "newco", "audit_log", 0)
    done = client.get(accept(client, page, offer_id).headers["Location"])
    body = done.get_data(as_text=True)
    url = html.unescape(re.search(r'href="(/billing/addons/[^"]+)"', body).group(1))  # type: ignore[union-attr]
    addon_page = client.get(url).get_data(as_text=True)
    assert "Add now — pay $0.00 today" in addon_page
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', addon_page))
    bought = client.post(url.split("?")[0], data={k: html.unescape(v) for k, v in fields.items()})
    assert bought.status_code == 302
    renew_at(app, clock, clock.now() + timedelta(days=14, hours=1))
    assert [i.amount_paid for i in invoices(app, "newco")] == [0, 0, 2900 + 4900]
    assert "prorated" not in addon_page
