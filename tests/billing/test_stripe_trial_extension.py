"""A trial extension through Stripe when its answer is lost or Stripe is down, and a late
warning for the trial's old end."""

# ruff: noqa: F811
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from billing.models import Notification
from billing.stripe_provider import StripeBilling
from tests.billing.stripe_fixtures import fake_stripe  # noqa: F401
from tests.billing.stripe_trial_chaos import deliver_rest
from tests.billing.stripe_trial_flows import extend, trial_from_offer
from tests.billing.test_stripe_pages import Shop, shop, subscription  # noqa: F401
from tiergate.clock import FixedClock
from tiergate.db import get_db
from tiergate.exceptions import ProviderUnavailable

__all__ = ["fake_stripe", "shop"]
pytest_plugins = ["tests.gating.api_fixtures"]


def _answer_lost(monkeypatch: Any, billing: StripeBilling) -> None:
    real = billing.extend_trial

    def applied_then_timeout(request: Any) -> Any:
        real(request)
        raise ProviderUnavailable("Stripe did not answer in time (read timeout)")

    monkeypatch.setattr(billing, "extend_trial", applied_then_timeout)


def test_a_trial_extension_whose_answer_was_lost_is_confirmed_and_made_once(
    shop: Shop, client: Any, clock: FixedClock, make_api_key: Any, monkeypatch: Any
) -> None:
    """The product team grants newco 7 more days of trial. Stripe moves the trial's end but
    its answer is lost: tiergate asks Stripe whether the change was made, finds it was, and
    records it (201). Webhooks then change nothing: the trial ends 7 days later, once."""
    trial_from_offer(shop, client, clock)
    sub = subscription(shop.app, "newco")
    trial_end = sub.trial_end
    assert trial_end is not None and sub.stripe_subscription_id
    _answer_lost(monkeypatch, shop.billing)
    first = extend(client, make_api_key)
    assert first.status_code == 201, first.get_json()
    monkeypatch.undo()
    deliver_rest(shop.app, shop.fake, set())  # the webhook of the extension Stripe made
    granted = trial_end + timedelta(days=7)
    stripe_sub = shop.stripe_subscription(sub.stripe_subscription_id)
    assert stripe_sub.trial_end == int(granted.timestamp())
    assert subscription(shop.app, "newco").trial_end == granted


def test_a_trial_extension_stripe_cannot_confirm_records_nothing_and_says_to_check(
    shop: Shop, client: Any, clock: FixedClock, make_api_key: Any
) -> None:
    """Stripe is down: the API answers 503, asks the team to check the trial's end before
    trying again (Stripe may have made it), and nothing is recorded."""
    trial_from_offer(shop, client, clock)
    trial_end = subscription(shop.app, "newco").trial_end
    shop.fake.fail_next(50, 500)
    answer = extend(client, make_api_key)
    assert answer.status_code == 503, answer.get_json()
    assert "check the account's trial end" in answer.get_json()["error"]["message"]
    assert subscription(shop.app, "newco").trial_end == trial_end


def test_a_late_trial_will_end_for_the_end_before_an_extension_tells_the_host_app_nothing(
    shop: Shop, client: Any, clock: FixedClock, make_api_key: Any
) -> None:
    """Three days before Starter's trial ends, Stripe sends trial_will_end (trial end: day
    14). Its delivery is delayed (our endpoint was down; Stripe retries); meanwhile the
    product team extends the trial by 7 days. When the old event finally arrives, the host
    app is not told "the trial ends on day 14" (it ends on day 21: the customer would
    be warned of a charge that will not happen then)."""
    trial_from_offer(shop, client, clock)
    sub = subscription(shop.app, "newco")
    trial_end = sub.trial_end
    assert trial_end is not None and sub.stripe_subscription_id
    shop.fake.set_time(trial_end - timedelta(days=2))  # trial_will_end is sent (not delivered)
    clock.set(shop.fake.clock.now())
    assert shop.fake.events_of("customer.subscription.trial_will_end")
    assert extend(client, make_api_key).status_code == 201
    assert subscription(shop.app, "newco").trial_end == trial_end + timedelta(days=7)
    deliver_rest(shop.app, shop.fake, set())  # the delayed events arrive
    assert subscription(shop.app, "newco").trial_end == trial_end + timedelta(days=7)
    with get_db(shop.app).sessionmaker() as s:
        told = [
            n.payload["data"]["trial_end"]
            for n in s.scalars(select(Notification).where(Notification.type == "trial.will_end"))
        ]
    assert trial_end.isoformat().replace("+00:00", "") not in " ".join(told), told
    assert all(t.startswith(f"{trial_end + timedelta(days=7):%Y-%m-%d}") for t in told), told
