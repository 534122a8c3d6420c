"""The retry of a change whose first provider call timed out (ProviderUnavailable: the change
stays PENDING with `error` set, "please try again in a minute") is in flight again while it is
with Stripe: another tab's cancel is refused as busy (it was quoted from the subscription as it
was before the upgrade, and undid the upgrade the customer paid for at Stripe)."""

from __future__ import annotations

from typing import Any

from billing import downgrade, service
from billing.models import ChangeStatus
from billing.stripe_provider import StripeBilling
from tests.billing.stripe_fixtures import WEBHOOK_SECRET, fake_stripe
from tests.billing.test_stripe_pages import (
    STARTER,
    URLS,
    Shop,
    changes,
    gate_offer_link,
    shop,
    subscription,
)
from tiergate.db import get_db
from tiergate.exceptions import ProviderUnavailable

__all__ = ["fake_stripe", "shop"]


class TimeoutThenCancel(StripeBilling):
    """First attempt: Stripe does not answer the update. The retry: while it is with Stripe
    (its items changed there, its answer not back yet), the other tab's cancel runs."""

    def __init__(self, base: StripeBilling, other_tab: Any) -> None:
        super().__init__(base.client, webhook_secret=WEBHOOK_SECRET, base_url="http://localhost")
        self.base = base
        self.other_tab = other_tab
        self.modifies = 0
        self.answers: list[Any] = []

    def _update(self, sub_id: str, params: Any, key: str, step: str) -> Any:
        if step != "modify":
            return super()._update(sub_id, params, key, step)
        self.modifies += 1
        if self.modifies == 1:
            raise ProviderUnavailable("Stripe could not be reached (timeout), even after retries.")
        answer = super()._update(sub_id, params, key, step)
        if self.modifies == 2:
            self.answers.append(self.other_tab(self.base))
        return answer


def test_a_cancel_while_a_retried_upgrade_is_with_stripe_is_refused_as_busy(shop: Shop) -> None:
    sub_id = shop.subscribed(STARTER)
    offer_id, _ = gate_offer_link(shop)
    database = get_db(shop.app)

    def cancel(provider: StripeBilling) -> Any:
        with shop.app.app_context(), database.session() as s:
            r = downgrade.cancel(s, shop.clock, provider, "acme")
            return r.status.value, r.message

    provider = TimeoutThenCancel(shop.billing, cancel)

    def accept() -> Any:
        with shop.app.app_context(), database.session() as s:
            r = service.accept_offer(s, shop.clock, provider, offer_id, "acme", urls=URLS)
            return r.status.value, r.message

    first = accept()
    assert first[0] == "pending"  # "please try again in a minute"
    [pending] = [c for c in changes(shop.app) if c.offer_id]
    assert pending.status is ChangeStatus.PENDING and pending.error
    retried = accept()  # the customer tries again a minute later
    [(cancel_status, cancel_message)] = provider.answers
    items = [i.price.lookup_key for i in shop.stripe_subscription(sub_id)["items"].data]
    paid = [(i.billing_reason, i.amount_paid) for i in shop.stripe_invoices() if i.amount_paid]
    assert cancel_status == "pending", (
        f"the cancel was not refused while the retried upgrade was with Stripe: it answered "
        f"{cancel_status!r} ({cancel_message}); the upgrade answered {retried}; Stripe charged "
        f"{paid} and now bills {items}; tiergate has {subscription(shop.app).tier_id}"
    )
