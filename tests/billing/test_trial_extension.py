"""A trial extension granted by the product team (POST /v1/accounts/{id}/overrides with
kind=trial_extension) moves the running trial's end in billing: the first charge moves with
it, with manual billing and through Stripe. Refused, with nothing recorded, when there is no
trial to extend."""

# ruff: noqa: F811
from __future__ import annotations

from datetime import timedelta
from typing import Any

from billing import downgrade
from billing.manual import ManualBilling
from gating.models import Override
from tests.billing.stripe_fixtures import fake_stripe  # noqa: F401
from tests.billing.test_stripe_pages import Shop, shop, subscription  # noqa: F401
from tests.billing.test_trial_offers_manual import accept, invoices, offer_page, renew_at
from tests.billing.test_trial_offers_stripe import open_offer, paid_amounts, pay
from tiergate.db import get_db

pytest_plugins = ["tests.gating.api_fixtures"]
__all__ = ["fake_stripe", "shop"]

EXTEND = {"kind": "trial_extension", "days": 7, "reason": "asked for more time to evaluate"}


class _Api:
    """The test client sending an `accounts` API key."""

    def __init__(self, client: Any, key: str) -> None:
        self.client, self.headers = client, {"Authorization": f"Bearer {key}"}

    def post(self, path: str, json: Any) -> Any:
        return self.client.post(path, json=json, headers=self.headers)


def _api(client: Any, make_api_key: Any) -> _Api:
    return _Api(client, make_api_key("accounts"))


def _overrides(app: Any, account_id: str) -> int:
    with get_db(app).session() as s:
        return s.query(Override).filter(Override.account_id == account_id).count()


def test_manual_billing_charges_an_extended_trial_at_its_new_end(
    app: Any, client: Any, clock: Any, demo_catalog: Any, make_api_key: Any
) -> None:
    """newco is in Starter's 14-day trial; a 7-day extension moves its end (and the first
    $9.00 charge) from day 14 to day 21: the daily renewal on day 15 charges nothing, and the
    account keeps Starter until then."""
    offer_id, _, page = offer_page(app, client, clock, "newco", "projects", 3)
    assert accept(client, page, offer_id).status_code == 302
    trial_end = subscription(app, "newco").trial_end
    response = _api(client, make_api_key).post("/v1/accounts/newco/overrides", json=EXTEND)
    assert response.status_code == 201, response.get_json()
    sub = subscription(app, "newco")
    assert (sub.status, sub.trial_end) == ("trialing", trial_end + timedelta(days=7))
    assert sub.current_period_end == sub.trial_end
    renew_at(app, clock, trial_end + timedelta(days=1))
    assert [i.amount_paid for i in invoices(app, "newco")] == [0]
    assert subscription(app, "newco").status == "trialing"
    renew_at(app, clock, trial_end + timedelta(days=7, hours=1))
    assert [i.amount_paid for i in invoices(app, "newco")] == [0, 900]
    assert subscription(app, "newco").status == "active"


def test_stripe_charges_an_extended_trial_at_its_new_end(
    shop: Shop, client: Any, clock: Any, make_api_key: Any
) -> None:
    """The same through Stripe: the subscription's trial_end moves, Stripe charges nothing at
    the old end and $9.00 at the new one."""
    offer_id, _, page = open_offer(shop, client, clock, "newco", "projects", 3)
    pay(shop, client, page, offer_id)
    trial_end = subscription(shop.app, "newco").trial_end
    response = _api(client, make_api_key).post("/v1/accounts/newco/overrides", json=EXTEND)
    assert response.status_code == 201, response.get_json()
    shop.deliver()
    sub = subscription(shop.app, "newco")
    assert (sub.status, sub.trial_end) == ("trialing", trial_end + timedelta(days=7))
    stripe_sub = shop.fake.client().v1.subscriptions.retrieve(sub.stripe_subscription_id)
    assert stripe_sub.trial_end == int(sub.trial_end.timestamp())
    shop.fake.advance_to_period_end(sub.stripe_subscription_id)
    shop.deliver()
    assert paid_amounts(shop, "newco") == [0, 900]
    assert subscription(shop.app, "newco").status == "active"


def test_an_account_not_in_a_trial_gets_no_extension_and_nothing_is_recorded(
    app: Any, client: Any, clock: Any, demo_catalog: Any, make_api_key: Any
) -> None:
    api = _api(client, make_api_key)
    offer_id, _, page = offer_page(app, client, clock, "newco", "projects", 3)
    renew_at(app, clock, clock.now())  # (nothing to renew yet)
    response = api.post("/v1/accounts/newco/overrides", json=EXTEND)
    assert response.status_code == 409
    assert "has no paid subscription" in response.get_json()["error"]["message"]
    assert accept(client, page, offer_id).status_code == 302
    renew_at(app, clock, subscription(app, "newco").trial_end + timedelta(hours=1))
    response = api.post("/v1/accounts/newco/overrides", json=EXTEND)
    assert response.status_code == 409
    assert (
        "is not in a trial (its subscription is active)"
        in (response.get_json()["error"]["message"])
    )
    assert _overrides(app, "newco") == 0


def test_a_trial_extension_has_no_expiry_and_waits_for_a_scheduled_change(
    app: Any, client: Any, clock: Any, demo_catalog: Any, make_api_key: Any
) -> None:
    api = _api(client, make_api_key)
    offer_id, _, page = offer_page(app, client, clock, "newco", "projects", 3)
    assert accept(client, page, offer_id).status_code == 302
    expiring = {**EXTEND, "expires_at": (clock.now() + timedelta(days=30)).isoformat()}
    response = api.post("/v1/accounts/newco/overrides", json=expiring)
    assert response.status_code == 422
    assert "a trial_extension has no expires_at" in response.get_json()["error"]["message"]
    with get_db(app).session() as s:
        downgrade.cancel(s, clock, ManualBilling(), "newco")
        s.commit()
    response = api.post("/v1/accounts/newco/overrides", json=EXTEND)
    assert response.status_code == 409
    assert "has a change scheduled for its trial's end" in response.get_json()["error"]["message"]
    assert _overrides(app, "newco") == 0


def test_a_trial_cannot_be_extended_past_the_processors_limit(
    app: Any, client: Any, clock: Any, demo_catalog: Any, make_api_key: Any
) -> None:
    """Stripe refuses a trial ending more than 730 days away: so does tiergate, with both
    providers, saying why (422), and nothing is recorded."""
    offer_id, _, page = offer_page(app, client, clock, "newco", "projects", 3)
    assert accept(client, page, offer_id).status_code == 302
    response = _api(client, make_api_key).post(
        "/v1/accounts/newco/overrides", json={**EXTEND, "days": 800}
    )
    assert response.status_code == 422
    assert "at most 730 days from now" in response.get_json()["error"]["message"]
    assert _overrides(app, "newco") == 0


def test_stripe_refuses_to_extend_a_trial_it_has_already_converted(
    shop: Shop, client: Any, clock: Any, make_api_key: Any
) -> None:
    """Stripe has turned the trial into its first paid period, and its webhook has not come
    yet: the extension is refused (409) and the subscription is left as Stripe has it, so the
    customer is not charged the period and then again at a later trial end."""
    offer_id, _, page = open_offer(shop, client, clock, "newco", "projects", 3)
    pay(shop, client, page, offer_id)
    sub = subscription(shop.app, "newco")
    shop.fake.advance_to_period_end(sub.stripe_subscription_id)  # no webhook delivered
    response = _api(client, make_api_key).post("/v1/accounts/newco/overrides", json=EXTEND)
    assert response.status_code == 409, response.get_json()
    assert "already ended the trial" in response.get_json()["error"]["message"]
    stripe_sub = shop.fake.client().v1.subscriptions.retrieve(sub.stripe_subscription_id)
    assert stripe_sub.status == "active"
    assert _overrides(shop.app, "newco") == 0
