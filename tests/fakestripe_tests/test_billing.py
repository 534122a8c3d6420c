"""Subscriptions, proration, previews, payment failures, renewals — through the real SDK."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from tests.fakestripe import FakeStripe

DAY = 86_400


def subscribe(client: Any, customer: Any, *prices: Any, **extra: Any) -> Any:
    return client.v1.subscriptions.create({
        "customer": customer.id, "items": [{"price": p.id} for p in prices],
        "billing_mode": {"type": "classic"}, **extra})


def period(sub: Any) -> tuple[int, int]:
    item = sub["items"].data[0]
    return item.current_period_start, item.current_period_end


def change_item(sub: Any, price: Any, index: int = 0) -> list[dict[str, Any]]:
    return [{"id": sub["items"].data[index].id, "price": price.id}]


def test_subscription_create_bills_first_period(client: Any, fake: FakeStripe, catalog: Any,
                                                customer: Any) -> None:
    sub = subscribe(client, customer, catalog.basic, catalog.addon,
                    metadata={"account": "acct_1"}, expand=["latest_invoice"])
    assert sub.id.startswith("sub_") and sub.status == "active"
    assert sub.customer == customer.id and sub.metadata["account"] == "acct_1"
    start, end = period(sub)
    assert start == fake.now and end - start == 30 * DAY  # 15 Nov -> 15 Dec
    inv = sub.latest_invoice
    assert inv.billing_reason == "subscription_create" and inv.status == "paid"
    assert inv.amount_due == inv.amount_paid == 1300
    assert [ln.amount for ln in inv.lines.data] == [1000, 300]
    assert inv.lines.data[0].parent.subscription_item_details.subscription_item == \
        sub["items"].data[0].id
    assert inv.parent.subscription_details.subscription == sub.id
    assert fake.event_types()[-6:] == [
        "customer.subscription.created", "invoice.created", "invoice.finalized",
        "invoice.paid", "invoice.payment_succeeded", "customer.subscription.updated"]
    listed = client.v1.subscriptions.list({"customer": customer.id})
    assert [s.id for s in listed.data] == [sub.id]


def test_stripe_documented_proration_example_half_period(client: Any, fake: FakeStripe,
                                                         catalog: Any, customer: Any) -> None:
    """10 USD -> 20 USD monthly, changed exactly halfway: credit -5, debit +10, 5 USD due."""
    sub = subscribe(client, customer, catalog.basic)
    start, end = period(sub)
    half = start + (end - start) // 2
    fake.set_time(half)
    updated = client.v1.subscriptions.update(sub.id, {
        "items": change_item(sub, catalog.pro), "proration_behavior": "always_invoice",
        "expand": ["latest_invoice"]})
    inv = updated.latest_invoice
    assert [ln.amount for ln in inv.lines.data] == [-500, 1000]
    assert inv.amount_due == 500 and inv.status == "paid"
    assert inv.billing_reason == "subscription_update"
    assert all(ln.parent.subscription_item_details.proration for ln in inv.lines.data)
    assert inv.lines.data[0].description == "Unused time on Pro after 30 Nov 2026"
    assert inv.lines.data[1].description == "Remaining time on Pro after 30 Nov 2026"
    assert inv.lines.data[0].period.start == half and inv.lines.data[0].period.end == end
    assert updated["items"].data[0].price.id == catalog.pro.id
    assert updated["items"].data[0].id == sub["items"].data[0].id  # same item, new price


def test_create_prorations_waits_for_the_next_invoice(client: Any, fake: FakeStripe,
                                                      catalog: Any, customer: Any) -> None:
    sub = subscribe(client, customer, catalog.basic)
    start, end = period(sub)
    client.v1.subscriptions.update(sub.id, {
        "items": change_item(sub, catalog.pro), "proration_date": start + (end - start) // 2})
    pending = client.v1.invoice_items.list({"customer": customer.id, "pending": True}).data
    assert sorted(ii.amount for ii in pending) == [-500, 1000]
    assert all(ii.proration for ii in pending)
    fake.advance_to_period_end(sub.id)
    renewed = client.v1.subscriptions.retrieve(sub.id, {"expand": ["latest_invoice"]})
    inv = renewed.latest_invoice
    assert inv.billing_reason == "subscription_cycle"
    assert sorted(ln.amount for ln in inv.lines.data) == [-500, 1000, 2000]
    assert inv.amount_due == 2500 and inv.status == "paid"
    assert period(renewed) == (end, end + 31 * DAY)  # 15 Dec -> 15 Jan


def test_proration_behavior_none(client: Any, catalog: Any, customer: Any) -> None:
    sub = subscribe(client, customer, catalog.basic)
    client.v1.subscriptions.update(sub.id, {"items": change_item(sub, catalog.pro),
                                            "proration_behavior": "none"})
    assert client.v1.invoice_items.list({"customer": customer.id}).data == []


@pytest.mark.parametrize("behavior", ["always_invoice", "create_prorations", "none"])
def test_preview_equals_actual_charge_at_same_proration_date(
        client: Any, fake: FakeStripe, catalog: Any, customer: Any, behavior: str) -> None:
    sub = subscribe(client, customer, catalog.basic, catalog.addon)
    start, end = period(sub)
    when = start + 1_234_567
    items = change_item(sub, catalog.pro) + [
        {"id": sub["items"].data[1].id, "quantity": 3}]
    preview = client.v1.invoices.create_preview({
        "subscription": sub.id, "subscription_details": {
            "items": items, "proration_date": when, "proration_behavior": behavior}})
    assert preview.object == "invoice" and preview.id.startswith("upcoming_")
    assert preview.status == "draft"
    assert all(ln.id.startswith("il_tmp_") for ln in preview.lines.data)
    events_before = len(fake.events)
    assert client.v1.invoices.list({"customer": customer.id}).data[0].id != preview.id
    fake.set_time(when + 60)  # the customer takes a minute to confirm
    updated = client.v1.subscriptions.update(sub.id, {
        "items": items, "proration_date": when, "proration_behavior": behavior,
        "expand": ["latest_invoice"]})
    if behavior == "always_invoice":
        charged = updated.latest_invoice
    else:
        fake.advance_to_period_end(sub.id)
        charged = client.v1.invoices.retrieve(
            client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    assert len(fake.events) > events_before
    assert charged.amount_due == preview.amount_due
    assert charged.total == preview.total and charged.subtotal == preview.subtotal
    assert sorted(ln.amount for ln in charged.lines.data) == \
        sorted(ln.amount for ln in preview.lines.data)
    if behavior != "none":
        assert any(ln.parent.subscription_item_details.proration for ln in preview.lines.data)


def test_preview_has_no_side_effects(client: Any, fake: FakeStripe, catalog: Any,
                                     customer: Any) -> None:
    sub = subscribe(client, customer, catalog.basic)
    before = (len(fake.events), client.v1.invoices.list().data, fake.get(sub.id))
    client.v1.invoices.create_preview({
        "subscription": sub.id, "subscription_details": {
            "items": change_item(sub, catalog.pro), "proration_behavior": "always_invoice"}})
    assert (len(fake.events), client.v1.invoices.list().data, fake.get(sub.id)) == before


def test_preview_of_a_new_subscription_for_a_customer(client: Any, catalog: Any,
                                                      customer: Any) -> None:
    preview = client.v1.invoices.create_preview({
        "customer": customer.id,
        "subscription_details": {"items": [{"price": catalog.pro.id, "quantity": 2}]}})
    assert preview.amount_due == 4000
    assert client.v1.subscriptions.list().data == []


def test_proration_date_outside_the_period_is_rejected(client: Any, catalog: Any,
                                                       customer: Any) -> None:
    sub = subscribe(client, customer, catalog.basic)
    _, end = period(sub)
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.subscriptions.update(sub.id, {"items": change_item(sub, catalog.pro),
                                                "proration_date": end + 10})
    assert exc.value.param == "proration_date"


def test_declined_card_leaves_invoice_open_and_subscription_past_due(
        client: Any, fake: FakeStripe, catalog: Any, customer: Any) -> None:
    sub = subscribe(client, customer, catalog.basic)
    bad = fake.attach_card(customer.id, declining=True)
    assert client.v1.customers.retrieve(customer.id).invoice_settings.default_payment_method \
        == bad
    updated = client.v1.subscriptions.update(sub.id, {
        "items": change_item(sub, catalog.pro), "proration_behavior": "always_invoice",
        "expand": ["latest_invoice"]})
    inv = updated.latest_invoice
    assert updated.status == "past_due"
    assert updated["items"].data[0].price.id == catalog.pro.id  # allow_incomplete: applied
    assert inv.status == "open" and inv.attempt_count == 1 and inv.amount_remaining > 0
    assert "invoice.payment_failed" in fake.event_types()
    with pytest.raises(stripe.CardError) as exc:
        client.v1.invoices.pay(inv.id)
    assert exc.value.http_status == 402 and exc.value.code == "card_declined"
    assert exc.value.json_body["error"]["type"] == "card_error"
    assert exc.value.json_body["error"]["decline_code"] == "generic_decline"
    assert client.v1.invoices.retrieve(inv.id).attempt_count == 2  # the attempt is kept
    good = client.v1.payment_methods.attach("pm_card_visa", {"customer": customer.id})
    paid = client.v1.invoices.pay(inv.id, {"payment_method": good.id})
    assert paid.status == "paid"
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_decline_next_payment_fails_exactly_once(client: Any, fake: FakeStripe, catalog: Any,
                                                 customer: Any) -> None:
    fake.decline_next_payment(customer.id)
    sub = subscribe(client, customer, catalog.basic)
    assert sub.status == "incomplete"
    inv = client.v1.invoices.retrieve(sub.latest_invoice)
    assert inv.status == "open"
    assert client.v1.invoices.pay(inv.id).status == "paid"
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_decline_next_payment_declines_with_the_reason_asked_for_in_stripes_shape(
        client: Any, fake: FakeStripe, catalog: Any, customer: Any) -> None:
    """card_declined carries the decline_code; an expired card, a wrong CVC, ... come under an
    error code of their own, with the param and no decline_code, as Stripe sends them."""
    sub = subscribe(client, customer, catalog.basic)
    fake.decline_next_payment(customer.id, decline_code="insufficient_funds")
    fake.decline_next_payment(customer.id, decline_code="expired_card")
    update = {"items": change_item(sub, catalog.pro), "proration_behavior": "always_invoice",
              "payment_behavior": "error_if_incomplete"}
    with pytest.raises(stripe.CardError) as funds:
        client.v1.subscriptions.update(sub.id, update)
    assert funds.value.http_status == 402
    error = funds.value.json_body["error"]
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error", "card_declined", "insufficient_funds")
    assert error["message"] == "Your card has insufficient funds." and "param" not in error
    assert funds.value.error.decline_code == "insufficient_funds"
    with pytest.raises(stripe.CardError) as expired:
        client.v1.subscriptions.update(sub.id, update)
    error = expired.value.json_body["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "card_error", "expired_card", "exp_month")
    assert "decline_code" not in error and expired.value.error.decline_code is None
    # both were used up: the next payment goes through
    updated = client.v1.subscriptions.update(sub.id, update)
    assert updated["items"].data[0].price.id == catalog.pro.id


def test_error_if_incomplete_changes_nothing(client: Any, fake: FakeStripe, catalog: Any,
                                             customer: Any) -> None:
    sub = subscribe(client, customer, catalog.basic)
    n_events, n_invoices = len(fake.events), len(client.v1.invoices.list().data)
    fake.decline_next_payment(customer.id)
    with pytest.raises(stripe.CardError):
        client.v1.subscriptions.update(sub.id, {
            "items": change_item(sub, catalog.pro), "proration_behavior": "always_invoice",
            "payment_behavior": "error_if_incomplete"})
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after["items"].data[0].price.id == catalog.basic.id
    assert len(fake.events) == n_events
    assert len(client.v1.invoices.list().data) == n_invoices


def test_pending_if_incomplete_keeps_old_items_until_paid(
        client: Any, fake: FakeStripe, catalog: Any, customer: Any) -> None:
    sub = subscribe(client, customer, catalog.basic)
    fake.decline_next_payment(customer.id)
    updated = client.v1.subscriptions.update(sub.id, {
        "items": change_item(sub, catalog.pro), "proration_behavior": "always_invoice",
        "payment_behavior": "pending_if_incomplete"})
    assert updated.status == "active"
    assert updated["items"].data[0].price.id == catalog.basic.id
    pu = updated.pending_update
    assert pu is not None and pu.subscription_items[0].price.id == catalog.pro.id
    assert pu.expires_at == fake.now + 23 * 3600
    inv = client.v1.invoices.retrieve(updated.latest_invoice)
    assert inv.status == "open"
    paid = client.v1.invoices.pay(inv.id)
    assert paid.status == "paid"
    applied = client.v1.subscriptions.retrieve(sub.id)
    assert applied.pending_update is None
    assert applied["items"].data[0].price.id == catalog.pro.id
    assert "customer.subscription.pending_update_applied" in fake.event_types()


def test_pending_update_expires_after_23_hours(client: Any, fake: FakeStripe, catalog: Any,
                                               customer: Any) -> None:
    sub = subscribe(client, customer, catalog.basic)
    fake.decline_next_payment(customer.id)
    updated = client.v1.subscriptions.update(sub.id, {
        "items": change_item(sub, catalog.pro), "proration_behavior": "always_invoice",
        "payment_behavior": "pending_if_incomplete"})
    fake.advance(23 * 3600)
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after.pending_update is None
    assert after["items"].data[0].price.id == catalog.basic.id
    assert client.v1.invoices.retrieve(updated.latest_invoice).status == "void"
    assert "customer.subscription.pending_update_expired" in fake.event_types()


def test_a_declined_pending_update_keeps_the_decline_on_the_invoices_payment_intent(
        client: Any, fake: FakeStripe, catalog: Any, customer: Any) -> None:
    """The update's own answer can expand its invoice's payments (an includable field); the
    payment's PaymentIntent carries the card error as last_payment_error, in the shape of the
    402 Stripe sends for the same decline; paying later clears it."""
    sub = subscribe(client, customer, catalog.basic)
    first = client.v1.invoices.retrieve(sub.latest_invoice, {"expand": ["payments"]})
    [paid] = first.payments.data
    assert (paid.object, paid.status, paid.is_default) == ("invoice_payment", "paid", True)
    assert (paid.amount_requested, paid.amount_paid, paid.invoice) == (1000, 1000, first.id)
    assert client.v1.payment_intents.retrieve(paid.payment.payment_intent).status == "succeeded"
    assert "payments" not in client.v1.invoices.retrieve(first.id)  # only when expanded

    fake.decline_next_payment(customer.id, decline_code="insufficient_funds")
    updated = client.v1.subscriptions.update(sub.id, {
        "items": change_item(sub, catalog.pro), "proration_behavior": "always_invoice",
        "payment_behavior": "pending_if_incomplete", "expand": ["latest_invoice.payments"]})
    assert updated.pending_update is not None
    invoice = updated.latest_invoice
    [payment] = invoice.payments.data
    assert (payment.status, payment.is_default, payment.amount_paid) == ("open", True, None)
    assert payment.payment.type == "payment_intent"
    assert payment.amount_requested == invoice.amount_due == 1000  # 20 - 10 for a full month
    intent = client.v1.payment_intents.retrieve(payment.payment.payment_intent)
    assert (intent.object, intent.status, intent.amount) == (
        "payment_intent", "requires_payment_method", 1000)
    assert (intent.customer, intent.payment_method) == (customer.id, None)
    error = intent.last_payment_error
    assert (error.type, error.code, error.decline_code) == (
        "card_error", "card_declined", "insufficient_funds")
    assert error.message == "Your card has insufficient funds."
    card = client.v1.customers.retrieve(customer.id).invoice_settings.default_payment_method
    assert error.payment_method.id == card
    # the same in one request, four levels deep at most, as on Stripe
    again = client.v1.invoices.retrieve(invoice.id, {
        "expand": ["payments.data.payment.payment_intent"]})
    assert again.payments.data[0].payment.payment_intent.last_payment_error.code == (
        "card_declined")
    with pytest.raises(stripe.InvalidRequestError) as deep:
        client.v1.subscriptions.retrieve(sub.id, {
            "expand": ["latest_invoice.payments.data.payment.payment_intent"]})
    assert deep.value.param == "expand"
    assert "more than 4 levels" in (deep.value.user_message or "")

    client.v1.invoices.pay(invoice.id)  # a retry that goes through
    intent = client.v1.payment_intents.retrieve(intent.id)
    assert (intent.status, intent.amount_received, intent.last_payment_error) == (
        "succeeded", 1000, None)
    assert intent.payment_method == card
    listed = client.v1.invoice_payments.list({"invoice": invoice.id})
    assert [(p.id, p.status, p.amount_paid) for p in listed.data] == [(payment.id, "paid", 1000)]


def test_an_expired_card_on_a_pending_update_is_kept_under_its_own_code(
        client: Any, fake: FakeStripe, catalog: Any, customer: Any) -> None:
    """A decline Stripe reports under an error code of its own: no decline_code; voiding the
    invoice cancels its PaymentIntent and keeps the error."""
    sub = subscribe(client, customer, catalog.basic)
    fake.decline_next_payment(customer.id, decline_code="expired_card")
    updated = client.v1.subscriptions.update(sub.id, {
        "items": change_item(sub, catalog.pro), "proration_behavior": "always_invoice",
        "payment_behavior": "pending_if_incomplete", "expand": ["latest_invoice.payments"]})
    pi_id = updated.latest_invoice.payments.data[0].payment.payment_intent
    client.v1.invoices.void_invoice(updated.latest_invoice.id)
    intent = client.v1.payment_intents.retrieve(pi_id)
    assert (intent.status, intent.cancellation_reason) == ("canceled", "void_invoice")
    error = intent.last_payment_error
    assert (error.code, error.param) == ("expired_card", "exp_month")
    assert "decline_code" not in error.to_dict()
    [payment] = client.v1.invoice_payments.list({"invoice": updated.latest_invoice.id}).data
    assert payment.status == "canceled" and payment.status_transitions.canceled_at == fake.now
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.payment_intents.retrieve("pi_missing")
    assert missing.value.http_status == 404
    assert missing.value.user_message == "No such payment_intent: 'pi_missing'"


def test_pending_if_incomplete_rejects_other_parameters(client: Any, catalog: Any,
                                                        customer: Any) -> None:
    sub = subscribe(client, customer, catalog.basic)
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.subscriptions.update(sub.id, {
            "items": change_item(sub, catalog.pro), "metadata": {"a": "b"},
            "payment_behavior": "pending_if_incomplete"})
    assert exc.value.param == "metadata"


def test_renewal_paid_and_failed(client: Any, fake: FakeStripe, catalog: Any,
                                 customer: Any) -> None:
    sub = subscribe(client, customer, catalog.basic)
    fake.advance_to_period_end(sub.id)
    inv = client.v1.invoices.retrieve(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    assert inv.billing_reason == "subscription_cycle" and inv.status == "paid"
    fake.decline_next_payment(customer.id)
    renewed = fake.advance_to_period_end(sub.id)
    assert renewed["status"] == "past_due"
    failed = client.v1.invoices.retrieve(renewed["latest_invoice"])
    assert failed.status == "open" and failed.attempted
    assert fake.event_types()[-2:] == ["invoice.payment_failed",
                                       "customer.subscription.updated"]
    assert client.v1.customers.retrieve(customer.id).delinquent is True


def test_advance_renews_every_period_on_the_way(client: Any, fake: FakeStripe, catalog: Any,
                                                customer: Any) -> None:
    sub = subscribe(client, customer, catalog.basic)
    fake.advance(95 * DAY)
    invoices = client.v1.invoices.list({"subscription": sub.id}).data
    assert [i.billing_reason for i in invoices] == ["subscription_cycle"] * 3 + [
        "subscription_create"]


def test_a_subscriptions_invoices_listed_since_a_time(client: Any, fake: FakeStripe,
                                                      catalog: Any, customer: Any) -> None:
    sub = subscribe(client, customer, catalog.basic)
    other = subscribe(client, customer, catalog.pro)
    fake.advance(65 * DAY)  # two renewals each
    since = fake.now - 40 * DAY
    page = client.v1.invoices.list({"subscription": sub.id, "created": {"gte": since},
                                    "limit": 10})
    assert (page.object, page.url, page.has_more) == ("list", "/v1/invoices", False)
    assert [i.billing_reason for i in page.data] == ["subscription_cycle"] * 2
    assert all(i.created >= since and i.subscription == sub.id for i in page.data)
    assert other.id not in {i.subscription for i in page.data}
    first = client.v1.invoices.list({"subscription": sub.id, "limit": 1})
    assert first.has_more and first.data[0].id == page.data[0].id  # the newest
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.invoices.list({"subscription_id": sub.id})
    assert exc.value.user_message == "Received unknown parameter: subscription_id"


def test_trial_then_conversion(client: Any, fake: FakeStripe, catalog: Any,
                               customer: Any) -> None:
    sub = subscribe(client, customer, catalog.pro, trial_period_days=14,
                    expand=["latest_invoice"])
    assert sub.status == "trialing" and sub.trial_end == fake.now + 14 * DAY
    assert sub.latest_invoice.amount_due == 0 and sub.latest_invoice.status == "paid"
    fake.advance(11 * DAY)
    assert fake.event_types()[-1] == "customer.subscription.trial_will_end"
    converted = fake.advance_to_period_end(sub.id)
    assert converted["status"] == "active"
    first = client.v1.invoices.retrieve(converted["latest_invoice"])
    assert first.amount_paid == 2000
    assert period(client.v1.subscriptions.retrieve(sub.id))[0] == sub.trial_end


def test_cancel_at_period_end_and_immediate_cancel(client: Any, fake: FakeStripe,
                                                   catalog: Any, customer: Any) -> None:
    sub = subscribe(client, customer, catalog.basic)
    _, end = period(sub)
    marked = client.v1.subscriptions.update(sub.id, {"cancel_at_period_end": True})
    assert marked.cancel_at_period_end and marked.cancel_at == end and marked.status == "active"
    fake.advance_to_period_end(sub.id)
    gone = client.v1.subscriptions.retrieve(sub.id)
    assert gone.status == "canceled" and gone.ended_at == end
    assert fake.event_types()[-1] == "customer.subscription.deleted"
    assert client.v1.subscriptions.list({"customer": customer.id}).data == []

    other = subscribe(client, customer, catalog.pro)
    canceled = client.v1.subscriptions.cancel(other.id, {"prorate": True, "invoice_now": True})
    assert canceled.status == "canceled"
    assert client.v1.customers.retrieve(customer.id).balance == -2000  # unused time credited
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.update(other.id, {"items": change_item(other, catalog.basic)})


def test_month_to_year_resets_the_period_and_invoices_now(client: Any, fake: FakeStripe,
                                                          catalog: Any, customer: Any) -> None:
    sub = subscribe(client, customer, catalog.pro)
    start, end = period(sub)
    fake.set_time(start + 15 * DAY)
    preview = client.v1.invoices.create_preview({
        "subscription": sub.id,
        "subscription_details": {"items": change_item(sub, catalog.pro_yearly),
                                 "proration_date": fake.now}})
    updated = client.v1.subscriptions.update(sub.id, {
        "items": change_item(sub, catalog.pro_yearly), "proration_date": fake.now,
        "expand": ["latest_invoice"]})
    inv = updated.latest_invoice
    assert [ln.amount for ln in inv.lines.data] == [-1000, 10000]
    assert inv.amount_due == preview.amount_due == 9000
    assert period(updated) == (fake.now, fake.now + 365 * DAY)
    assert updated.billing_cycle_anchor == fake.now


def test_subscription_items_endpoints_prorate(client: Any, fake: FakeStripe, catalog: Any,
                                              customer: Any) -> None:
    sub = subscribe(client, customer, catalog.basic)
    start, end = period(sub)
    half = start + (end - start) // 2
    si = client.v1.subscription_items.create({
        "subscription": sub.id, "price": catalog.addon.id, "quantity": 2,
        "proration_date": half})
    assert si.object == "subscription_item" and si.quantity == 2
    assert si.current_period_end == end
    client.v1.subscription_items.update(si.id, {"quantity": 4, "proration_date": half})
    deleted = client.v1.subscription_items.delete(si.id, {"proration_date": half})
    assert deleted.deleted is True
    amounts = sorted(ii.amount for ii in client.v1.invoice_items.list(
        {"customer": customer.id}).data)
    assert amounts == sorted([300, -300, 600, -600])
    items = client.v1.subscription_items.list({"subscription": sub.id}).data
    assert [i.price.id for i in items] == [catalog.basic.id]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscription_items.delete(items[0].id)


def test_percent_coupon_and_promotion_code(client: Any, fake: FakeStripe, catalog: Any,
                                           customer: Any) -> None:
    coupon = client.v1.coupons.create({"percent_off": 25.5, "duration": "forever",
                                       "name": "Launch"})
    assert coupon.percent_off == 25.5 and coupon.valid
    sub = subscribe(client, customer, catalog.basic, discounts=[{"coupon": coupon.id}],
                    expand=["latest_invoice"])
    inv = sub.latest_invoice
    assert inv.subtotal == 1000 and inv.total == 745 and inv.amount_due == 745
    assert inv.total_discount_amounts[0].amount == 255
    assert inv.lines.data[0].discount_amounts[0].amount == 255
    assert client.v1.coupons.retrieve(coupon.id).times_redeemed == 1

    once = client.v1.coupons.create({"amount_off": 500, "currency": "usd", "duration": "once"})
    promo = client.v1.promotion_codes.create({"promotion": {"type": "coupon",
                                                            "coupon": once.id},
                                              "code": "WELCOME5"})
    assert promo.code == "WELCOME5" and promo.active
    other = subscribe(client, customer, catalog.pro,
                      discounts=[{"promotion_code": promo.id}], expand=["latest_invoice"])
    assert other.latest_invoice.amount_due == 1500
    fake.advance_to_period_end(other.id)
    renewal = client.v1.invoices.retrieve(client.v1.subscriptions.retrieve(other.id)
                                          .latest_invoice)
    assert renewal.amount_due == 2000  # a `once` coupon is used up


def test_one_time_invoice_item_and_manual_invoice(client: Any, fake: FakeStripe, catalog: Any,
                                                  customer: Any) -> None:
    ii = client.v1.invoice_items.create({"customer": customer.id, "amount": 1234,
                                         "currency": "usd", "description": "Setup"})
    assert ii.invoice is None and ii.proration is False
    inv = client.v1.invoices.create({"customer": customer.id,
                                     "pending_invoice_items_behavior": "include"})
    assert inv.status == "draft" and inv.total == 1234
    inv = client.v1.invoices.finalize_invoice(inv.id)
    assert inv.status == "open" and inv.number
    assert client.v1.invoices.pay(inv.id).status == "paid"
    # a pending one-time item joins the next subscription invoice
    client.v1.invoice_items.create({"customer": customer.id,
                                    "pricing": {"price": catalog.setup_fee.id}})
    sub = subscribe(client, customer, catalog.basic, expand=["latest_invoice"])
    assert sub.latest_invoice.amount_due == 6000


def test_prices_lookup_keys_and_immutable_amounts(client: Any, catalog: Any) -> None:
    found = client.v1.prices.list({"lookup_keys": ["pro_monthly"]}).data
    assert [p.id for p in found] == [catalog.pro.id]
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.prices.create({"product": catalog.product.id, "currency": "usd",
                                 "unit_amount": 2500, "recurring": {"interval": "month"},
                                 "lookup_key": "pro_monthly"})
    assert exc.value.param == "lookup_key"
    moved = client.v1.prices.create({"product": catalog.product.id, "currency": "usd",
                                     "unit_amount": 2500, "recurring": {"interval": "month"},
                                     "lookup_key": "pro_monthly", "transfer_lookup_key": True})
    assert client.v1.prices.retrieve(catalog.pro.id).lookup_key is None
    assert [p.id for p in client.v1.prices.list({"lookup_keys": ["pro_monthly"]}).data] == [
        moved.id]
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.prices.update(moved.id, {"unit_amount": 3000})
    assert exc.value.user_message == "Received unknown parameter: unit_amount"
    assert client.v1.prices.update(moved.id, {"active": False}).active is False
    products = client.v1.products.list({"active": True}).data
    assert {p.id for p in products} == {catalog.product.id, catalog.addon_product.id}


def test_events_list_and_retrieve(client: Any, fake: FakeStripe, catalog: Any,
                                  customer: Any) -> None:
    subscribe(client, customer, catalog.basic)
    listed = client.v1.events.list({"type": "invoice.paid"}).data
    assert len(listed) == 1
    event = client.v1.events.retrieve(listed[0].id)
    assert event.id.startswith("evt_") and event.data.object.object == "invoice"
    assert event.api_version == stripe.api_version
    assert event.request.id.startswith("req_") and event.request.idempotency_key
    everything = client.v1.events.list({"limit": 100}).data
    assert [e.id for e in everything] == [e["id"] for e in reversed(fake.events)]
    updated = [e for e in fake.events if e["type"] == "customer.subscription.updated"]
    assert updated[-1]["data"]["previous_attributes"] == {"status": "incomplete"}


def test_customer_update_and_payment_methods(client: Any, fake: FakeStripe) -> None:
    cus = client.v1.customers.create({"email": "x@example.com"})
    pm = client.v1.payment_methods.attach("pm_card_mastercard", {"customer": cus.id})
    assert pm.card.last4 == "4444" and pm.customer == cus.id
    updated = client.v1.customers.update(cus.id, {
        "invoice_settings": {"default_payment_method": pm.id}, "metadata": {"a": "1"}})
    assert updated.invoice_settings.default_payment_method == pm.id
    ev = fake.events_of("customer.updated")[-1]
    assert ev["data"]["previous_attributes"]["invoice_settings"] == {
        "default_payment_method": None}
    with pytest.raises(stripe.CardError):
        client.v1.payment_methods.attach("pm_card_chargeDeclined", {"customer": cus.id})


def test_trial_end_now_and_anchor_reset(client: Any, fake: FakeStripe, catalog: Any,
                                        customer: Any) -> None:
    trial = subscribe(client, customer, catalog.basic, trial_period_days=30)
    ended = client.v1.subscriptions.update(trial.id, {"trial_end": "now",
                                                      "expand": ["latest_invoice"]})
    assert ended.status == "active" and ended.trial_end == fake.now
    assert ended.latest_invoice.amount_paid == 1000
    assert period(ended) == (fake.now, fake.now + 30 * DAY)
    fake.advance(10 * DAY)
    reset = client.v1.subscriptions.update(ended.id, {"billing_cycle_anchor": {"type": "now"},
                                                      "expand": ["latest_invoice"]})
    assert [ln.amount for ln in reset.latest_invoice.lines.data] == [-667, 1000]
    assert reset.billing_cycle_anchor == fake.now


def test_downgrade_credit_is_used_by_the_next_invoice(client: Any, fake: FakeStripe,
                                                      catalog: Any, customer: Any) -> None:
    sub = subscribe(client, customer, catalog.pro)
    start, end = period(sub)
    down = client.v1.subscriptions.update(sub.id, {
        "items": change_item(sub, catalog.basic), "proration_behavior": "always_invoice",
        "proration_date": start + (end - start) // 2, "expand": ["latest_invoice"]})
    assert down.latest_invoice.total == -500 and down.latest_invoice.amount_due == 0
    assert client.v1.customers.retrieve(customer.id).balance == -500
    fake.advance_to_period_end(sub.id)
    nxt = client.v1.invoices.retrieve(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    assert (nxt.total, nxt.starting_balance, nxt.amount_due, nxt.ending_balance) == (
        1000, -500, 500, 0)


def test_expand_unknown_property(client: Any, catalog: Any, customer: Any) -> None:
    sub = subscribe(client, customer, catalog.basic)
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.subscriptions.retrieve(sub.id, {"expand": ["nope"]})
    assert exc.value.user_message == "This property cannot be expanded (nope)."
