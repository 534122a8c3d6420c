"""The end-user billing pages with Stripe billing, end to end: the test client drives the pages,
StripeBilling talks to the fake Stripe API through the real SDK, and the fake's events reach the
app through the signed webhook endpoint.

Like test_pages.py (manual billing), each journey opens the signed link, reads the page, posts
its form with its CSRF token, and then compares the amount the page showed with what Stripe
previewed and charged and with the rows recorded locally.
"""

from __future__ import annotations

import html
import http.client
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from sqlalchemy import select

from billing import portal, service
from billing.manual import ManualBilling
from billing.models import BillingChange, ChangeStatus, Invoice
from billing.provider import Customer, ItemKind, Price, StartRequest
from billing.stripe_provider import StripeBilling
from billing.stripe_sync import ensure_price
from gating.models import Account, AccountAddOn, Offer, Subscription, SubscriptionStatus
from tests.billing.conftest import (
    PERIOD_END,
    PERIOD_START,
    add_account,
    dollars,
    gate_offer,
    set_gauge,
    subscribe,
)
from tests.billing.stripe_fixtures import (
    HALFWAY,
    WEBHOOK_SECRET,
    fake_stripe,
    make_billing,
)
from tests.billing.test_pages import event_types, paid_amounts, path, post_form
from tests.fakestripe import FakeStripe
from tiergate.clock import FixedClock
from tiergate.db import get_db
from tiers import store

__all__ = ["fake_stripe"]  # a fixture used here

SELF = '<form method="post">'  # a form posting back to its own page
STARTER = Price(ItemKind.TIER, "starter", "Starter", "month", "usd", 900)
PRO = Price(ItemKind.TIER, "pro", "Pro", "month", "usd", 2900)
PRO_YEARLY = Price(ItemKind.TIER, "pro", "Pro", "year", "usd", 29000)
URL = "http://localhost/billing"
URLS = service.Urls(URL, URL)


@dataclass
class Shop:
    """The app on Stripe billing, its fake Stripe API, and the events delivered so far."""

    app: Any
    fake: FakeStripe
    clock: FixedClock
    delivered: set[str] = field(default_factory=set)

    @property
    def billing(self) -> StripeBilling:
        billing = self.app.extensions["tiergate.billing"]
        assert isinstance(billing, StripeBilling)
        return billing

    def deliver(self, *, newest_first: bool = False) -> list[str]:
        """POST every event not delivered yet to /webhooks/stripe, signed; each must be a 200."""
        client = self.app.test_client()
        types = []
        pending = [e for e in self.fake.events if e["id"] not in self.delivered]
        for event in reversed(pending) if newest_first else pending:
            done = self.fake.deliver(
                event,
                lambda body, headers: client.post("/webhooks/stripe", data=body, headers=headers),
                WEBHOOK_SECRET,
            )
            assert done.status == 200, (event["type"], done.body)
            self.delivered.add(event["id"])
            types.append(event["type"])
        return types

    def subscribed(self, plan: Price, account_id: str = "acme") -> str:
        """`account_id` paid `plan` at Checkout at the period start (webhooks delivered); the
        fake's clock then stands halfway through the period, at the app's fixed now."""
        self.fake.reset(now=PERIOD_START)
        self.delivered.clear()
        with get_db(self.app).session() as s:
            add_account(s, account_id, self.clock)
        customer = Customer(account_id, f"{account_id}@example.com", account_id)
        start = StartRequest(
            "chg_before_" + account_id,
            customer,
            plan,
            (),
            (),
            PERIOD_START,
            0,
            None,
            plan.amount,
            URL,
            URL,
        )
        started = self.billing.start_subscription(start)
        assert started.external_id is not None
        self.fake.complete_checkout(started.external_id)
        self.deliver()
        self.fake.set_time(HALFWAY)
        sub = subscription(self.app, account_id)
        assert (sub.tier_id, sub.status, sub.provider) == (plan.item_id, "active", "stripe")
        assert (sub.current_period_start, sub.current_period_end) == (PERIOD_START, PERIOD_END)
        assert sub.stripe_subscription_id is not None
        return sub.stripe_subscription_id

    def stripe_subscription(self, sub_id: str) -> Any:
        return self.fake.client().v1.subscriptions.retrieve(sub_id)

    def stripe_invoices(self, account_id: str = "acme") -> list[Any]:
        """Every invoice Stripe holds for the account's customer, oldest first."""
        customer = customer_id(self.app, account_id)
        listed = self.fake.client().v1.invoices.list({"customer": customer, "limit": 100})
        return list(reversed(listed.data))


@pytest.fixture
def shop(app: Any, demo_catalog: Any, clock: FixedClock, fake_stripe: FakeStripe) -> Shop:
    """The app billing through StripeBilling against the fake, with webhooks configured."""
    app.config["STRIPE_WEBHOOK_SECRET"] = WEBHOOK_SECRET
    app.extensions["tiergate.billing"] = make_billing(fake_stripe)
    return Shop(app, fake_stripe, clock)


@pytest.fixture
def db(app: Any) -> Any:
    """A session committed at the end of each `with db() as s:` block (test_pages.py's helpers)."""
    return get_db(app).session


# ---- reading the local rows ------------------------------------------------------------------


def subscription(app: Any, account_id: str = "acme") -> Subscription:
    with get_db(app).sessionmaker() as s:
        account = s.get(Account, account_id)
        assert account is not None and account.subscription is not None
        return account.subscription


def has_subscription(app: Any, account_id: str) -> bool:
    with get_db(app).sessionmaker() as s:
        account = s.get(Account, account_id)
        return account is not None and account.subscription is not None


def customer_id(app: Any, account_id: str = "acme") -> str:
    with get_db(app).sessionmaker() as s:
        account = s.get(Account, account_id)
        assert account is not None and account.stripe_customer_id is not None
        return account.stripe_customer_id


def local_invoices(app: Any, account_id: str = "acme") -> list[Invoice]:
    with get_db(app).sessionmaker() as s:
        query = select(Invoice).where(Invoice.account_id == account_id).order_by(Invoice.id)
        return list(s.scalars(query))


def changes(app: Any, account_id: str = "acme") -> list[BillingChange]:
    with get_db(app).sessionmaker() as s:
        query = select(BillingChange).where(BillingChange.account_id == account_id)
        return list(s.scalars(query.order_by(BillingChange.created_at, BillingChange.id)))


def amount_on(page: str, pattern: str) -> int:
    """The amount a reader takes from the page where `pattern`'s group stands."""
    match = re.search(pattern, page)
    assert match, f"{pattern!r} is not on the page"
    return dollars(match.group(1))


def account_path(app: Any, account_id: str = "acme") -> str:
    return path(portal.account_link(app.config, account_id))


def token(app: Any, account_id: str = "acme") -> str:
    return portal.account_token(app.config, account_id)


def price_ids(stripe_sub: Any) -> list[str]:
    return sorted(item.price.lookup_key for item in stripe_sub["items"].data)


def stripe_preview(shop: Shop, sub_id: str, plan: Price, at: Any) -> int:
    """What Stripe itself previews for swapping the subscription's tier item to `plan` at `at`,
    invoiced now (always_invoice), independently of StripeBilling's own preview."""
    client = shop.fake.client()
    price = ensure_price(client, plan, 1)
    [item] = client.v1.subscriptions.retrieve(sub_id)["items"].data
    preview = client.v1.invoices.create_preview(
        {
            "subscription": sub_id,
            "subscription_details": {
                "items": [{"id": item.id, "price": price.id}],
                "proration_date": int(at.timestamp()),
                "proration_behavior": "always_invoice",
            },
        }
    )
    return int(preview.amount_due)


def gate_offer_link(shop: Shop) -> tuple[str, str]:
    """acme (Starter, 10 of 10 projects) asks for one more: the gate's own offer and its link."""
    with get_db(shop.app).session() as s:
        set_gauge(s, "acme", "projects", 10, shop.clock)
        offer = gate_offer(s, shop.clock, "acme", "projects", used=10, requested=1)
        offer_id = offer.id
    return offer_id, path(portal.offer_link(shop.app.config, "acme", offer_id))


# ---- 1. upgrade in place from the offer page -------------------------------------------------


def test_the_offer_page_amount_is_stripes_preview_and_exactly_what_stripe_charges(
    shop: Shop, client: Any, db: Any
) -> None:
    sub_id = shop.subscribed(STARTER)
    offer_id, link = gate_offer_link(shop)
    page = client.get(link).get_data(as_text=True)
    shown = amount_on(page, r"Upgrade now — pay (\S+) today")
    assert amount_on(page, r'data-amount="due_today">([^<]+)<') == shown
    with db() as s:
        quoted_at = s.get(Offer, offer_id).proration_date
    assert shown == stripe_preview(shop, sub_id, PRO, quoted_at) == 1000  # 14.50 - 4.50
    assert subscription(shop.app).tier_id == "starter"  # nothing granted by showing the price

    response = post_form(client, page, f"/offers/{offer_id}/accept")
    assert response.status_code == 302
    done = client.get(response.headers["Location"]).get_data(as_text=True)

    first, upgrade = shop.stripe_invoices()
    assert (upgrade.status, upgrade.amount_paid) == ("paid", shown)
    assert upgrade.billing_reason == "subscription_update"
    assert price_ids(shop.stripe_subscription(sub_id)) == [PRO.lookup_key]
    assert amount_on(done, r"Charged today: <strong[^>]*>([^<]+)<") == shown
    assert "You are now on Pro." in done
    sub = subscription(shop.app)
    assert (sub.tier_id, sub.status, sub.current_period_end) == ("pro", "active", PERIOD_END)
    assert [(i.external_id, i.amount_paid) for i in local_invoices(shop.app)] == [
        (first.id, 900),
        (upgrade.id, shown),
    ]
    assert event_types(db, offer_id) == ["shown", "clicked", "accepted", "paid"]

    # Stripe's events arrive afterwards: they confirm the same state and record nothing twice.
    assert "invoice.paid" in shop.deliver()
    assert subscription(shop.app).tier_id == "pro"
    assert [i.amount_paid for i in local_invoices(shop.app)] == [900, shown]
    [change] = [c for c in changes(shop.app) if c.offer_id == offer_id]
    assert change.status is ChangeStatus.APPLIED


def test_the_yearly_alternative_with_its_promotion_charges_the_amount_shown_through_stripe(
    shop: Shop, client: Any, db: Any
) -> None:
    sub_id = shop.subscribed(STARTER)
    offer_id, link = gate_offer_link(shop)
    page = client.get(link).get_data(as_text=True)
    with db() as s:
        quoted = s.get(Offer, offer_id).details["yearly_alternative"]
    assert quoted["promotion"]["id"] == "yearly_launch"  # 20 % off the first year of Pro
    assert "Or pay yearly: $290.00 per year, saving $58.00." in page
    shown = amount_on(page, r"Pay yearly — (\S+) today")
    assert shown == quoted["amount_due_today"] == 22750  # 290 - 20 % - Starter's unused 4.50

    response = post_form(client, page, f"/offers/{offer_id}/accept", {"interval": "year"})
    assert response.status_code == 302, response.get_data(as_text=True)
    *_, upgrade = shop.stripe_invoices()
    assert (upgrade.status, upgrade.amount_paid) == ("paid", shown)
    assert upgrade.total_discount_amounts[0].amount == 5800  # the coupon, on the Pro line only
    stripe_sub = shop.stripe_subscription(sub_id)
    assert price_ids(stripe_sub) == [PRO_YEARLY.lookup_key]
    sub = subscription(shop.app)
    assert (sub.tier_id, sub.interval, sub.status) == ("pro", "year", "active")
    assert [i.amount_paid for i in local_invoices(shop.app)] == [900, shown]
    assert event_types(db, offer_id) == ["shown", "clicked", "accepted", "paid"]
    shop.deliver()
    assert [i.amount_paid for i in local_invoices(shop.app)] == [900, shown]


def test_a_declined_card_on_a_promoted_change_leaves_neither_the_plan_nor_the_coupon(
    shop: Shop, client: Any, db: Any
) -> None:
    sub_id = shop.subscribed(STARTER)
    offer_id, link = gate_offer_link(shop)
    page = client.get(link).get_data(as_text=True)
    shop.fake.decline_next_payment(customer_id(shop.app))
    response = post_form(client, page, f"/offers/{offer_id}/accept", {"interval": "year"})
    assert "declined" in response.get_data(as_text=True).lower()
    stripe_sub = shop.stripe_subscription(sub_id)
    assert price_ids(stripe_sub) == [STARTER.lookup_key]
    assert not stripe_sub.discounts  # the promotion went with the change that did not happen
    assert [i.amount_paid for i in shop.stripe_invoices() if i.status == "paid"] == [900]
    assert subscription(shop.app).tier_id == "starter"


def _yearly_alternative_through_checkout(
    shop: Shop, client: Any, clock: FixedClock, db: Any, account_id: str, due: int
) -> Any:
    with get_db(shop.app).session() as s:
        offer = gate_offer(s, clock, account_id, "projects", used=3, requested=1)
        offer_id, quoted = offer.id, offer.details["yearly_alternative"]
    link = path(portal.offer_link(shop.app.config, account_id, offer_id))
    page = client.get(link).get_data(as_text=True)
    shown = amount_on(page, r"Pay yearly — (\S+) today")
    assert shown == quoted["amount_due_today"] == due
    response = post_form(
        client, page, 'name="interval" value="year"', url=f"/offers/{offer_id}/accept"
    )
    assert response.status_code == 302
    pay_url = response.headers["Location"]
    assert pay_url.startswith(f"{shop.fake.api_base}/c/pay/cs_")
    status, checkout, _ = hosted_page(pay_url)
    assert status == 200 and f'<span id="total">{shown}</span> usd' in checkout
    status, _, _ = hosted_page(pay_url, {"payment_method": "pm_card_visa"})
    assert status == 303
    assert "checkout.session.completed" in shop.deliver()
    [invoice] = shop.stripe_invoices(account_id)[-1:]
    assert (invoice.status, invoice.amount_paid) == ("paid", shown)
    # A trial's offer is paid at the trial's first charge, not when the trial starts.
    paid = ["accepted"] if due == 0 else ["accepted", "paid"]
    assert event_types(db, offer_id)[-len(paid) :] == paid
    return subscription(shop.app, account_id)


def test_a_new_account_starts_the_yearly_alternative_with_its_trial_through_checkout(
    shop: Shop, client: Any, clock: FixedClock, db: Any
) -> None:
    # A first plan starts with the tier's trial, wherever it is bought (as at checkout).
    with get_db(shop.app).session() as s:
        add_account(s, "newco", clock)
        set_gauge(s, "newco", "projects", 3, clock)
    sub = _yearly_alternative_through_checkout(shop, client, clock, db, "newco", 0)
    assert (sub.tier_id, sub.interval, sub.status) == ("starter", "year", "trialing")
    assert sub.trial_end == clock.now() + timedelta(days=14)
    shop.fake.advance_to_period_end(sub.stripe_subscription_id)
    shop.deliver()
    with db() as s:
        plan_offer = select(Offer.id).where(Offer.account_id == "newco", Offer.to_tier_id != "")
        [offer_id] = s.scalars(plan_offer)
    assert event_types(db, offer_id)[-2:] == ["accepted", "paid"]
    first_charge = shop.stripe_invoices("newco")[-1].amount_paid
    assert paid_amounts(db, offer_id) == [first_charge] and first_charge > 0


def test_a_returning_account_pays_the_yearly_alternative_through_checkout(
    shop: Shop, client: Any, clock: FixedClock, db: Any
) -> None:
    with get_db(shop.app).session() as s:
        add_account(s, "back", clock)
        set_gauge(s, "back", "projects", 3, clock)
        s.add(  # a plan that ended long ago: one trial per account
            Subscription(
                account_id="back", tier_id="starter", interval="month", currency="usd",
                status=SubscriptionStatus.CANCELED, catalog_version=1,
                current_period_start=clock.now() - timedelta(days=90),
                current_period_end=clock.now() - timedelta(days=60),
                created_at=clock.now(), updated_at=clock.now(),
            )
        )  # fmt: skip
    sub = _yearly_alternative_through_checkout(shop, client, clock, db, "back", 9000)
    assert (sub.tier_id, sub.interval, sub.status) == ("starter", "year", "active")


def test_a_promotion_code_typed_on_the_checkout_page_is_charged_by_stripe_checkout(
    shop: Shop, client: Any, clock: FixedClock, db: Any, tmp_path: Any
) -> None:
    from tests.billing.test_pages import WELCOME
    from tests.conftest import DEMO_CATALOG
    from tiers import store
    from tiers.loader import load_catalog_file

    source_path = tmp_path / "catalog.yaml"
    source_path.write_text(DEMO_CATALOG.read_text().replace("promotions:\n", WELCOME, 1))
    catalog, source = load_catalog_file(source_path)
    with get_db(shop.app).session() as s:
        store.publish(s, catalog, source=source, author="t", note="code", now=clock.now())
        add_account(s, "newco", clock)
    t = token(shop.app, "newco")
    page = client.get(
        f"/billing/checkout?t={t}&tier=business&interval=month&code=WELCOME25"
    ).get_data(as_text=True)
    shown = amount_on(page, r'data-amount="due_today">([^<]+)<')
    assert shown == 5925  # 79.00 less 25 %
    response = post_form(client, page, SELF, url="/billing/checkout")
    assert response.status_code == 302
    pay_url = response.headers["Location"]
    status, checkout, _ = hosted_page(pay_url)
    assert status == 200 and f'<span id="total">{shown}</span> usd' in checkout
    status, _, _ = hosted_page(pay_url, {"payment_method": "pm_card_visa"})
    assert status == 303
    shop.deliver()
    [invoice] = shop.stripe_invoices("newco")
    assert (invoice.status, invoice.amount_paid) == ("paid", shown)
    assert subscription(shop.app, "newco").tier_id == "business"


def test_a_code_typed_on_the_offer_page_is_what_stripe_charges_for_the_upgrade(
    shop: Shop, client: Any, clock: FixedClock, db: Any, tmp_path: Any
) -> None:
    from tests.billing.test_pages import publish_upgrade_codes

    publish_upgrade_codes(shop.app, clock, tmp_path)
    sub_id = shop.subscribed(STARTER)
    offer_id, link = gate_offer_link(shop)
    plain = amount_on(client.get(link).get_data(as_text=True), r"Upgrade now — pay (\S+) today")
    response = client.get(link + "&code=PROHALF")
    assert response.status_code == 302
    page = client.get(path(response.headers["Location"])).get_data(as_text=True)
    coded_id = re.search(r'action="/offers/(off_[\w-]+)/accept"', page).group(1)  # type: ignore[union-attr]
    shown = amount_on(page, r"Upgrade now — pay (\S+) today")
    assert (plain, shown) == (1000, 275)  # Pro's unused half, 14.50, halved, less 4.50

    assert post_form(client, page, f"/offers/{coded_id}/accept").status_code == 302
    *_, upgrade = shop.stripe_invoices()
    assert (upgrade.status, upgrade.amount_paid) == ("paid", shown)
    assert price_ids(shop.stripe_subscription(sub_id)) == [PRO.lookup_key]
    assert subscription(shop.app).tier_id == "pro"
    shop.deliver()
    assert [i.amount_paid for i in local_invoices(shop.app)] == [900, shown]


# ---- 2. a declined card on that upgrade ------------------------------------------------------


def test_a_declined_card_on_the_upgrade_says_so_and_leaves_the_account_on_its_tier(
    shop: Shop, client: Any, db: Any
) -> None:
    sub_id = shop.subscribed(STARTER)
    offer_id, link = gate_offer_link(shop)
    page = client.get(link).get_data(as_text=True)
    shop.fake.decline_next_payment(customer_id(shop.app))

    response = post_form(client, page, f"/offers/{offer_id}/accept")
    body = response.get_data(as_text=True)
    assert response.status_code == 402
    assert "Your payment did not go through" in body
    assert "declined" in body
    assert "Nothing was charged or changed: you are still on Starter." in body

    customer = customer_id(shop.app)
    stripe_subs = shop.fake.client().v1.subscriptions.list({"customer": customer, "status": "all"})
    assert [s.id for s in stripe_subs.data] == [sub_id]  # no second subscription
    stripe_sub = shop.stripe_subscription(sub_id)
    assert price_ids(stripe_sub) == [STARTER.lookup_key] and stripe_sub.status == "active"
    invoices = shop.stripe_invoices()
    assert [(i.status, i.amount_paid) for i in invoices] == [("paid", 900), ("void", 0)]
    assert subscription(shop.app).tier_id == "starter"
    assert [i.amount_paid for i in local_invoices(shop.app)] == [900]
    assert event_types(db, offer_id)[-1] == "failed"
    [change] = [c for c in changes(shop.app) if c.offer_id == offer_id]
    assert change.status is ChangeStatus.FAILED

    # The decline's events arrive, even out of order: the declined invoice is recorded as Stripe
    # left it (void), so the invoice list shows the customer no open invoice; nothing changes.
    assert shop.deliver(newest_first=True)[:2] == ["invoice.voided", "invoice.payment_failed"]
    sub = subscription(shop.app)
    assert (sub.tier_id, sub.status) == ("starter", "active")
    declined = invoices[1]
    assert [(i.external_id, i.status, i.amount_paid) for i in local_invoices(shop.app)] == [
        (invoices[0].id, "paid", 900),
        (declined.id, "void", 0),
    ]
    overview = client.get(account_path(shop.app)).get_data(as_text=True)
    assert "You are on <strong>Starter</strong>" in overview
    assert "<td>Void</td>" in overview and "<td>Unpaid</td>" not in overview


# ---- 3. the first paid subscription through Checkout -----------------------------------------


def hosted_page(url: str, form: dict[str, str] | None = None) -> tuple[int, str, str]:
    """GET (or POST `form` to) the fake's hosted Checkout page over HTTP, as the browser does;
    returns the status, the body and the redirect target (not followed: it is the app's)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=10)
    try:
        if form is None:
            conn.request("GET", parts.path)
        else:
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            conn.request("POST", parts.path, urlencode(form), headers)
        response = conn.getresponse()
        return response.status, response.read().decode(), response.getheader("Location") or ""
    finally:
        conn.close()


def test_checkout_from_the_billing_page_upgrades_only_once_stripe_confirms_the_payment(
    shop: Shop, client: Any, clock: FixedClock
) -> None:
    with get_db(shop.app).session() as s:
        add_account(s, "newco", clock)
    overview = client.get(account_path(shop.app, "newco")).get_data(as_text=True)
    assert "You are on the Free plan." in overview and "Business: $79.00 per month" in overview
    href = re.search(r'href="(/billing/checkout\?[^"]*tier=business[^"]*interval=month)"', overview)
    assert href is not None
    page = client.get(html.unescape(href.group(1))).get_data(as_text=True)
    shown = amount_on(page, r"Subscribe — pay (\S+) today")
    assert shown == 7900  # Business has no trial

    response = post_form(client, page, SELF, url="/billing/checkout")
    assert response.status_code == 302
    pay_url = response.headers["Location"]
    assert pay_url.startswith(f"{shop.fake.api_base}/c/pay/cs_")
    session_id = pay_url.rsplit("/", 1)[1]
    [pending] = changes(shop.app, "newco")
    assert (pending.kind, pending.status) == ("checkout", ChangeStatus.PENDING)
    assert not has_subscription(shop.app, "newco")

    # The browser comes back without paying (or someone types the return URL): nothing changes.
    success = f"{account_path(shop.app, 'newco')}&session_id={session_id}"
    unpaid = client.get(success).get_data(as_text=True)
    assert "You are on the Free plan." in unpaid
    assert "waiting for the payment processor to confirm your payment" in unpaid
    assert not has_subscription(shop.app, "newco")

    status, checkout, _ = hosted_page(pay_url)
    assert status == 200 and f'<span id="total">{shown}</span> usd' in checkout
    # A card that declines on Stripe's page: Stripe keeps nothing, and neither do we.
    status, declined, _ = hosted_page(pay_url, {"payment_method": "pm_card_chargeCustomerFail"})
    assert status == 402 and "declined" in declined
    shop.deliver()
    assert not has_subscription(shop.app, "newco")
    assert changes(shop.app, "newco")[0].status is ChangeStatus.PENDING

    status, _, back = hosted_page(pay_url, {"payment_method": "pm_card_visa"})
    assert status == 303
    back_url = urlsplit(back)
    assert back_url.path == "/billing" and parse_qs(back_url.query)["session_id"] == [session_id]
    # Another account's link with this session id confirms nothing, for anyone.
    with get_db(shop.app).session() as s:
        add_account(s, "intruder", clock)
    foreign = client.get(f"{account_path(shop.app, 'intruder')}&session_id={session_id}")
    assert foreign.status_code == 200 and "Payment received" not in foreign.get_data(as_text=True)
    assert not has_subscription(shop.app, "intruder") and not has_subscription(shop.app, "newco")
    # Back from Checkout: tiergate asks Stripe (not the URL) and applies the plan at once.
    returned = client.get(path(back)).get_data(as_text=True)
    assert "Payment received: you are now on Business." in returned
    assert "You are on <strong>Business</strong>: $79.00 per month." in returned
    assert subscription(shop.app, "newco").tier_id == "business"

    delivered = shop.deliver()  # the webhooks then find it applied: nothing twice
    assert "checkout.session.completed" in delivered
    sub = subscription(shop.app, "newco")
    assert (sub.tier_id, sub.interval, sub.status, sub.provider) == (
        "business",
        "month",
        "active",
        "stripe",
    )
    [invoice] = shop.stripe_invoices("newco")
    assert (invoice.status, invoice.amount_paid) == ("paid", shown)
    assert sub.stripe_subscription_id == shop.fake.get(session_id)["subscription"]
    [change] = changes(shop.app, "newco")
    assert change.status is ChangeStatus.APPLIED
    [row] = local_invoices(shop.app, "newco")
    assert (row.external_id, row.amount_paid, row.change_id) == (invoice.id, shown, change.id)
    after = client.get(path(back)).get_data(as_text=True)
    assert "You are on <strong>Business</strong>: $79.00 per month." in after


# ---- 4. monthly -> yearly, downgrade at the period end, cancel and resume --------------------


def test_switching_to_yearly_charges_the_amount_shown(shop: Shop, client: Any) -> None:
    sub_id = shop.subscribed(STARTER)
    overview = client.get(account_path(shop.app)).get_data(as_text=True)
    assert "Switch to yearly billing ($90.00 per year)" in overview
    page = client.get(f"/billing/yearly?t={token(shop.app)}").get_data(as_text=True)
    shown = amount_on(page, r"Switch now — pay (\S+) today")
    assert shown == 9000 - 450  # a year of Starter less the unused half month
    shop.clock.advance(minutes=5)  # the customer reads the page; the quote holds
    shop.fake.advance(5 * 60)

    response = post_form(client, page, SELF, url="/billing/yearly")
    assert response.status_code == 302
    done = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Starter is now billed yearly." in done
    assert amount_on(done, r"Charged today: <strong[^>]*>([^<]+)<") == shown

    stripe_sub = shop.stripe_subscription(sub_id)
    yearly = Price(ItemKind.TIER, "starter", "Starter", "year", "usd", 9000)
    assert price_ids(stripe_sub) == [yearly.lookup_key]
    first, switch = shop.stripe_invoices()
    assert (switch.status, switch.amount_paid) == ("paid", shown)
    sub = subscription(shop.app)
    assert (sub.tier_id, sub.interval, sub.status) == ("starter", "year", "active")
    switched_at = HALFWAY + timedelta(minutes=5)  # Stripe starts the yearly period on payment
    assert sub.current_period_end == switched_at.replace(year=2027)
    assert "renews on November 15, 2027" in page
    assert [(i.external_id, i.amount_paid) for i in local_invoices(shop.app)] == [
        (first.id, 900),
        (switch.id, shown),
    ]
    shop.deliver()
    assert subscription(shop.app).interval == "year"
    assert [i.amount_paid for i in local_invoices(shop.app)] == [900, shown]


def test_switching_pro_to_yearly_through_stripe_says_the_promotion_is_not_given_and_works(
    shop: Shop, client: Any
) -> None:
    """The catalog's yearly promotion cannot discount a switch within the plan through Stripe
    (the coupon would discount the unused month's credit too): the page says so and charges
    the full yearly price, instead of refusing the switch after the click."""
    sub_id = shop.subscribed(PRO)
    page = client.get(f"/billing/yearly?t={token(shop.app)}").get_data(as_text=True)
    text = html.unescape(page)
    assert "20 % off your first year is not given when you switch your current plan" in text
    shown = amount_on(page, r"Switch now — pay (\S+) today")
    assert shown == 29000 - 1450  # a year of Pro less the unused half month, no discount
    response = post_form(client, page, SELF, url="/billing/yearly")
    assert response.status_code == 302, response.get_data(as_text=True)
    *_, switch = shop.stripe_invoices()
    assert (switch.status, switch.amount_paid) == ("paid", shown)
    assert price_ids(shop.stripe_subscription(sub_id)) == [PRO_YEARLY.lookup_key]
    assert not shop.stripe_subscription(sub_id).discounts
    assert subscription(shop.app).interval == "year"


def test_a_downgrade_spells_out_the_loss_and_stripe_applies_it_at_the_period_end(
    shop: Shop, client: Any
) -> None:
    sub_id = shop.subscribed(PRO)
    with get_db(shop.app).session() as s:
        set_gauge(s, "acme", "projects", 12, shop.clock)
    overview = client.get(account_path(shop.app)).get_data(as_text=True)
    assert "Move down to Starter ($9.00 per month)" in overview
    page = client.get(f"/billing/downgrade?t={token(shop.app)}&tier=starter").get_data(as_text=True)
    assert page.index("What you lose on November 30, 2026") < page.index('type="submit"')
    assert '<li class="lost-feature">Audit log</li>' in page
    assert (
        "12 projects, new limit 10: existing projects stay; creating new ones is blocked "
        "until you are under the limit."
    ) in page
    assert "After that you pay $9.00 per month." in page

    response = post_form(client, page, SELF, url="/billing/downgrade")
    assert response.status_code == 200
    moved = "You move to Starter, billed monthly, on November 30, 2026."
    assert moved in response.get_data(as_text=True)
    sub = subscription(shop.app)
    assert (sub.tier_id, sub.scheduled_tier_id) == ("pro", "starter")  # Pro until then
    assert len(shop.stripe_invoices()) == 1  # nothing charged or refunded now
    assert price_ids(shop.stripe_subscription(sub_id)) == [STARTER.lookup_key]  # next period's
    shop.deliver()
    sub = subscription(shop.app)
    assert (sub.tier_id, sub.scheduled_tier_id) == ("pro", "starter")
    overview = client.get(account_path(shop.app)).get_data(as_text=True)
    assert "On November 30, 2026 you move to Starter, $9.00 per month." in overview

    # Stripe renews on its own at the period end, billing Starter; its events move the tier.
    shop.fake.advance_to_period_end(sub_id)
    shop.clock.set(PERIOD_END + timedelta(minutes=1))
    shop.deliver()
    sub = subscription(shop.app)
    assert (sub.tier_id, sub.scheduled_tier_id, sub.status) == ("starter", None, "active")
    assert sub.current_period_end == datetime(2026, 12, 31, 12, tzinfo=UTC)  # anchored on the 31st
    renewal = shop.stripe_invoices()[-1]
    assert (renewal.billing_reason, renewal.amount_paid) == ("subscription_cycle", 900)
    assert [i.amount_paid for i in local_invoices(shop.app)] == [2900, 900]


def test_cancel_then_resume_from_the_billing_page_reaches_stripe(shop: Shop, client: Any) -> None:
    sub_id = shop.subscribed(STARTER)
    page = client.get(f"/billing/cancel?t={token(shop.app)}").get_data(as_text=True)
    assert "Cancel your Starter subscription" in page
    assert '<li class="lost-feature">PDF export</li>' in page and "No data is deleted." in page
    response = post_form(client, page, SELF, url="/billing/cancel")
    assert "Your subscription ends on November 30, 2026." in response.get_data(as_text=True)
    assert shop.stripe_subscription(sub_id).cancel_at_period_end is True
    shop.deliver()
    assert subscription(shop.app).cancel_at_period_end

    overview = client.get(account_path(shop.app)).get_data(as_text=True)
    assert "Your subscription ends on November 30, 2026." in overview
    response = post_form(client, overview, "/billing/resume")
    assert "Your Starter subscription continues." in response.get_data(as_text=True)
    assert shop.stripe_subscription(sub_id).cancel_at_period_end is False
    shop.deliver()
    assert not subscription(shop.app).cancel_at_period_end
    assert len(shop.stripe_invoices()) == 1  # neither step charged anything

    # Resumed for real: Stripe renews at the period end instead of ending the subscription.
    shop.fake.advance_to_period_end(sub_id)
    shop.clock.set(PERIOD_END + timedelta(minutes=1))
    shop.deliver()
    sub = subscription(shop.app)
    assert (sub.tier_id, sub.status, sub.current_period_start) == ("starter", "active", PERIOD_END)
    assert [i.amount_paid for i in local_invoices(shop.app)] == [900, 900]


# ---- 5. a recurring add-on -------------------------------------------------------------------


def test_buying_a_recurring_addon_charges_the_amount_shown(shop: Shop, client: Any) -> None:
    sub_id = shop.subscribed(STARTER)
    overview = client.get(account_path(shop.app)).get_data(as_text=True)
    assert re.search(r"Extended support:\s*<a href=\"/billing/addons/extended_support", overview)
    page = client.get(f"/billing/addons/extended_support?t={token(shop.app)}").get_data(
        as_text=True
    )
    assert "$49.00 per month" in page
    shown = amount_on(page, r"Add now — pay (\S+) today")
    assert shown == 2450  # half of the period left

    response = post_form(client, page, SELF, url="/billing/addons/extended_support")
    assert response.status_code == 302
    done = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Your add-on is active." in done
    assert amount_on(done, r"Charged today: <strong[^>]*>([^<]+)<") == shown

    support = Price(ItemKind.ADDON, "extended_support", "Extended support", "month", "usd", 4900)
    stripe_sub = shop.stripe_subscription(sub_id)
    assert price_ids(stripe_sub) == sorted([STARTER.lookup_key, support.lookup_key])
    first, addon = shop.stripe_invoices()
    assert (addon.status, addon.amount_paid) == ("paid", shown)
    [support_item] = [
        i for i in stripe_sub["items"].data if i.price.lookup_key != STARTER.lookup_key
    ]
    with get_db(shop.app).sessionmaker() as s:
        [row] = s.scalars(select(AccountAddOn).where(AccountAddOn.account_id == "acme"))
        assert (row.addon_id, row.active, row.stripe_subscription_item_id) == (
            "extended_support",
            True,
            support_item.id,
        )
    assert [(i.external_id, i.amount_paid) for i in local_invoices(shop.app)] == [
        (first.id, 900),
        (addon.id, shown),
    ]
    shop.deliver()
    with get_db(shop.app).sessionmaker() as s:
        rows = s.scalars(select(AccountAddOn).where(AccountAddOn.account_id == "acme")).all()
        assert [(r.addon_id, r.active) for r in rows] == [("extended_support", True)]
    assert [i.amount_paid for i in local_invoices(shop.app)] == [900, shown]
    overview = client.get(account_path(shop.app)).get_data(as_text=True)
    assert re.search(r"Extended support:\s*active", overview)
    assert "/billing/addons/extended_support/remove" in overview


USD_OFF_THEN_PERCENT = """promotions:
  - id: business_usd5
    name: 5.00 off Business
    amount_off: {usd: 500}
    tiers: [business]
    intervals: [month]
    duration: once
  - id: business_pct
    name: 10 % off Business
    percent_off: 10
    tiers: [business]
    intervals: [month]
    duration: once
"""


def test_a_eur_checkout_gets_the_automatic_promotion_that_has_a_eur_amount(
    shop: Shop, client: Any, clock: FixedClock, tmp_path: Any
) -> None:
    """5.00 off in USD only, and 10 % off: in EUR only the 10 % takes anything off, so it is the
    one shown and charged (the checkout took the first, which gives nothing in EUR)."""
    from tests.billing.test_pages import publish_promotions

    publish_promotions(shop.app, clock, tmp_path, USD_OFF_THEN_PERCENT)
    with get_db(shop.app).session() as s:
        add_account(s, "newco", clock)
    pricing = client.get("/pricing?interval=month&currency=eur").get_data(as_text=True)
    assert "€67.50 for the first month" in pricing
    page = client.get(
        f"/billing/checkout?t={token(shop.app, 'newco')}&tier=business&interval=month&currency=eur"
    ).get_data(as_text=True)
    assert 'data-amount="due_today">€67.50<' in page
    response = post_form(client, page, SELF, url="/billing/checkout")
    status, checkout, _ = hosted_page(response.headers["Location"])
    assert status == 200 and '<span id="total">6750</span> eur' in checkout


def test_a_once_promotion_taken_at_checkout_discounts_only_the_first_year(
    shop: Shop, client: Any, clock: FixedClock
) -> None:
    """Business yearly with the automatic 20 % first-year promotion: 632.00 today, then the
    full 790.00, as the pricing page says (the fake once kept a Checkout coupon for good)."""
    with get_db(shop.app).session() as s:
        add_account(s, "newco", clock)
    page = client.get(
        f"/billing/checkout?t={token(shop.app, 'newco')}&tier=business&interval=year"
    ).get_data(as_text=True)
    assert amount_on(page, r'data-amount="due_today">([^<]+)<') == 63200
    response = post_form(client, page, SELF, url="/billing/checkout")
    status, _, _ = hosted_page(response.headers["Location"], {"payment_method": "pm_card_visa"})
    assert status == 303
    shop.deliver()
    shop.fake.advance_to_period_end(subscription(shop.app, "newco").stripe_subscription_id)
    shop.deliver()
    first, renewal = shop.stripe_invoices("newco")
    assert (first.amount_paid, renewal.billing_reason) == (63200, "subscription_cycle")
    assert renewal.amount_paid == 79000


ONE_MONTH = """promotions:
  - id: pro_month
    name: 20 % off your first month of Pro
    percent_off: 20
    tiers: [pro]
    intervals: [month]
    duration: repeating
    duration_in_months: 1
"""


def _audit_log_offer(app: Any, clock: FixedClock, account_id: str) -> Offer:
    """The gate's own offer when the account asks for the audit log (Pro unlocks it)."""
    from gating import service as gate

    settings = gate.GateSettings(past_due_grace_days=7, base_url="http://localhost")
    with get_db(app).session() as s:
        denied = gate.check(s, clock, account_id, "audit_log", settings=settings)
        assert not denied.allowed and denied.offer is not None
        offer = s.get(Offer, denied.offer["id"])
        assert offer is not None
        s.expunge(offer)
    return offer


def test_a_repeating_promotion_given_mid_period_renews_as_quoted_and_as_stripe_charges(
    shop: Shop, client: Any, clock: FixedClock, tmp_path: Any
) -> None:
    """ "20 % off for 1 month" given on November 15 runs to December 15, as Stripe's coupon
    does: the offer quotes the November 30 renewal discounted (it quoted the full price), and
    Stripe charges that."""
    from tests.billing.test_pages import publish_promotions

    sub_id = shop.subscribed(STARTER)
    publish_promotions(shop.app, clock, tmp_path, ONE_MONTH)
    offer = _audit_log_offer(shop.app, clock, "acme")
    assert offer.promotion_id == "pro_month"
    page = client.get(path(portal.offer_link(shop.app.config, "acme", offer.id))).get_data(
        as_text=True
    )
    quoted = amount_on(page, r'data-amount="next_renewal">(\S+) on November 30, 2026')
    assert quoted == 2320
    assert post_form(client, page, f"/offers/{offer.id}/accept").status_code == 302
    shop.fake.advance_to_period_end(sub_id)
    renewal = shop.stripe_invoices()[-1]
    assert (renewal.billing_reason, renewal.amount_paid) == ("subscription_cycle", quoted)
    shop.fake.advance_to_period_end(sub_id)
    assert shop.stripe_invoices()[-1].amount_paid == 2900  # its month has run


def test_manual_renewals_of_a_repeating_promotion_are_the_ones_stripe_charges(
    shop: Shop, clock: FixedClock, tmp_path: Any
) -> None:
    """The same upgrade on November 15 with "20 % off Pro for 3 months", through Stripe (acme)
    and with manual billing (beta): both discount the renewals of the three months after it."""
    from tests.billing.test_pages import publish_promotions
    from tests.billing.test_service import SPRING

    sub_id = shop.subscribed(STARTER)
    publish_promotions(shop.app, clock, tmp_path, SPRING)
    with get_db(shop.app).session() as s:
        subscribe(s, "beta", clock, store.load(s).version)
    for account, provider in (("acme", shop.billing), ("beta", ManualBilling())):
        offer = _audit_log_offer(shop.app, clock, account)
        with get_db(shop.app).session() as s:
            done = service.accept_offer(s, clock, provider, offer.id, account, urls=URLS)
            assert done.status is service.FlowStatus.DONE
    stripe_renewals = []
    for _ in range(4):
        shop.fake.advance_to_period_end(sub_id)
        stripe_renewals.append(shop.stripe_invoices()[-1].amount_paid)
    manual_renewals = []
    for _ in range(4):
        with get_db(shop.app).session() as s:
            clock.set(subscription(shop.app, "beta").current_period_end + timedelta(minutes=1))
            [renewal] = service.apply_period_end(s, clock, ManualBilling())
            assert renewal.invoice is not None
            manual_renewals.append(renewal.invoice.amount_paid)
    assert stripe_renewals == [2320, 2320, 2320, 2900]
    assert manual_renewals == stripe_renewals


def test_after_a_failed_renewal_the_billing_page_links_to_stripes_page_of_the_open_invoice(
    shop: Shop, client: Any
) -> None:
    sub_id = shop.subscribed(STARTER)
    shop.fake.decline_next_payment(customer_id(shop.app))
    shop.fake.advance_to_period_end(sub_id)
    shop.clock.set(PERIOD_END + timedelta(minutes=1))
    shop.deliver()
    assert subscription(shop.app).status == "past_due"
    page = html.unescape(client.get(account_path(shop.app)).get_data(as_text=True))
    assert "Your last payment failed on November 30, 2026." in page
    assert "You keep Starter until December 7, 2026: pay the open invoice before then." in page
    [open_invoice] = [i for i in shop.stripe_invoices() if i.status == "open"]
    assert f'href="{open_invoice.hosted_invoice_url}"' in page


def test_a_past_due_account_on_manual_billing_is_asked_to_get_in_touch(
    app: Any, client: Any, clock: FixedClock, demo_catalog: Any
) -> None:
    with get_db(app).session() as s:
        subscribe(s, "acme", clock, demo_catalog.version, status="past_due")
        s.get(Account, "acme").subscription.past_due_since = clock.now() - timedelta(days=9)  # type: ignore[union-attr]
    page = html.unescape(client.get(account_path(app)).get_data(as_text=True))
    assert "Your account is on the free plan until the open invoice is paid." in page
    assert "Contact us to settle the open invoice." in page


def test_a_yearly_only_code_on_the_offer_page_is_what_stripe_charges_for_the_yearly_upgrade(
    shop: Shop, client: Any, clock: FixedClock, tmp_path: Any
) -> None:
    from tests.billing.test_pages import publish_upgrade_codes

    publish_upgrade_codes(shop.app, clock, tmp_path)
    sub_id = shop.subscribed(STARTER)
    _, link = gate_offer_link(shop)
    response = client.get(link + "&code=YEAR30")
    assert response.status_code == 302
    page = client.get(path(response.headers["Location"])).get_data(as_text=True)
    assert "Code YEAR30 (30 % off a first Pro year) is included" in html.unescape(page)
    coded_id = re.search(r'action="/offers/(off_[\w-]+)/accept"', page).group(1)  # type: ignore[union-attr]
    shown = amount_on(page, r"Pay yearly — (\S+) today")
    assert shown == 29000 - 8700 - 450  # 30 % off the year, less Starter's unused half month
    response = post_form(client, page, f"/offers/{coded_id}/accept", {"interval": "year"})
    assert response.status_code == 302, response.get_data(as_text=True)
    *_, upgrade = shop.stripe_invoices()
    assert (upgrade.status, upgrade.amount_paid) == ("paid", shown)
    assert price_ids(shop.stripe_subscription(sub_id)) == [PRO_YEARLY.lookup_key]
