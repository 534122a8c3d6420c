"""A crash between the Stripe call and our commit, in the newest trial flows, then
`tiergate billing reconcile` (and late webhooks): one consistent state, nothing charged twice,
every fix reported."""

# ruff: noqa: F811
from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy import select

from billing import portal, records
from billing.models import BillingChange, ChangeStatus
from gating.models import Offer, OfferStatus
from tests.billing.conftest import gate_offer
from tests.billing.stripe_fixtures import fake_stripe  # noqa: F401
from tests.billing.stripe_trial_chaos import after_trial, deliver_rest, state
from tests.billing.stripe_trial_flows import trial_from_offer
from tests.billing.test_pages import path, post_form
from tests.billing.test_reconcile import reconcile
from tests.billing.test_stripe_pages import Shop, shop, subscription  # noqa: F401
from tiergate.clock import FixedClock
from tiergate.db import get_db

__all__ = ["fake_stripe", "shop"]


def _crash(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("the process died before our commit")


def test_an_upgrade_in_a_trial_lost_by_a_crash_is_settled_applied_by_reconcile(
    shop: Shop, client: Any, clock: FixedClock, monkeypatch: Any
) -> None:
    """newco, in Starter's trial, takes Pro's offer (kept in the trial, nothing charged today);
    Stripe applies it but the process dies before our commit. Reconcile settles the
    pending change as applied (Stripe has it: the subscription is on Pro, tagged with the
    change) and keep the offer waiting for the trial's first charge, which then records it
    paid."""
    trial_from_offer(shop, client, clock)
    with get_db(shop.app).session() as s:
        pro_offer = gate_offer(s, clock, "newco", "audit_log", used=0, requested=1).id
    page = client.get(path(portal.offer_link(shop.app.config, "newco", pro_offer))).get_data(
        as_text=True
    )
    monkeypatch.setattr(records, "apply_result", _crash)
    assert post_form(client, page, f"/offers/{pro_offer}/accept").status_code == 500
    monkeypatch.undo()
    sub = subscription(shop.app, "newco")
    assert sub.tier_id == "starter"  # our side lost the answer
    assert sub.stripe_subscription_id
    stripe_sub = shop.stripe_subscription(sub.stripe_subscription_id)
    assert (
        stripe_sub["items"].data[0].price.lookup_key.startswith("tiergate:tier:pro:")
    )  # Stripe has it
    clock.advance(minutes=5)
    output = reconcile(shop.app).output
    with get_db(shop.app).sessionmaker() as s:
        [change] = s.scalars(select(BillingChange).where(BillingChange.offer_id == pro_offer))
        assert change.status is ChangeStatus.APPLIED, (change.status, change.error)
    assert f"{change.id} (upgrade) applied from Stripe" in output
    after_trial(shop.fake, clock, sub.stripe_subscription_id)
    deliver_rest(shop.app, shop.fake, set())
    with get_db(shop.app).sessionmaker() as s:
        offer = s.get(Offer, pro_offer)
        assert offer is not None and offer.status is OfferStatus.PAID


def test_a_cross_sell_in_a_trial_lost_by_a_crash_is_still_the_first_charges_sale(
    shop: Shop, client: Any, clock: FixedClock, monkeypatch: Any
) -> None:
    """newco, in Starter's trial, buys the post-purchase cross-sell (Extended support, nothing
    today); Stripe adds the item but the process dies before our commit. After reconcile the
    add-on change should be applied and, at the trial's end ($9.00 + $49.00 taken), the
    cross-sell recorded paid with $49.00."""
    from tests.billing.stripe_trial_flows import buy_cross_sell

    _, back = trial_from_offer(shop, client, clock)
    monkeypatch.setattr(records, "apply_result", _crash)
    with contextlib.suppress(AssertionError):  # the purchase answers 500
        buy_cross_sell(client, back)
    monkeypatch.undo()
    clock.advance(minutes=5)
    output = reconcile(shop.app).output
    sub = subscription(shop.app, "newco")
    assert sub.stripe_subscription_id
    after_trial(shop.fake, clock, sub.stripe_subscription_id)
    deliver_rest(shop.app, shop.fake, set())
    assert shop.stripe_invoices("newco")[-1].amount_paid == 900 + 4900
    final = state(shop.app, "newco")
    paid = sorted(e[1] for o in final["offers"] for e in o[2] if e[0] == "paid")
    changes = sorted(c[1:] for c in final["changes"])
    assert changes == [("addon", "applied"), ("subscribe", "applied")], (changes, output)
    assert paid == [900, 4900], final["offers"]


def test_reconcile_reports_the_add_on_it_ends(shop: Shop, client: Any, clock: FixedClock) -> None:
    """newco (Starter trial + Extended support) has the add-on's item removed at Stripe (by
    hand in the Dashboard) while webhooks are lost. Reconcile ends the local add-on (the gate
    stops granting it) and says so, as it reports every fix."""
    from tests.billing.stripe_trial_flows import buy_cross_sell

    _, back = trial_from_offer(shop, client, clock)
    buy_cross_sell(client, back)
    deliver_rest(shop.app, shop.fake, seen := set())
    assert [a[:3] for a in state(shop.app, "newco")["addons"]] == [("extended_support", 1, True)]
    sub_id = subscription(shop.app, "newco").stripe_subscription_id
    assert sub_id
    fake = shop.fake.client()
    items = fake.v1.subscriptions.retrieve(sub_id)["items"].data
    [item] = [i for i in items if "extended_support" in (i.price.lookup_key or "")]
    fake.v1.subscription_items.delete(item.id, {"proration_behavior": "none"})
    seen.update(e["id"] for e in shop.fake.events)  # those webhooks are lost
    output = reconcile(shop.app).output
    assert [a[:3] for a in state(shop.app, "newco")["addons"]] == [("extended_support", 1, False)]
    assert "extended_support" in output or "Extended support" in output, output
