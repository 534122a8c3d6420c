"""The recurring revenue the funnel says an offer added: what the account pays after it less
what it paid before (a forever promotion and the add-ons the move ended included), counted
once however the purchase was settled."""

# ruff: noqa: F811
from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from billing import portal, service
from billing.stripe_provider import StripeBilling
from gating.funnel import funnel
from gating.models import Account, AccountAddOn, Offer, OfferStatus
from tests.billing.conftest import gate_offer, subscribe
from tests.billing.race_helpers import tier_offer
from tests.billing.stripe_fixtures import WEBHOOK_SECRET, fake_stripe  # noqa: F401
from tests.billing.test_pages import db, path, post_form, tier_of, version  # noqa: F401
from tests.billing.test_stripe_pages import STARTER, URLS, Shop, shop  # noqa: F401
from tests.billing.test_trial_offers_funnel import set_gauge_to
from tests.billing.test_trial_offers_manual import (
    PROMOS,
    accept,
    invoices,
    offer_page,
    publish,
    renew_at,
)
from tiergate.db import get_db
from tiergate.exceptions import ProviderUnavailable

__all__ = ["db", "fake_stripe", "shop", "version"]


class AnswerLost(StripeBilling):
    """Stripe applies the change, but its answer never arrives (a timeout after the write)."""

    def __init__(self, base: StripeBilling) -> None:
        super().__init__(base.client, webhook_secret=WEBHOOK_SECRET, base_url="http://localhost")

    def _update(self, sub_id: str, params: Any, key: str, step: str) -> Any:
        answer = super()._update(sub_id, params, key, step)
        if step == "modify":
            raise ProviderUnavailable("Stripe could not be reached (timeout), even after retries.")
        return answer


def _pro_with_cross_sell(shop: Shop) -> str:
    """acme (Starter monthly, paid) upgrades to Pro from the pricing-page offer; returns the
    post-purchase cross-sell offer made after it (Extended support, $49.00 a month)."""
    shop.subscribed(STARTER)
    with get_db(shop.app).session() as s:
        offer_id = tier_offer(s, shop.clock, "acme", "pro")
    with shop.app.app_context(), get_db(shop.app).session() as s:
        result = service.accept_offer(s, shop.clock, shop.billing, offer_id, "acme", urls=URLS)
        assert result.status is service.FlowStatus.DONE, result.message
        follow = result.follow_up_offer_id
    assert follow is not None
    shop.deliver()
    return follow


def _funnel_of(shop: Shop, offer_id: str) -> dict[str, Any]:
    until = shop.clock.now() + timedelta(seconds=1)
    with get_db(shop.app).session() as s:
        result = funnel(s, since=until - timedelta(days=30), until=until)
        row = next(r for r in result.by_trigger if r.trigger == "post_purchase")
        return row.to_json()


def _buy(shop: Shop, provider: StripeBilling, offer_id: str) -> service.FlowResult:
    with shop.app.app_context(), get_db(shop.app).session() as s:
        offer = s.get(Offer, offer_id)
        assert offer is not None and offer.addon_id == "extended_support"
        at = offer.proration_date
        _, due = service.addon_quote(s, shop.clock, "acme", "extended_support", at)
        return service.buy_addon(
            s, shop.clock, provider, "acme", "extended_support",
            proration_date=at, expected_amount_due=due, urls=URLS, offer_id=offer_id,
        )  # fmt: skip


def test_a_cross_sell_settled_by_the_webhook_adds_its_recurring_price_once(shop: Shop) -> None:
    """acme buys the post-purchase Extended support ($49.00 a month). Stripe applies and
    charges it, but its answer is lost and the invoice.paid webhook settles the purchase: the
    funnel still counts +$49.00 a month, as when the answer arrives."""
    follow = _pro_with_cross_sell(shop)
    pending = _buy(shop, AnswerLost(shop.billing), follow)
    assert pending.status is service.FlowStatus.PENDING, pending.message
    shop.deliver()  # invoice.paid (and the subscription's update) settle it
    with get_db(shop.app).session() as s:
        offer = s.get(Offer, follow)
        assert offer is not None and offer.status is OfferStatus.PAID
    row = _funnel_of(shop, follow)
    assert (row["paid"], row["mrr_added"]) == (1, {"usd": 4900})


def _totals(app: Any, clock: Any) -> dict[str, Any]:
    until = clock.now() + timedelta(seconds=1)
    with get_db(app).session() as s:
        return funnel(s, since=until - timedelta(days=90), until=until).total.to_json()


def test_upgrade_from_a_plan_with_a_forever_promotion_counts_the_revenue_really_added(
    app: Any, client: Any, clock: Any, tmp_path: Any
) -> None:
    """newco takes Starter with the code EVER1 ($1.00 off forever): it pays $8.00 a month,
    counted +$8.00. It then takes Pro ($29.00; the promotion ends with the move): that offer
    added $21.00, and the funnel's total is the $29.00 the account now pays."""
    publish(app, clock, tmp_path, promotions=PROMOS)
    offer_id, link, _ = offer_page(app, client, clock, "newco", "projects", 3)
    response = client.get(link + "&code=EVER1")
    assert response.status_code == 302, response.get_data(as_text=True)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    offer_id = re.search(r'action="/offers/(off_[\w-]+)/accept"', page).group(1)  # type: ignore[union-attr]
    assert accept(client, page, offer_id).status_code == 302
    renew_at(app, clock, clock.now() + timedelta(days=14, hours=1))  # the trial ends
    assert invoices(app, "newco")[-1].amount_paid == 800
    assert _totals(app, clock)["mrr_added"] == {"usd": 800}

    clock.advance(days=1)
    with get_db(app).session() as s:
        set_gauge_to(s, "newco", "projects", 10, clock)
        second = gate_offer(s, clock, "newco", "projects", used=10, requested=1)
        second_id = second.id
        assert second.to_tier_id == "pro"
    link = portal.offer_link(app.config, "newco", second_id).replace("http://localhost", "")
    page = client.get(link).get_data(as_text=True)
    response = accept(client, page, second_id)
    assert response.status_code == 302, response.get_data(as_text=True)
    with get_db(app).session() as s:
        sub = s.get(Account, "newco").subscription
        assert (sub.tier_id, sub.running_discount) == ("pro", None)  # the promotion ended
        sub_end = sub.current_period_end
    renew_at(app, clock, sub_end + timedelta(minutes=1))
    assert invoices(app, "newco")[-1].amount_paid == 2900  # what it pays now
    assert _totals(app, clock)["mrr_added"] == {"usd": 2900}


def _accept_gate_offer(app: Any, client: Any, db: Any, clock: Any, account_id: str, feature: str,
                      used: int | None, requested: int) -> tuple[str, str]:  # fmt: skip
    with db() as s:
        offer_id = gate_offer(s, clock, account_id, feature, used=used, requested=requested).id
    page = client.get(path(portal.offer_link(app.config, account_id, offer_id))).get_data(
        as_text=True
    )
    accepted = post_form(client, page, f"/offers/{offer_id}/accept")
    assert accepted.status_code in (302, 303), accepted.get_data(as_text=True)[:2000]
    return offer_id, client.get(path(accepted.headers["Location"])).get_data(as_text=True)


def test_an_upgrade_that_ends_an_add_on_adds_the_difference_in_the_bill(
    app: Any, client: Any, db: Any, clock: Any, version: Any
) -> None:
    """A Starter customer ($9.00 a month) with Extended support ($49.00) takes the Business
    offer ($79.00, which includes support: the add-on ends with the move). The bill goes
    from $58.00 to $79.00: the offer added $21.00 a month."""
    with db() as s:
        subscribe(s, "acme", clock, version, addons=("extended_support",))
    offer_id, done = _accept_gate_offer(app, client, db, clock, "acme", "sso", None, 1)
    assert tier_of(db) == "business"
    with db() as s:
        active = s.scalars(
            select(AccountAddOn.addon_id).where(
                AccountAddOn.account_id == "acme", AccountAddOn.active.is_(True)
            )
        ).all()
    assert "extended_support" not in active  # the upgrade ended it, as the offer said
    with db() as s:
        result = funnel(
            s, since=clock.now() - timedelta(days=1), until=clock.now() + timedelta(days=1)
        )
    assert result.total.paid == 1
    assert result.total.mrr_added == {"usd": 7900 - (900 + 4900)}
