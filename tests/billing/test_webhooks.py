"""Stripe webhooks (billing/webhooks.py, billing/webhook_web.py): verification first, every
event stored once, handlers re-fetch from the provider, failures stored and replayable.

These tests use hand-built, correctly signed event payloads and a provider double that holds
Stripe's "current" subscriptions; tests/billing/test_webhook_chaos.py drives the real
StripeBilling against the fake Stripe API.
"""

from __future__ import annotations

import copy
import re
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from billing import webhooks
from billing.models import BillingChange, ChangeStatus, Invoice, WebhookEvent
from billing.provider import Charge, ItemKind, Outcome, Price, Result, SubscriptionState
from billing.webhook_cli import webhooks_group
from gating.models import Account, Subscription, SubscriptionStatus
from tests.billing.conftest import PERIOD_END, PERIOD_START, add_account
from tests.fakestripe import event_payload, sign_payload
from tiergate.clock import FixedClock
from tiergate.db import Database, get_db
from tiergate.exceptions import ProviderUnavailable

SECRET = "whsec_test_tiergate"
URL = "/webhooks/stripe"
TAGS = {"tiergate": "1", "tiergate_account": "acme"}
STARTER = Price(ItemKind.TIER, "starter", "Starter", "month", "usd", 900)
PRO = Price(ItemKind.TIER, "pro", "Pro", "month", "usd", 2900)


@dataclass
class StripeDouble:
    """Stripe's current subscriptions and applied changes, as StripeBilling would report them."""

    name: str = "stripe"
    subscriptions: dict[str, SubscriptionState] = field(default_factory=dict)
    changes: dict[str, Result] = field(default_factory=dict)
    balances: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    down: bool = False
    fetches: list[str] = field(default_factory=list)

    def fetch_subscription(self, external_id: str) -> SubscriptionState | None:
        if self.down:
            raise ProviderUnavailable("Stripe could not be reached (test).")
        self.fetches.append(external_id)
        return self.subscriptions.get(external_id)

    def find_change(self, idempotency_key: str) -> Result | None:
        if self.down:
            raise ProviderUnavailable("Stripe could not be reached (test).")
        return self.changes.get(idempotency_key)

    def subscriptions_of(self, customer_external_id: str, account_id: str) -> list[Any]:
        if self.down:
            raise ProviderUnavailable("Stripe could not be reached (test).")
        return []

    def customer_balance(self, customer_external_id: str) -> tuple[int, str | None] | None:
        if self.down:
            raise ProviderUnavailable("Stripe could not be reached (test).")
        return self.balances.get(customer_external_id)


def state(plan: Price = PRO, status: str = "active", **kw: Any) -> SubscriptionState:
    values: dict[str, Any] = {
        "plan": plan,
        "addons": (),
        "status": status,
        "period_start": PERIOD_START,
        "period_end": PERIOD_END,
        "external_id": "sub_1",
    }
    values.update(kw)
    return SubscriptionState(**values)


_counter = iter(range(1, 10**6))


def event(
    type_: str, obj: dict[str, Any], *, created: int | None = None, event_id: str | None = None
) -> dict[str, Any]:
    """A Stripe event envelope around `obj`, as Stripe sends it."""
    return {
        "id": event_id or f"evt_test_{next(_counter)}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": created if created is not None else int(PERIOD_START.timestamp()) + 100,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type_,
    }


def subscription_obj(sub_id: str = "sub_1", status: str = "active", **meta: str) -> dict[str, Any]:
    return {
        "id": sub_id,
        "object": "subscription",
        "customer": "cus_acme",
        "status": status,
        "metadata": {**TAGS, **meta},
    }


def invoice_obj(
    invoice_id: str = "in_1", status: str = "paid", amount: int = 2900, **meta: str
) -> dict[str, Any]:
    return {
        "id": invoice_id,
        "object": "invoice",
        "customer": "cus_acme",
        "status": status,
        "currency": "usd",
        "amount_due": amount,
        "amount_paid": amount if status == "paid" else 0,
        "created": int(PERIOD_START.timestamp()),
        "status_transitions": {
            "paid_at": int(PERIOD_START.timestamp()) + 60 if status == "paid" else None
        },
        "metadata": dict(meta),
        "parent": {
            "type": "subscription_details",
            "subscription_details": {"metadata": dict(TAGS), "subscription": "sub_1"},
        },
        "lines": {
            "data": [
                {
                    "description": "1 × Pro (at $29.00 / month)",
                    "amount": amount,
                    "parent": {"subscription_item_details": {"proration": False}},
                }
            ]
        },
    }


def post(
    client: Any,
    evt: dict[str, Any],
    *,
    secret: str = SECRET,
    timestamp: int | None = None,
    body: bytes | None = None,
    signature: str | None = None,
) -> Any:
    payload = event_payload(evt) if body is None else body
    header = signature if signature is not None else sign_payload(payload, secret, timestamp)
    return client.post(
        URL, data=payload, headers={"Stripe-Signature": header, "Content-Type": "application/json"}
    )


@pytest.fixture
def stripe_double(app: Any) -> StripeDouble:
    double = StripeDouble()
    app.config["STRIPE_WEBHOOK_SECRET"] = SECRET
    app.extensions["tiergate.billing"] = double
    return double


@pytest.fixture
def acme(app: Any, demo_catalog: Any, clock: FixedClock) -> str:
    """acme on Starter through Stripe (sub_1), as a finished checkout leaves it."""
    with get_db(app).session() as s:
        account = add_account(s, "acme", clock)
        account.stripe_customer_id = "cus_acme"
        now = clock.now()
        account.subscription = Subscription(
            account_id="acme",
            tier_id="starter",
            interval="month",
            currency="usd",
            status=SubscriptionStatus.ACTIVE,
            catalog_version=demo_catalog.version,
            current_period_start=PERIOD_START,
            current_period_end=PERIOD_END,
            cancel_at_period_end=False,
            provider="stripe",
            stripe_subscription_id="sub_1",
            created_at=now,
            updated_at=now,
        )
    return "acme"


def subscription_of(app: Any, account_id: str = "acme") -> Subscription | None:
    with get_db(app).sessionmaker() as s:
        account = s.get(Account, account_id)
        assert account is not None
        return account.subscription


def stored(app: Any) -> list[WebhookEvent]:
    with get_db(app).sessionmaker() as s:
        return list(s.scalars(select(WebhookEvent).order_by(WebhookEvent.received_at)))


# ---- verification ---------------------------------------------------------------------------


def test_a_forged_signature_is_rejected_and_nothing_is_stored(
    client: Any, app: Any, stripe_double: StripeDouble, acme: str
) -> None:
    stripe_double.subscriptions["sub_1"] = state()
    response = post(
        client,
        event("customer.subscription.updated", subscription_obj()),
        secret="whsec_someone_else",
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_signature"
    assert "does not verify" in response.get_json()["error"]["message"]
    assert stored(app) == [] and stripe_double.fetches == []
    assert subscription_of(app).tier_id == "starter"  # type: ignore[union-attr]


def test_a_tampered_body_is_rejected_and_nothing_is_stored(
    client: Any, app: Any, stripe_double: StripeDouble, acme: str
) -> None:
    original = event_payload(event("customer.subscription.updated", subscription_obj()))
    header = sign_payload(original, SECRET)
    tampered = original.replace(b'"acme"', b'"evil"')
    response = post(client, {}, body=tampered, signature=header)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_signature"
    assert stored(app) == []


def test_a_stale_timestamp_is_rejected_even_with_the_right_secret(
    client: Any, app: Any, stripe_double: StripeDouble, acme: str
) -> None:
    evt = event("customer.subscription.updated", subscription_obj())
    response = post(client, evt, timestamp=int(time.time()) - 301)
    assert response.status_code == 400
    assert "tolerance" in response.get_json()["error"]["message"]
    assert stored(app) == []


def test_a_missing_signature_header_is_rejected(
    client: Any, app: Any, stripe_double: StripeDouble
) -> None:
    body = event_payload(event("invoice.paid", invoice_obj()))
    response = client.post(URL, data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_signature"
    assert stored(app) == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"id": "evt_1", "type": ', "malformed_json"),
        (b"\xff\xfe not utf-8", "malformed_json"),
        (
            b'{"id": "evt_1", "object": "event", "type": "invoice.paid", "data": {}}',
            "malformed_event",
        ),
        (
            b'{"id": "x", "object": "event", "type": "invoice.paid", "created": 1, '
            b'"data": {"object": {}}}',
            "malformed_event",
        ),
    ],
)
def test_a_correctly_signed_body_that_is_not_a_stripe_event_is_a_400(
    client: Any, app: Any, stripe_double: StripeDouble, body: bytes, code: str
) -> None:
    utf8 = not body.startswith(b"\xff")
    header = sign_payload(body, SECRET) if utf8 else f"t={int(time.time())},v1=00"
    response = client.post(URL, data=body, headers={"Stripe-Signature": header})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == code
    assert stored(app) == []


JUNK: list[Any] = [None, 5, -1, "x", True, 10**30, [], [1], {}, {"a": 1}]
TYPED_OBJECTS: list[tuple[str, dict[str, Any]]] = [
    ("invoice.paid", invoice_obj()),
    (
        "invoice.payment_failed",
        invoice_obj(status="open") | {"billing_reason": "subscription_cycle", "attempt_count": 2},
    ),
    ("invoice.voided", invoice_obj(status="void")),
    ("customer.subscription.updated", subscription_obj()),
    ("customer.subscription.trial_will_end", subscription_obj() | {"trial_end": 1_790_000_000}),
    (
        "checkout.session.completed",
        {
            "id": "cs_1",
            "object": "checkout.session",
            "client_reference_id": "acme",
            "customer": "cus_acme",
            "subscription": "sub_1",
            "metadata": dict(TAGS),
        },
    ),
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON value, the value's own first."""
    found = [prefix]
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, inner in items:
        found += _paths(inner, (*prefix, key))
    return found


def _with(obj: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(obj)
    target: Any = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return changed


def test_a_tagged_event_with_any_field_mistyped_is_processed_or_a_400_never_a_500(
    client: Any, app: Any, stripe_double: StripeDouble, acme: str
) -> None:
    """Every field of every handled object, in turn, replaced by junk: the handlers either
    take it (a field they do not read, or junk that is a valid value) or the delivery is
    refused with 400 naming that field, with nothing stored."""
    stripe_double.subscriptions["sub_1"] = state(PRO)
    refused = 0
    for type_, obj in TYPED_OBJECTS:
        for path in _paths(obj)[1:]:
            for junk in JUNK:
                sent = _with(obj, path, junk)
                if type_.startswith("invoice") and path != ("id",):
                    sent["id"] = f"in_{next(_counter)}"  # a new invoice each time
                before = len(stored(app))
                response = post(client, event(type_, sent))
                where = (type_, path, junk, response.get_json())
                assert response.status_code in (200, 400), where
                if response.status_code == 400:
                    refused += 1
                    error = response.get_json()["error"]
                    assert error["code"] == "malformed_event", where
                    field = "data.object" + "".join(
                        f"[{key}]" if isinstance(key, int) else f".{key}" for key in path
                    )
                    named = re.search(r"'([^']+)' must", error["message"])
                    # the field itself, its parent, or the junk's own first element
                    assert named and (field.startswith(named[1]) or named[1].startswith(field)), (
                        where
                    )
                    assert len(stored(app)) == before, where
                else:
                    assert response.get_json()["status"] == "processed", where
    assert refused > 100


def test_an_event_of_a_type_tiergate_does_not_handle_is_not_checked_field_by_field(
    client: Any, app: Any, stripe_double: StripeDouble, acme: str
) -> None:
    """invoice.upcoming carries a preview without an id: acknowledged, as any unhandled type."""
    preview = invoice_obj(status="draft")
    del preview["id"]
    response = post(client, event("invoice.upcoming", preview))
    assert response.status_code == 200 and response.get_json()["status"] == "processed"


@pytest.mark.parametrize("created", [None, "1", -1, 10**30, 2**63, True])
def test_an_event_created_at_an_impossible_time_is_a_400(
    client: Any, app: Any, stripe_double: StripeDouble, acme: str, created: Any
) -> None:
    evt = event("customer.subscription.updated", subscription_obj()) | {"created": created}
    response = post(client, evt)
    assert response.status_code == 400
    assert "'created' must be a unix timestamp" in response.get_json()["error"]["message"]
    assert stored(app) == []


def test_without_a_signing_secret_deliveries_are_refused_with_503(
    client: Any, app: Any, stripe_double: StripeDouble
) -> None:
    app.config["STRIPE_WEBHOOK_SECRET"] = None
    response = post(client, event("invoice.paid", invoice_obj()))
    assert response.status_code == 503
    assert "TIERGATE_STRIPE_WEBHOOK_SECRET" in response.get_json()["error"]["message"]
    assert stored(app) == []


# ---- the event store ------------------------------------------------------------------------


def test_an_event_is_stored_with_its_payload_and_processed_once(
    client: Any, app: Any, stripe_double: StripeDouble, acme: str
) -> None:
    stripe_double.subscriptions["sub_1"] = state(PRO)
    evt = event("customer.subscription.updated", subscription_obj())
    first = post(client, evt)
    assert first.status_code == 200 and first.get_json()["status"] == "processed"
    again = post(client, evt)
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    assert stripe_double.fetches == ["sub_1"]  # the duplicate did nothing at all
    [row] = stored(app)
    assert (row.id, row.type, row.created) == (evt["id"], evt["type"], evt["created"])
    assert row.payload["data"]["object"]["id"] == "sub_1"
    assert row.processed_at is not None and row.attempts == 1 and row.error is None


def test_a_handler_error_rolls_back_answers_500_and_replay_fixes_it(
    client: Any, app: Any, stripe_double: StripeDouble, acme: str
) -> None:
    stripe_double.subscriptions["sub_1"] = state(PRO)
    stripe_double.down = True
    evt = event("customer.subscription.updated", subscription_obj())
    response = post(client, evt)
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "webhook_failed"
    [row] = stored(app)
    assert row.processed_at is None and row.attempts == 1
    assert row.error == "Stripe could not be reached (test)."
    assert subscription_of(app).tier_id == "starter"  # type: ignore[union-attr]

    runner = app.test_cli_runner()
    listed = runner.invoke(webhooks_group, ["list", "--failed"])
    assert evt["id"] in listed.output and "FAILED" in listed.output
    stripe_double.down = False
    replayed = runner.invoke(webhooks_group, ["replay", evt["id"]])
    assert replayed.exit_code == 0, replayed.output
    assert "tier starter -> pro" in replayed.output
    [row] = stored(app)
    assert row.processed_at is not None and row.attempts == 2 and row.error is None
    assert subscription_of(app).tier_id == "pro"  # type: ignore[union-attr]
    assert "0 failed event(s)" in runner.invoke(webhooks_group, ["list", "--failed"]).output


def test_stripe_retrying_a_failed_event_processes_it(
    client: Any, app: Any, stripe_double: StripeDouble, acme: str
) -> None:
    stripe_double.subscriptions["sub_1"] = state(PRO)
    stripe_double.down = True
    evt = event("customer.subscription.updated", subscription_obj())
    assert post(client, evt).status_code == 500
    stripe_double.down = False
    assert post(client, evt).get_json()["status"] == "processed"
    [row] = stored(app)
    assert row.attempts == 2 and row.error is None


def test_replaying_an_unknown_event_says_so(app: Any, stripe_double: StripeDouble) -> None:
    result = app.test_cli_runner().invoke(webhooks_group, ["replay", "evt_nope"])
    assert result.exit_code != 0
    assert "No webhook event 'evt_nope' is stored" in result.output


def test_an_unknown_event_type_is_acknowledged_and_stored(
    client: Any, app: Any, stripe_double: StripeDouble
) -> None:
    response = post(client, event("customer.tax_id.created", {"id": "txi_1", "metadata": {}}))
    assert response.status_code == 200
    [row] = stored(app)
    assert row.processed_at is not None


def test_objects_tiergate_did_not_create_are_acknowledged_and_ignored(
    client: Any, app: Any, stripe_double: StripeDouble, acme: str
) -> None:
    stripe_double.subscriptions["sub_other"] = state(PRO, external_id="sub_other")
    untagged = {"id": "sub_other", "object": "subscription", "customer": "cus_acme", "metadata": {}}
    unknown_account = subscription_obj("sub_other", tiergate_account="nobody")
    unknown_account["customer"] = "cus_unknown"
    for obj in (untagged, unknown_account):
        assert post(client, event("customer.subscription.updated", obj)).status_code == 200
    assert stripe_double.fetches == []
    assert subscription_of(app).tier_id == "starter"  # type: ignore[union-attr]
    assert all(row.processed_at is not None for row in stored(app))


def test_concurrent_duplicate_deliveries_apply_once_on_postgres(
    postgres_url: str, app: Any, stripe_double: StripeDouble, acme: str, clock: FixedClock
) -> None:
    stripe_double.subscriptions["sub_1"] = state(PRO)
    evt = event("customer.subscription.updated", subscription_obj())
    db = Database(postgres_url)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def deliver() -> None:
        barrier.wait()
        outcomes.append(webhooks.process(db, clock, stripe_double, evt).status)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    db.engine.dispose()
    assert sorted(outcomes) == ["duplicate"] * 7 + ["processed"]
    assert stripe_double.fetches == ["sub_1"]
    [row] = stored(app)
    assert row.attempts == 1


# ---- the handlers ---------------------------------------------------------------------------


def test_a_subscription_event_applies_the_refetched_state_not_the_snapshot(
    client: Any, app: Any, stripe_double: StripeDouble, acme: str
) -> None:
    # The snapshot says past_due; Stripe now says active on Pro with a cancellation scheduled.
    stripe_double.subscriptions["sub_1"] = state(PRO, cancel_at_period_end=True)
    post(client, event("customer.subscription.updated", subscription_obj(status="past_due")))
    sub = subscription_of(app)
    assert sub is not None
    assert (sub.tier_id, sub.status, sub.cancel_at_period_end) == ("pro", "active", True)
    assert sub.past_due_since is None and sub.stripe_state_at is not None


@pytest.mark.parametrize(
    "type_",
    [
        "customer.subscription.created",
        "customer.subscription.deleted",
        "customer.subscription.pending_update_applied",
        "customer.subscription.pending_update_expired",
    ],
)
def test_every_subscription_event_syncs_from_stripe(
    client: Any, app: Any, stripe_double: StripeDouble, acme: str, type_: str
) -> None:
    canceled = type_ == "customer.subscription.deleted"
    stripe_double.subscriptions["sub_1"] = state(PRO, "canceled" if canceled else "active")
    assert post(client, event(type_, subscription_obj())).status_code == 200
    sub = subscription_of(app)
    assert sub is not None and sub.tier_id == "pro"
    assert sub.status == ("canceled" if canceled else "active")
    assert (sub.canceled_at is not None) is canceled


def test_trial_will_end_is_recorded_and_changes_nothing(
    client: Any, app: Any, stripe_double: StripeDouble, acme: str
) -> None:
    obj = subscription_obj(status="trialing")
    obj["trial_end"] = int((PERIOD_END).timestamp())
    assert post(client, event("customer.subscription.trial_will_end", obj)).status_code == 200
    assert stripe_double.fetches == ["sub_1"]  # re-read: does that trial end still hold?
    assert subscription_of(app).tier_id == "starter"  # type: ignore[union-attr]
    assert stored(app)[0].processed_at is not None


def test_a_failed_payment_makes_the_account_past_due_from_the_failure_and_paid_restores_it(
    client: Any, app: Any, stripe_double: StripeDouble, acme: str
) -> None:
    failed_at = int(PERIOD_END.timestamp()) + 60
    stripe_double.subscriptions["sub_1"] = state(STARTER, "past_due")
    failed = event("invoice.payment_failed", invoice_obj("in_2", "open", 900), created=failed_at)
    assert post(client, failed).status_code == 200
    sub = subscription_of(app)
    assert sub is not None and sub.status == "past_due"
    assert sub.past_due_since == datetime.fromtimestamp(failed_at, UTC)
    with get_db(app).sessionmaker() as s:
        assert s.scalar(select(Invoice.status).where(Invoice.external_id == "in_2")) == "open"

    stripe_double.subscriptions["sub_1"] = state(STARTER, "active")
    paid = event("invoice.paid", invoice_obj("in_2", "paid", 900), created=failed_at + 3600)
    assert post(client, paid).status_code == 200
    sub = subscription_of(app)
    assert sub is not None and sub.status == "active" and sub.past_due_since is None
    with get_db(app).sessionmaker() as s:
        invoice = s.scalar(select(Invoice).where(Invoice.external_id == "in_2"))
        assert invoice is not None
        assert (invoice.status, invoice.amount_paid, invoice.provider) == ("paid", 900, "stripe")
        assert invoice.lines[0]["description"].startswith("1 × Pro")


def test_a_late_older_failure_does_not_undo_a_newer_recovery(
    client: Any, app: Any, stripe_double: StripeDouble, acme: str
) -> None:
    base = int(PERIOD_END.timestamp())
    stripe_double.subscriptions["sub_1"] = state(STARTER, "active")
    post(client, event("invoice.paid", invoice_obj("in_2", "paid", 900), created=base + 3600))
    post(
        client, event("invoice.payment_failed", invoice_obj("in_2", "open", 900), created=base + 60)
    )
    sub = subscription_of(app)
    assert sub is not None and sub.status == "active" and sub.past_due_since is None
    assert sub.stripe_state_at == base + 3600
    with get_db(app).sessionmaker() as s:
        assert s.scalar(select(Invoice.status).where(Invoice.external_id == "in_2")) == "paid"


def test_checkout_completed_settles_the_pending_checkout_change(
    client: Any, app: Any, stripe_double: StripeDouble, demo_catalog: Any, clock: FixedClock
) -> None:
    now = clock.now()
    with get_db(app).session() as s:
        add_account(s, "acme", clock)
        s.add(
            BillingChange(
                id="chg_checkout",
                account_id="acme",
                kind="checkout",
                status=ChangeStatus.PENDING,
                request={"tier": "pro"},
                result={"outcome": "redirect"},
                amount_due=2900,
                currency="usd",
                created_at=now,
                updated_at=now,
            )
        )
    fresh = state(PRO, period_start=now, period_end=now + timedelta(days=30))
    charge = Charge("usd", 2900, 2900, "paid", (), external_id="in_first")
    stripe_double.subscriptions["sub_1"] = fresh
    stripe_double.changes["chg_checkout"] = Result(
        Outcome.DONE, subscription=fresh, charge=charge, customer_external_id="cus_acme"
    )
    session_obj = {
        "id": "cs_1",
        "object": "checkout.session",
        "client_reference_id": "acme",
        "customer": "cus_acme",
        "subscription": "sub_1",
        "metadata": {**TAGS, "tiergate_change": "chg_checkout"},
    }
    for _ in range(2):
        assert (
            post(
                client, event("checkout.session.completed", session_obj, event_id="evt_cs")
            ).status_code
            == 200
        )
    with get_db(app).sessionmaker() as s:
        change = s.get(BillingChange, "chg_checkout")
        assert change is not None and change.status is ChangeStatus.APPLIED
        account = s.get(Account, "acme")
        assert account is not None and account.stripe_customer_id == "cus_acme"
        assert account.subscription is not None and account.subscription.tier_id == "pro"
        assert account.subscription.stripe_subscription_id == "sub_1"
        assert s.scalar(select(func.count()).select_from(Invoice)) == 1


def test_an_invoice_paid_before_its_change_is_settled_is_recorded_once(
    client: Any, app: Any, stripe_double: StripeDouble, acme: str, clock: FixedClock
) -> None:
    now = clock.now()
    with get_db(app).session() as s:
        s.add(
            BillingChange(
                id="chg_up",
                account_id="acme",
                kind="upgrade",
                status=ChangeStatus.PENDING,
                request={"tier": "pro"},
                result={},
                amount_due=1000,
                currency="usd",
                created_at=now,
                updated_at=now,
            )
        )
    stripe_double.subscriptions["sub_1"] = state(PRO)
    stripe_double.changes["chg_up"] = Result(
        Outcome.DONE,
        subscription=state(PRO),
        charge=Charge("usd", 1000, 1000, "paid", (), external_id="in_up"),
    )
    paid = invoice_obj("in_up", "paid", 1000, tiergate_change="chg_up")
    assert post(client, event("invoice.paid", paid)).status_code == 200
    with get_db(app).sessionmaker() as s:
        [invoice] = s.scalars(select(Invoice)).all()
        assert (invoice.external_id, invoice.change_id) == ("in_up", "chg_up")
        change = s.get(BillingChange, "chg_up")
        assert change is not None and change.status is ChangeStatus.APPLIED


def test_a_state_for_an_old_subscription_does_not_replace_the_live_one(
    client: Any, app: Any, stripe_double: StripeDouble, acme: str
) -> None:
    stripe_double.subscriptions["sub_old"] = replace(state(PRO, "canceled"), external_id="sub_old")
    assert (
        post(
            client, event("customer.subscription.deleted", subscription_obj("sub_old"))
        ).status_code
        == 200
    )
    sub = subscription_of(app)
    assert sub is not None and (sub.stripe_subscription_id, sub.status) == ("sub_1", "active")
