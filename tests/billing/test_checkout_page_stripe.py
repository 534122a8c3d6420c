"""The first-plan checkout page with Stripe: its renewal line and its yearly alternative state
what Stripe then charges (UPSELL rule 5). Each test reads the page as a customer does, pays,
and compares the numbers shown with Stripe's invoices."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from billing import portal
from tests.billing.conftest import add_account, dollars
from tests.billing.stripe_fixtures import fake_stripe
from tests.billing.test_pages import SELF, post_form, yearly_alternative
from tests.billing.test_stripe_pages import Shop, hosted_page, shop, subscription
from tests.conftest import DEMO_CATALOG
from tiergate.clock import FixedClock
from tiergate.db import get_db
from tiers import store
from tiers.loader import load_catalog_file

__all__ = ["fake_stripe", "shop"]

RENEWAL = re.compile(r'data-amount="next_renewal">(\S+) on (\w+ \d+, \d{4})')

# 30 % off the first two months, typed as a code (Stripe: a `repeating` coupon of 2 months).
TWO_MONTHS = """promotions:
  - id: two_months
    name: 30 % off your first two months
    percent_off: 30
    tiers: [pro]
    intervals: [month]
    code: TWOMONTHS
    duration: repeating
    duration_in_months: 2
"""


def _publish(app: Any, clock: FixedClock, tmp_path: Any, text: str) -> None:
    source_path = tmp_path / "catalog.yaml"
    source_path.write_text(text)
    catalog, source = load_catalog_file(source_path)
    with get_db(app).session() as s:
        store.publish(s, catalog, source=source, author="t", note="review", now=clock.now())


def test_stripe_the_renewal_after_a_trial_ending_on_a_short_month_end_is_what_stripe_charges(
    shop: Shop, client: Any, clock: FixedClock, tmp_path: Any
) -> None:
    """A 30-day trial started on March 31 ends on April 30, which Stripe makes the billing
    anchor: the first paid month renews on May 30, still inside the two-month promotion
    ($20.30). The page says so."""
    when = datetime(2027, 3, 31, 12, tzinfo=UTC)
    clock.set(when)
    shop.fake.set_time(int(when.timestamp()))
    text = DEMO_CATALOG.read_text().replace("    trial_days: 14\n", "    trial_days: 30\n")
    _publish(shop.app, clock, tmp_path, text.replace("promotions:\n", TWO_MONTHS, 1))
    with get_db(shop.app).session() as s:
        add_account(s, "newco", clock)
    token = portal.account_token(shop.app.config, "newco")
    response = client.get(f"/billing/checkout?t={token}&tier=pro&interval=month&code=TWOMONTHS")
    assert response.status_code == 200
    page = html.unescape(response.get_data(as_text=True))
    stated = RENEWAL.search(page)
    assert stated is not None
    shown = (dollars(stated.group(1)), stated.group(2))

    posted = post_form(client, response.get_data(as_text=True), SELF, url="/billing/checkout")
    assert posted.status_code == 302
    status, _, _ = hosted_page(posted.headers["Location"], {"payment_method": "pm_card_visa"})
    assert status == 303
    shop.deliver()
    sub_id = subscription(shop.app, "newco").stripe_subscription_id
    for _ in range(2):  # the trial's end (first charge), then the renewal the page states
        shop.fake.advance_to_period_end(sub_id)
        shop.deliver()
    _trial, first, renewal = shop.stripe_invoices("newco")
    assert first.amount_paid == 2030  # as the page's "First charge" said
    charged = (
        renewal.amount_paid,
        f"{datetime.fromtimestamp(renewal.created, UTC):%B %-d, %Y}",
    )
    assert shown == charged == (2030, "May 30, 2027")


def test_stripe_the_yearly_alternative_with_a_trial_says_what_is_due_today(
    shop: Shop, client: Any, clock: FixedClock
) -> None:
    """A customer who owes $10.00 on Stripe (a balance set in the Dashboard, mirrored on the
    account) pays it today with a trial too: the yearly alternative says so, as the yearly
    page it opens does, and Stripe charges it."""
    with get_db(shop.app).session() as s:
        account = add_account(s, "newco", clock)
        customer = shop.fake.client().v1.customers.create(
            {"email": "newco@example.com", "balance": 1000}
        )
        shop.fake.get(customer.id)["currency"] = "usd"
        account.stripe_customer_id = customer.id
        account.balance, account.balance_currency = 1000, "usd"
    token = portal.account_token(shop.app.config, "newco")
    monthly = client.get(f"/billing/checkout?t={token}&tier=pro&interval=month")
    assert monthly.status_code == 200
    alternative = yearly_alternative(monthly.get_data(as_text=True))
    assert alternative is not None
    sentence, link = alternative
    found = re.search(r"(?:Due today: |free trial: )(\$[\d,]+\.\d\d)", sentence)
    said_today = 0 if "nothing today" in sentence else dollars(found.group(1)) if found else None

    yearly = client.get("/billing/checkout?" + urlencode(link))
    assert yearly.status_code == 200
    yearly_page = yearly.get_data(as_text=True)
    due = re.search(r'data-amount="due_today">([^<]+)<', yearly_page)
    assert due is not None and dollars(due.group(1)) == 1000  # the yearly page: $10.00 today
    posted = post_form(client, yearly_page, SELF, url="/billing/checkout")
    assert posted.status_code == 302
    status, _, _ = hosted_page(posted.headers["Location"], {"payment_method": "pm_card_visa"})
    assert status == 303
    shop.deliver()
    [today] = shop.stripe_invoices("newco")
    assert today.amount_paid == 1000  # what Stripe took today
    assert said_today == today.amount_paid
