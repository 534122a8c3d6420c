"""Notifications to the host app (billing/notifications.py): what makes them, how they are
signed and delivered to a real HTTP endpoint, retried, given up on, and checked by the client."""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from billing import notifications
from billing.cli import billing_group, notifications_group
from billing.models import Notification
from gating.models import Account
from tests.billing.conftest import subscribe
from tests.billing.test_webhooks import (
    PERIOD_END,
    StripeDouble,
    acme,
    event,
    invoice_obj,
    post,
    state,
    stripe_double,
    subscription_obj,
)
from tiergate.clock import FixedClock
from tiergate.db import get_db
from tiergate_client import InvalidNotification, verify_notification

__all__ = ["acme", "stripe_double"]  # fixtures shared with the webhook tests

SECRET = "notify-secret-0123456789"


class Receiver:
    """The host app's endpoint: a real HTTP server answering `status` and keeping what came."""

    def __init__(self) -> None:
        self.status = 204
        self.received: list[tuple[bytes, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                outer.received.append((self.rfile.read(length), dict(self.headers)))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/tiergate/notifications"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(app: Any) -> Any:
    endpoint = Receiver()
    app.config["NOTIFY_URL"], app.config["NOTIFY_SECRET"] = endpoint.url, SECRET
    yield endpoint
    endpoint.close()


def queued(app: Any, kind: str | None = None) -> list[Notification]:
    with get_db(app).sessionmaker() as s:
        query = select(Notification).order_by(Notification.created_at, Notification.id)
        if kind is not None:
            query = query.where(Notification.type == kind)
        return list(s.scalars(query))


def deliver(app: Any) -> str:
    result = app.test_cli_runner().invoke(notifications_group, ["deliver"])
    assert result.exit_code == 0, result.output
    return result.output


# ---- what makes a notification ----------------------------------------------------------


def test_stripes_trial_will_end_queues_one_notification_for_the_host_app(
    client: Any, app: Any, stripe_double: StripeDouble, acme: str
) -> None:
    obj = subscription_obj(status="trialing", tiergate_tier="pro")
    obj["trial_end"] = int(PERIOD_END.timestamp())
    stripe_double.subscriptions["sub_1"] = state(status="trialing", trial_end=PERIOD_END)
    assert post(client, event("customer.subscription.trial_will_end", obj)).status_code == 200
    # Stripe sends it again as another event (a retry after our lost answer): still one.
    assert post(client, event("customer.subscription.trial_will_end", obj)).status_code == 200
    [note] = queued(app)  # and nothing else: the subscription did not change
    assert note.type == "trial.will_end" and note.account_id == "acme"
    assert note.payload["data"] == {"tier": "pro", "trial_end": "2026-11-30T12:00:00Z"}
    assert note.payload["id"] == note.id and note.delivered_at is None


def test_a_failed_renewal_payment_queues_a_notification_with_the_grace_period_end(
    client: Any, app: Any, stripe_double: StripeDouble, acme: str
) -> None:
    failed_at = int(PERIOD_END.timestamp()) + 60
    stripe_double.subscriptions["sub_1"] = state(status="past_due")
    renewal = {
        **invoice_obj("in_2", "open", 900),
        "billing_reason": "subscription_cycle",
        "attempt_count": 1,
    }
    assert (
        post(client, event("invoice.payment_failed", renewal, created=failed_at)).status_code == 200
    )
    [note] = queued(app, "payment.failed")
    [changed] = queued(app, "subscription.changed")
    assert (changed.payload["data"]["status"], changed.payload["data"]["previous"]["status"]) == (
        "past_due",
        "active",
    )
    grace_end = datetime.fromtimestamp(failed_at, UTC) + timedelta(days=7)
    assert note.payload["data"] == {
        "invoice": "in_2",
        "attempt": 1,
        "amount_due": 900,
        "currency": "usd",
        "grace_ends_at": grace_end.isoformat().replace("+00:00", "Z"),
    }


def test_a_declined_upgrade_is_shown_on_the_page_not_notified(
    client: Any, app: Any, stripe_double: StripeDouble, acme: str
) -> None:
    upgrade = {**invoice_obj("in_3", "open", 1000), "billing_reason": "subscription_update"}
    assert post(client, event("invoice.payment_failed", upgrade)).status_code == 200
    assert queued(app, "payment.failed") == []


def test_manual_billing_notifies_trials_ending_within_three_days_once(
    app: Any, clock: FixedClock, demo_catalog: Any
) -> None:
    with get_db(app).session() as s:
        for account, days in (("soon", 2), ("later", 5)):
            subscribe(s, account, clock, demo_catalog.version, tier="pro", status="trialing")
            sub = s.get(Account, account).subscription  # type: ignore[union-attr]
            sub.trial_end = clock.now() + timedelta(days=days)
            sub.current_period_end = sub.trial_end
    first = app.test_cli_runner().invoke(billing_group, ["renew"])
    assert "soon: trial ends" in first.output and "later" not in first.output
    again = app.test_cli_runner().invoke(billing_group, ["renew"])
    assert "trial ends" not in again.output
    assert [n.account_id for n in queued(app, "trial.will_end")] == ["soon"]


# ---- delivery -----------------------------------------------------------------------------


def queue_one(app: Any, clock: FixedClock, account: str = "acme") -> str:
    with get_db(app).session() as s:
        if s.get(Account, account) is None:
            from tests.billing.conftest import add_account

            add_account(s, account, clock)
        note = notifications.trial_will_end(s, clock, account, "pro", PERIOD_END)
        assert note is not None
        return note.id


def test_a_notification_is_posted_signed_and_marked_delivered_once(
    app: Any, clock: FixedClock, receiver: Receiver, demo_catalog: Any
) -> None:
    note_id = queue_one(app, clock)
    assert f"{note_id} trial.will_end (acme): delivered" in deliver(app)
    [(body, headers)] = receiver.received
    note = verify_notification(body, headers["Tiergate-Signature"], SECRET)  # signed just now
    assert (note["id"], note["type"], note["account_id"]) == (note_id, "trial.will_end", "acme")
    assert headers["Content-Type"] == "application/json"
    assert "0 notification(s) delivered, 0 to retry" in deliver(app)  # never sent again
    assert len(receiver.received) == 1


def test_a_failing_host_app_is_retried_with_backoff_then_given_up_on(
    app: Any, clock: FixedClock, receiver: Receiver, demo_catalog: Any
) -> None:
    note_id = queue_one(app, clock)
    receiver.status = 500
    assert "the host app answered 500; next attempt at" in deliver(app)
    assert "0 notification(s) delivered, 0 to retry" in deliver(app)  # not due yet
    for wait in notifications.BACKOFF:
        clock.advance(seconds=wait.total_seconds())
        last = app.test_cli_runner().invoke(notifications_group, ["deliver"])
    assert last.exit_code == 1 and "1 given up on" in last.output  # a scheduler sees it
    assert len(receiver.received) == notifications.MAX_ATTEMPTS
    [note] = queued(app)
    assert note.next_attempt_at is None and note.delivered_at is None
    listed = app.test_cli_runner().invoke(notifications_group, ["list", "--failed"]).output
    assert f"{note_id}  trial.will_end  acme  failed (gave up)" in listed
    assert "the host app answered 500" in listed


def test_an_unreachable_host_app_is_retried(app: Any, clock: FixedClock, demo_catalog: Any) -> None:
    app.config["NOTIFY_URL"], app.config["NOTIFY_SECRET"] = "http://127.0.0.1:9/none", SECRET
    queue_one(app, clock)
    assert "could not be reached" in deliver(app)
    clock.advance(minutes=1)
    receiver = Receiver()
    try:
        app.config["NOTIFY_URL"] = receiver.url
        assert "delivered" in deliver(app)
    finally:
        receiver.close()


def test_deliver_without_a_configured_endpoint_says_what_to_set(app: Any) -> None:
    result = app.test_cli_runner().invoke(notifications_group, ["deliver"])
    assert result.exit_code == 1
    assert "Set TIERGATE_NOTIFY_URL" in result.output


# ---- the host app's check -----------------------------------------------------------------


def test_the_client_refuses_a_forged_tampered_or_stale_notification() -> None:
    body = json.dumps({"id": "ntf_1", "type": "trial.will_end"}).encode()
    now = 1_800_000_000
    good = notifications.sign(SECRET, body, now)
    assert verify_notification(body, good, SECRET, now=now)["id"] == "ntf_1"
    with pytest.raises(InvalidNotification, match="does not match"):
        verify_notification(
            body, notifications.sign("another-secret-123456", body, now), SECRET, now=now
        )
    with pytest.raises(InvalidNotification, match="does not match"):
        verify_notification(body.replace(b"ntf_1", b"ntf_2"), good, SECRET, now=now)
    with pytest.raises(InvalidNotification, match="older than 300 seconds"):
        verify_notification(body, good, SECRET, now=now + 301)
    with pytest.raises(InvalidNotification, match="no timestamp"):
        verify_notification(body, "v1=abc", SECRET, now=now)


def test_two_deliverers_at_once_send_each_notification_once_on_postgres(
    app: Any, postgres_url: str, clock: FixedClock, receiver: Receiver, demo_catalog: Any
) -> None:
    ids = {queue_one(app, clock, f"acct{n}") for n in range(12)}
    barrier = threading.Barrier(2)

    def run() -> None:
        with get_db(app).session() as s:
            barrier.wait()
            notifications.deliver_due(s, clock, receiver.url, SECRET)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent = [json.loads(body)["id"] for body, _ in receiver.received]
    assert sorted(sent) == sorted(ids)  # every one, none twice
    assert all(n.delivered_at is not None and n.attempts == 1 for n in queued(app))


def upgrade_pressed_twice(app: Any, clock: FixedClock, version: int) -> None:
    """acme accepts a Starter -> Pro offer with manual billing, then presses again (already
    accepted: nothing changes the second time)."""
    from billing import service
    from billing.manual import ManualBilling
    from tests.billing.conftest import quote_offer

    with get_db(app).session() as s:
        subscribe(s, "acme", clock, version)
        offer_id = quote_offer(
            s, "acme", clock, version, amount_due_today=1000, new_recurring=2900
        ).id
    urls = service.Urls("http://localhost/ok", "http://localhost/no")
    for _ in range(2):
        with get_db(app).session() as s:
            service.accept_offer(s, clock, ManualBilling(), offer_id, "acme", urls=urls)


def test_a_plan_change_through_the_pages_notifies_once_with_the_previous_terms(
    app: Any, clock: FixedClock, demo_catalog: Any
) -> None:
    upgrade_pressed_twice(app, clock, demo_catalog.version)
    [note] = queued(app, "subscription.changed")
    data = note.payload["data"]
    assert (data["tier"], data["status"], data["previous"]["tier"]) == ("pro", "active", "starter")


def test_replayed_stripe_events_notify_no_change_twice(
    client: Any, app: Any, stripe_double: StripeDouble, acme: str
) -> None:
    stripe_double.subscriptions["sub_1"] = state(status="active")  # Pro, from Starter
    updated = event("customer.subscription.updated", subscription_obj())
    assert post(client, updated).status_code == 200
    assert (
        post(client, event("customer.subscription.updated", subscription_obj())).status_code == 200
    )  # another event, the same state: no change, no notification
    [note] = queued(app, "subscription.changed")
    assert (note.payload["data"]["tier"], note.payload["data"]["previous"]["tier"]) == (
        "pro",
        "starter",
    )


def test_a_paid_upgrade_sends_one_receipt_with_the_amount_charged(
    app: Any, clock: FixedClock, demo_catalog: Any
) -> None:
    from billing.models import Invoice

    upgrade_pressed_twice(app, clock, demo_catalog.version)  # one charge, one receipt
    with get_db(app).sessionmaker() as s:
        [invoice] = s.scalars(select(Invoice)).all()
    [note] = queued(app, "invoice.paid")
    data = note.payload["data"]
    assert data["amount_paid"] == invoice.amount_paid > 0
    assert (data["currency"], data["provider"], data["invoice"]) == ("usd", "manual", None)
    assert sum(line["amount"] for line in data["lines"]) == invoice.amount_paid
    assert note.account_id == "acme"


def test_stripes_invoice_paid_sends_one_receipt_and_a_zero_invoice_none(
    client: Any, app: Any, stripe_double: StripeDouble, acme: str
) -> None:
    stripe_double.subscriptions["sub_1"] = state(status="active")
    paid = invoice_obj("in_10", "paid", 2900)
    for _ in range(2):  # Stripe sends the same invoice again in a new event
        assert post(client, event("invoice.paid", paid)).status_code == 200
    assert post(client, event("invoice.paid", invoice_obj("in_11", "paid", 0))).status_code == 200
    [note] = queued(app, "invoice.paid")
    assert note.payload["data"] == {
        "invoice": "in_10",
        "provider": "stripe",
        "amount_paid": 2900,
        "currency": "usd",
        "paid_at": "2026-10-31T12:01:00Z",  # status_transitions.paid_at
        "lines": [{"description": "1 × Pro (at $29.00 / month)", "amount": 2900}],
    }


def test_a_failed_invoice_paid_later_sends_its_receipt_then(
    client: Any, app: Any, stripe_double: StripeDouble, acme: str
) -> None:
    stripe_double.subscriptions["sub_1"] = state(status="past_due")
    failed = {**invoice_obj("in_12", "open", 900), "billing_reason": "subscription_cycle"}
    assert post(client, event("invoice.payment_failed", failed)).status_code == 200
    assert queued(app, "invoice.paid") == []
    stripe_double.subscriptions["sub_1"] = state(status="active")
    recovered = {**invoice_obj("in_12", "paid", 900), "billing_reason": "subscription_cycle"}
    assert post(client, event("invoice.paid", recovered)).status_code == 200
    [note] = queued(app, "invoice.paid")
    assert (note.payload["data"]["invoice"], note.payload["data"]["amount_paid"]) == ("in_12", 900)


class NotHTTP:
    """A host app that reads the request and answers bytes that are not HTTP."""

    def __init__(self, answer: bytes) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.answer = answer
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/tiergate/notifications"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(self.answer)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000 + b"\r\n\r\n",  # a header line too long
    ],
)
def test_a_host_app_answering_something_else_than_http_is_a_failed_attempt_retried(
    app: Any, clock: FixedClock, answer: bytes
) -> None:
    """Before, this raised out of `deliver` before the attempt was recorded: the outbox stayed
    stuck on that notification, and the ones behind it were never sent."""
    endpoint = NotHTTP(answer)
    app.config["NOTIFY_URL"], app.config["NOTIFY_SECRET"] = endpoint.url, SECRET
    try:
        first, second = queue_one(app, clock), queue_one(app, clock, "globex")
        output = deliver(app)
    finally:
        endpoint.close()
    assert "did not answer in HTTP" in output and "next attempt at" in output
    by_id = {n.id: n for n in queued(app)}
    assert all(by_id[i].attempts == 1 and by_id[i].last_error for i in (first, second))


DOWN = "http://127.0.0.1:9/tiergate/notifications"  # nothing listens there


def test_deliver_counts_what_was_delivered_and_exits_non_zero_when_it_gives_up(
    app: Any, clock: Any, demo_catalog: Any
) -> None:
    """The host app is down: the summary says nothing was delivered and one will be retried;
    the run that gives up on it for good (a `payment.failed` the host app never gets) exits
    non-zero, as `billing renew` does, so a scheduler sees it."""
    app.config["NOTIFY_URL"], app.config["NOTIFY_SECRET"] = DOWN, SECRET
    queue_one(app, clock)
    result = app.test_cli_runner().invoke(notifications_group, ["deliver"])
    assert "0 notification(s) delivered, 1 to retry, 0 given up on." in result.output
    assert result.exit_code == 0, result.output
    for wait in notifications.BACKOFF:
        clock.advance(seconds=wait.total_seconds())
        result = app.test_cli_runner().invoke(notifications_group, ["deliver"])
    assert "gave up after" in result.output
    assert "0 notification(s) delivered, 0 to retry, 1 given up on." in result.output
    assert result.exit_code == 1


def test_a_late_trial_will_end_for_a_trial_since_extended_tells_the_host_app_nothing(
    client: Any, app: Any, stripe_double: StripeDouble, acme: str
) -> None:
    """Stripe's warning for the trial's old end arrives after the trial was extended (Stripe
    now says it ends a week later): the host app is not told of a charge that will not come
    then (Stripe warns again before the new end)."""
    obj = subscription_obj(status="trialing", tiergate_tier="pro")
    obj["trial_end"] = int(PERIOD_END.timestamp())
    later = PERIOD_END + timedelta(days=7)
    stripe_double.subscriptions["sub_1"] = state(status="trialing", trial_end=later)
    assert post(client, event("customer.subscription.trial_will_end", obj)).status_code == 200
    assert queued(app) == []
