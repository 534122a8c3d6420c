"""StripeBilling: the billing provider interface carried out through the Stripe API.

With billing/stripe_sync.py and billing/stripe_errors.py, the only code that imports `stripe`.
Every write carries an idempotency key derived from the BillingChange id (`{key}:{step}`), so
a retried call replays Stripe's first answer instead of charging again, and everything written
is tagged with metadata (`tiergate: "1"`, `tiergate_account`, `tiergate_tier`,
`tiergate_interval`, `tiergate_catalog_version`, `tiergate_change`) so webhook handlers can
ignore objects tiergate did not create and reconcile can find what a change did.

- start: a Checkout Session (REDIRECT); `checkout_result` reads what the customer paid.
- change: preview the invoice at a fixed proration_date, refuse a different amount than quoted,
  then update with always_invoice + pending_if_incomplete: a declined card leaves the old items.
- schedule: Stripe renews by itself, so a change at the period end is written into the
  subscription now. Same interval: the items are swapped with proration "none" (the next
  renewal bills them) and the entitled items are kept in metadata (`tiergate_entitled`) until
  `tiergate_switch_at`. Another interval (year -> month) cannot be swapped without resetting
  the billing cycle: the subscription is set to cancel at the period end, the next items go to
  metadata (`tiergate_next`). When Stripe ends it, the webhook of its end (or reconcile, or
  `renew`) starts the next subscription with `continue_switch`, once.
- renew: Stripe renews on its own; `renew` reads the renewed subscription and its invoice.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import stripe
from stripe.params import (
    CustomerCreateParams,
    InvoiceCreatePreviewParams,
    SubscriptionCreateParams,
    SubscriptionUpdateParams,
    SubscriptionUpdateParamsAddInvoiceItem,
    SubscriptionUpdateParamsItem,
)
from stripe.params.checkout import SessionCreateParams, SessionCreateParamsSubscriptionData

from billing.provider import (
    ChangeRequest,
    Charge,
    Customer,
    Discount,
    ItemKind,
    Line,
    OneTimeRequest,
    Outcome,
    PaymentDeclined,
    Price,
    RenewRequest,
    Result,
    ScheduleRequest,
    StartRequest,
    SubscriptionState,
    TrialRequest,
    quote_mismatch,
)
from billing.quotes import one_time_quote, start_quote
from billing.stripe_errors import StripeRejected, decline_message, stripe_errors
from billing.stripe_sync import ensure_price, product_id
from tiergate.exceptions import (
    Conflict,
    InvalidRequest,
    PaymentFailed,
    ProviderUnavailable,
    TiergateError,
)

API_VERSION = "2026-10-28.endive"  # the Stripe API version every request is made with
# Every subscription tiergate creates (Checkout, the interval switch) asks for Stripe's classic
# billing mode, the arithmetic its quotes follow (billing/proration.py): since 2025-09-30 a new
# subscription is flexible unless told so, and flexible mode credits the discounted amount and
# leaves one-time items added with an update pending until the next invoice.
RECENT = 100  # reconcile looks for a change among this many of the newest invoices/subscriptions
UNSET = ""  # Stripe deletes a metadata key set to ""
LIVE_STATUSES = ("active", "trialing", "past_due")  # a subscription that still grants its tier

log = logging.getLogger(__name__)


class StripeBilling:
    """The billing provider backed by Stripe (Checkout, subscriptions, invoices, coupons)."""

    name = "stripe"
    remote = True  # the processor keeps state outside our database
    # A coupon is limited to a product, which the current and the new price of a plan share:
    # on a switch within the plan it would discount the credit for the unused time too.
    same_plan_discounts = False

    def __init__(
        self,
        client: stripe.StripeClient,
        *,
        webhook_secret: str | None,
        base_url: str,
        catalog_version: Callable[[], int | None] = lambda: None,
    ) -> None:
        self.client = client
        self.webhook_secret = webhook_secret
        self.base_url = base_url.rstrip("/")
        self._catalog_version = catalog_version
        self._price_ids: dict[str, str] = {}  # lookup key -> price_...
        self._prices: dict[str, stripe.Price] = {}  # price_... -> Price (immutable in Stripe)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> StripeBilling:
        """StripeBilling from the app settings (TIERGATE_STRIPE_* and TIERGATE_BASE_URL)."""
        base = config.get("STRIPE_API_BASE")
        client = stripe.StripeClient(
            str(config["STRIPE_SECRET_KEY"]),
            stripe_version=API_VERSION,
            base_addresses={"api": str(base)} if base else None,
            max_network_retries=int(config.get("STRIPE_MAX_NETWORK_RETRIES") or 2),
            http_client=stripe.new_default_http_client(
                timeout=float(config.get("STRIPE_TIMEOUT_SECONDS") or 30)
            ),
        )
        return cls(
            client,
            webhook_secret=config.get("STRIPE_WEBHOOK_SECRET"),
            base_url=str(config.get("BASE_URL") or ""),
            catalog_version=_newest_catalog_version,
        )

    # ---- the provider interface ---------------------------------------------------------------

    def start_subscription(self, request: StartRequest) -> Result:
        """A Checkout Session for the first subscription: REDIRECT to Stripe's payment page."""
        key = request.idempotency_key
        quote = start_quote(
            request.plan,
            request.addons,
            request.one_time,
            request.start,
            request.trial_days,
            request.discount,
            request.customer.balance,
        )
        _check_quote(quote.amount_due, request.expected_amount_due, request.plan.currency)
        # Checkout shows the total; Stripe takes the customer's balance off the invoice it makes.
        total = max(0, quote.total)
        customer_id = self._customer_id(request.customer)
        meta = self._metadata(key, request.customer.account_id, request.plan)
        prices = (request.plan, *request.addons, *request.one_time)
        subscription_data: SessionCreateParamsSubscriptionData = {
            "metadata": meta,
            "billing_mode": {"type": "classic"},
        }
        if request.trial_days > 0:
            subscription_data["trial_period_days"] = request.trial_days
        params: SessionCreateParams = {
            "mode": "subscription",
            "customer": customer_id,
            "client_reference_id": request.customer.account_id,
            "line_items": [{"price": self._price_id(p), "quantity": p.quantity} for p in prices],
            "success_url": _with_session_id(request.success_url),
            "cancel_url": request.cancel_url,
            "metadata": meta,
            "subscription_data": subscription_data,
        }
        if request.discount is not None:
            params["discounts"] = [{"coupon": self._coupon_id(request.discount, request.plan)}]
        else:
            params["allow_promotion_codes"] = True
        with stripe_errors(f"starting Checkout for {request.customer.account_id}"):
            session = self.client.v1.checkout.sessions.create(params, _key(key, "checkout"))
        if session.amount_total != total:
            with stripe_errors(f"expiring Checkout Session {session.id}"):
                self.client.v1.checkout.sessions.expire(session.id, None, _key(key, "expire"))
            _check_quote(session.amount_total or 0, total, session.currency)
        return Result(
            Outcome.REDIRECT,
            redirect_url=session.url,
            customer_external_id=customer_id,
            external_id=session.id,
        )

    def checkout_result(self, session_id: str) -> Result:
        """What a Checkout Session came to: DONE once paid, REDIRECT while still open."""
        with stripe_errors(f"reading Checkout Session {session_id}"):
            session = self.client.v1.checkout.sessions.retrieve(
                session_id, {"expand": ["subscription", "subscription.latest_invoice"]}
            )
        if _meta(session).get("tiergate") != "1":
            raise InvalidRequest(f"Checkout Session {session_id} was not created by tiergate.")
        customer = _id_of(session.customer)
        if session.status == "open":
            return Result(
                Outcome.REDIRECT,
                redirect_url=session.url,
                customer_external_id=customer,
                external_id=session.id,
            )
        if session.status != "complete" or not isinstance(
            session.subscription, stripe.Subscription
        ):
            raise PaymentFailed(
                "The checkout expired before it was paid: nothing was charged.",
                code="checkout_expired",
            )
        sub = session.subscription
        return Result(
            Outcome.DONE,
            subscription=self._state(sub),
            charge=self._charge(sub.latest_invoice),
            customer_external_id=customer,
            external_id=session.id,
        )

    def change_subscription(self, request: ChangeRequest) -> Result:
        """Preview at the quote's proration_date, refuse another amount, then change and charge."""
        key = request.idempotency_key
        sub_id = _subscription_id(request.current)
        coupon = None
        if request.discount is not None and request.plan.item_id == request.current.plan.item_id:
            # The coupon is limited to the plan's product, which the current price shares:
            # Stripe would discount the credit for the unused time too, unlike the quote.
            raise Conflict(
                f"Promotion {request.discount.promotion_id} cannot be applied to a change "
                "within the same plan billed through Stripe: nothing was changed."
            )
        sub = self._subscription(sub_id)
        retry = _meta(sub).get("tiergate_change") == key
        if retry and self._change_result(sub, key) is not None:
            return self._finish_change(request, sub_id)  # Stripe already has this change
        if sub.pending_update is not None:
            # A declined change waits in Stripe (its invoice voided) until it expires; another
            # update meanwhile could be charged without being applied, so wait for the expiry.
            until = _time(sub.pending_update.expires_at)
            raise Conflict(
                "The last payment for a change to this plan was declined and Stripe holds that "
                f"change until {until:%Y-%m-%d %H:%M} UTC: nothing was charged. Try again then."
            )
        # The tag before unscheduling names this attempt: a retry after a restore unschedules
        # again instead of replaying the first answer, and restores under a key of its own.
        attempt = _digest(_meta(sub).get("tiergate_change"))
        unscheduled = self._swap_pending(sub)
        if unscheduled:
            prices = (request.current.plan, *request.current.addons)
            sub = self._set_items(sub, prices, key, attempt)
        written = False  # until the tag below, nothing was written to Stripe for this change
        try:
            items, deleting = self._items_param(sub, request.plan, request.addons)
            if not items and not request.one_time:
                if retry:  # applied before, with nothing to invoice
                    return self._finish_change(request, sub_id)
                raise InvalidRequest("The change has nothing to change: same plan and add-ons.")
            if request.discount is not None:  # after the items: their prices made the product
                coupon = self._coupon_id(request.discount, request.plan)
            # A change of plan (tier or interval) ends the promotion running on the old one, as
            # ManualBilling does: the quote credits the old plan at its price and charges the
            # new one with its own promotion only. An add-on bought keeps it.
            moved = _plan_key(request.plan) != _plan_key(request.current.plan)
            rewrite = coupon is not None or (moved and bool(sub.discounts))
            when = int(request.proration_date.timestamp())
            trial_end = _running_trial_end(request.current, request.proration_date)
            preview: InvoiceCreatePreviewParams = {
                "subscription": sub_id,
                "subscription_details": {
                    "items": list(items),  # the same item edits as the real update below
                    "proration_date": when,
                    "proration_behavior": "always_invoice",
                },
            }
            if trial_end is not None:
                preview["subscription_details"]["trial_end"] = trial_end
            if rewrite:
                # The discounts as the subscription will carry them: the new coupon discounts
                # the new plan's lines, and none of the old plan's discounts is left.
                preview["discounts"] = [{"coupon": coupon}] if coupon is not None else ""
            with stripe_errors(f"previewing the change of {sub_id}"):
                invoice = self.client.v1.invoices.create_preview(preview)
            end = sub["items"].data[0].current_period_end
            due = _due_now(invoice, end, sum(p.amount for p in request.one_time))
            _check_quote(due, request.expected_amount_due, request.plan.currency)
            written = True
            # The items this change makes: a change during a trial invoices nothing, so they
            # are what shows (find_change) that Stripe made it when its answer was lost.
            target = {"tiergate_change": key, "tiergate_target": self._refs(_items_after(request))}
            self._update(sub_id, {"metadata": target}, key, "tag")
            update: SubscriptionUpdateParams = {
                "items": items,
                "proration_date": when,
                "proration_behavior": "always_invoice",
                # Deleting an item, or changing the discounts, cannot wait in a pending update:
                # then the whole call fails when the payment does, and nothing changes (no
                # discount to put back after a decline, a crash or a retry).
                "payment_behavior": (
                    "error_if_incomplete" if deleting or rewrite else "pending_if_incomplete"
                ),
                # The invoice's payments (an includable field) name the PaymentIntent that
                # holds the reason of a decline (`_declined`).
                "expand": ["latest_invoice.payments"],
            }
            if rewrite:
                update["discounts"] = [{"coupon": coupon}] if coupon is not None else ""
            if trial_end is not None:
                update["trial_end"] = trial_end
            if request.one_time:
                update["add_invoice_items"] = [self._invoice_item(p) for p in request.one_time]
            changed = self._update(sub_id, update, key, "modify")
            if changed.pending_update is not None:
                latest = changed.latest_invoice
                declined = self._declined(latest, sub_id)
                if isinstance(latest, stripe.Invoice) and latest.status == "open" and latest.id:
                    # So no later retry of the card applies the change the customer was told
                    # failed.
                    with stripe_errors(f"voiding the declined invoice {latest.id}"):
                        self.client.v1.invoices.void_invoice(latest.id, None, _key(key, "void"))
                raise declined
        except Exception as exc:
            # A change that did not happen keeps the period-end change scheduled before it.
            # One whose write failed on the way (Stripe unreachable after the tag) may have been
            # applied: it stays pending under its key, and the retry or reconcile settles it.
            unknown = isinstance(exc, ProviderUnavailable) and written
            if unscheduled and not unknown:
                self._restore_schedule(request, attempt)
            raise
        return self._finish_change(request, sub_id)

    def schedule(self, request: ScheduleRequest) -> SubscriptionState:
        """Write the period-end change into the subscription (see the module docstring)."""
        key = request.idempotency_key
        current = request.current
        sub_id = _subscription_id(current)
        sub = self._subscription(sub_id)
        entitled = (current.plan, *current.addons)
        plan = request.next_plan or current.plan
        addons = request.next_addons if request.next_addons is not None else current.addons
        target = (plan, *addons)
        switch_at = str(int(current.period_end.timestamp()))
        meta: dict[str, str] = {
            **self._metadata(key, request.customer.account_id, current.plan),
            "tiergate_change_kind": "schedule",
            "tiergate_entitled": UNSET,
            "tiergate_next": UNSET,
            "tiergate_cancel": UNSET,
            "tiergate_switch_at": UNSET,
        }
        cancel = request.cancel_at_period_end
        if plan.interval == current.plan.interval:
            items, _ = self._items_param(sub, plan, addons)
            if _keys(target) != _keys(entitled):
                meta["tiergate_entitled"] = self._refs(entitled)
                meta["tiergate_switch_at"] = switch_at
        else:
            items, _ = self._items_param(sub, current.plan, current.addons)
            meta["tiergate_next"] = self._refs(target)
            meta["tiergate_switch_at"] = switch_at
            meta["tiergate_cancel"] = "1" if cancel else UNSET
            cancel = True  # Stripe ends the yearly subscription; continue_switch starts the next
        params: SubscriptionUpdateParams = {
            "proration_behavior": "none",
            "cancel_at_period_end": cancel,
            "metadata": meta,
        }
        if items:
            params["items"] = items
        return self._state(self._update(sub_id, params, key, "schedule"))

    def extend_trial(self, request: TrialRequest) -> SubscriptionState:
        """Move the subscription's trial_end: Stripe charges the first period then."""
        current = request.current
        params: SubscriptionUpdateParams = {
            "trial_end": int(request.trial_end.timestamp()),
            "proration_behavior": "none",
            "metadata": {
                **self._metadata(request.idempotency_key, request.customer.account_id, None),
                "tiergate_change_kind": "trial",
            },
        }
        sub_id = _subscription_id(current)
        if self._subscription(sub_id).status != "trialing":  # converted, its webhook not in yet
            raise Conflict(f"Stripe has already ended the trial of {sub_id}: nothing was changed.")
        return self._state(self._update(sub_id, params, request.idempotency_key, "trial"))

    def renew(self, request: RenewRequest) -> Result:
        """Read the period Stripe started at the period end (or start the switched one)."""
        current = request.current
        sub_id = _subscription_id(current)
        sub = self._subscription(sub_id)
        if sub.status in ("canceled", "incomplete_expired"):
            if _switches(sub):
                return self._resubscribe(sub, request.idempotency_key)
            return Result(Outcome.DONE, subscription=replace(self._state(sub), status="canceled"))
        state = self._state(sub)
        if state.period_start < current.period_end:
            raise ProviderUnavailable(
                f"Stripe has not renewed {sub_id} yet (its period ends "
                f"{current.period_end:%Y-%m-%d %H:%M} UTC): try again in a few minutes."
            )
        invoice = sub.latest_invoice
        charge = None
        if isinstance(invoice, stripe.Invoice) and invoice.billing_reason == "subscription_cycle":
            charge = self._charge(invoice)
        return Result(Outcome.DONE, subscription=state, charge=charge)

    def continue_switch(self, ended_external_id: str, change_key: str) -> Result | None:
        """The subscription that continues one Stripe ended at a scheduled interval switch
        (started now, at most once), or None when it ended otherwise (canceled, ended early)."""
        with stripe_errors(f"reading subscription {ended_external_id}"):
            ended = self.client.v1.subscriptions.retrieve(ended_external_id)
        if ended.status != "canceled" or not _switches(ended):
            return None
        return self._resubscribe(ended, change_key)

    def charge_one_time(self, request: OneTimeRequest) -> Result:
        """A one-time item on its own invoice, finalized and paid at once."""
        item, key = request.item, request.idempotency_key
        quoted = one_time_quote(item, request.customer.balance).amount_due  # balance taken off
        _check_quote(quoted, request.expected_amount_due, item.currency)
        customer_id = self._customer_id(request.customer)
        existing = self._invoice_for(key, customer=customer_id)
        if existing is not None and existing.status == "paid":
            return Result(
                Outcome.DONE, charge=self._charge(existing), customer_external_id=customer_id
            )
        meta = self._metadata(key, request.customer.account_id, None)
        doing = f"charging {item.name} to {request.customer.account_id}"
        with stripe_errors(doing):
            invoice = existing or self.client.v1.invoices.create(
                {
                    "customer": customer_id,
                    "collection_method": "charge_automatically",
                    "pending_invoice_items_behavior": "exclude",
                    "currency": item.currency,
                    "metadata": meta,
                },
                _key(key, "invoice"),
            )
            invoice_id = _required(invoice.id)
            if invoice.status == "draft":
                self.client.v1.invoice_items.create(
                    {
                        "customer": customer_id,
                        "invoice": invoice_id,
                        "pricing": {"price": self._price_id(item)},
                        "quantity": item.quantity,
                        "metadata": meta,
                    },
                    _key(key, "item"),
                )
                invoice = self.client.v1.invoices.finalize_invoice(
                    invoice_id, {"auto_advance": False}, _key(key, "finalize")
                )
        if invoice.status == "open" and invoice.amount_due != request.expected_amount_due:
            # Stripe's balance moved since the quote (a credit given or used meanwhile): the
            # finalized invoice would charge another amount. Void it: nothing is charged.
            with stripe_errors(f"voiding invoice {invoice_id}"):
                self.client.v1.invoices.void_invoice(invoice_id, None, _key(key, "void"))
            _check_quote(invoice.amount_due, request.expected_amount_due, item.currency)
        if invoice.status == "open":
            method = self._payment_method(customer_id)
            try:
                with stripe_errors(doing):
                    invoice = self.client.v1.invoices.pay(
                        invoice_id, {"payment_method": method} if method else {}, _key(key, "pay")
                    )
            except PaymentDeclined:
                with stripe_errors(f"voiding the declined invoice {invoice_id}"):
                    self.client.v1.invoices.void_invoice(invoice_id, None, _key(key, "void"))
                raise
        return Result(Outcome.DONE, charge=self._charge(invoice), customer_external_id=customer_id)

    def find_change(self, idempotency_key: str) -> Result | None:
        """What Stripe did for this key: a paid invoice tagged with it, or a tagged schedule."""
        invoice = self._invoice_for(idempotency_key)
        if invoice is not None:
            if invoice.status != "paid":
                return None  # declined (voided) or never paid: nothing was applied
            sub_id = _invoice_subscription(invoice)
            state = self._state(self._subscription(sub_id)) if sub_id else None
            return Result(
                Outcome.DONE,
                subscription=state,
                charge=self._charge(invoice),
                customer_external_id=_id_of(invoice.customer),
            )
        with stripe_errors("looking for a scheduled change"):
            subs = self.client.v1.subscriptions.list({"status": "all", "limit": RECENT})
        for sub in subs.data:
            meta = _meta(sub)
            if meta.get("tiergate_change") == idempotency_key and (
                meta.get("tiergate_change_kind") in ("schedule", "trial")
                or (sub.status == "trialing" and self._made(sub, meta.get("tiergate_target")))
            ):
                state = self._state(self._subscription(sub.id))
                return Result(
                    Outcome.DONE, subscription=state, customer_external_id=_id_of(sub.customer)
                )
        return None

    def _made(self, sub: stripe.Subscription, target: str | None) -> bool:
        """Whether the subscription has exactly the items a change tagged it with (a change
        during a trial, which charges nothing, was made)."""
        if not target:
            return False
        wanted = sorted((p.lookup_key, p.quantity) for p in self._from_refs(target))
        items = self._subscription(sub.id)["items"].data
        ids = [_id_of(i.price) for i in items]
        if None in ids:
            return False
        have = sorted(
            (self._price_by_id(str(pid)).lookup_key, i.quantity or 1)
            for pid, i in zip(ids, items, strict=True)
        )
        return wanted == have

    def payment_url(self, current: SubscriptionState) -> str | None:
        """The hosted page of the subscription's open invoice (Stripe's own payment page, where
        the customer can pay with another card), or None when nothing is open."""
        if not current.external_id:
            return None
        latest = self._subscription(current.external_id).latest_invoice
        if isinstance(latest, stripe.Invoice) and latest.status == "open":
            return latest.hosted_invoice_url
        return None

    def close_redirect(self, external_id: str) -> bool:
        """Expire a Checkout Session so it can no longer be paid. False: it was paid already
        (the caller settles it)."""
        doing = f"closing Checkout Session {external_id}"
        with stripe_errors(doing):
            session = self.client.v1.checkout.sessions.retrieve(external_id)
            if session.status == "open":
                try:
                    session = self.client.v1.checkout.sessions.expire(external_id)
                except stripe.InvalidRequestError:  # completed (or expired) meanwhile
                    session = self.client.v1.checkout.sessions.retrieve(external_id)
        return session.status != "complete"

    def fetch_subscription(self, external_id: str) -> SubscriptionState | None:
        """Stripe's current state of a subscription tiergate created (None: missing/not ours)."""
        sub = _unless_missing(
            f"reading subscription {external_id}",
            lambda: self.client.v1.subscriptions.retrieve(external_id),
        )
        return self._state(sub) if sub is not None and _meta(sub).get("tiergate") == "1" else None

    def subscriptions_of(
        self, customer_external_id: str, account_id: str
    ) -> list[SubscriptionState]:
        """The live subscriptions tiergate created for this account's customer, newest first."""
        with stripe_errors(f"listing the subscriptions of customer {customer_external_id}"):
            subs = self.client.v1.subscriptions.list(
                {"customer": customer_external_id, "status": "all", "limit": RECENT}
            )
        return [
            self._state(sub)
            for sub in sorted(subs.data, key=lambda sub: sub.created, reverse=True)
            if _meta(sub).get("tiergate") == "1"
            and _meta(sub).get("tiergate_account") == account_id
            and sub.status in LIVE_STATUSES
        ]

    def customer_balance(self, customer_external_id: str) -> tuple[int, str | None] | None:
        """The customer's invoice balance (negative: a credit) and its currency."""
        customer = _unless_missing(
            f"reading customer {customer_external_id}",
            lambda: self.client.v1.customers.retrieve(customer_external_id),
        )
        if customer is None or getattr(customer, "deleted", False):
            return None
        return int(customer.balance or 0), customer.currency

    def recent_invoices(
        self, subscription_external_id: str, since: datetime, limit: int
    ) -> list[dict[str, Any]]:
        """The subscription's invoices created at or after `since` (at most `limit`, the newest),
        oldest first, as the invoice webhooks carry them (reconcile records the lost ones)."""
        with stripe_errors(f"listing the invoices of {subscription_external_id}"):
            invoices = self.client.v1.invoices.list(
                {
                    "subscription": subscription_external_id,
                    "created": {"gte": int(since.timestamp())},
                    "limit": limit,
                }
            )
        return [invoice.to_dict() for invoice in reversed(invoices.data)]  # listed newest first

    # ---- changes ------------------------------------------------------------------------------

    def _finish_change(self, request: ChangeRequest, sub_id: str) -> Result:
        """After a paid change: tag the new terms and clear a superseded schedule."""
        key = request.idempotency_key
        meta = {
            **self._metadata(key, request.customer.account_id, request.plan),
            "tiergate_change_kind": "change",
            "tiergate_entitled": UNSET,
            "tiergate_next": UNSET,
            "tiergate_cancel": UNSET,
            "tiergate_switch_at": UNSET,
        }
        params: SubscriptionUpdateParams = {
            "metadata": meta,
            "cancel_at_period_end": False,  # an upgrade supersedes a scheduled cancellation
            "expand": ["latest_invoice"],
        }
        sub = self._update(sub_id, params, key, "meta")
        invoice = self._change_result(sub, key)
        return Result(
            Outcome.DONE,
            subscription=self._state(sub),
            charge=invoice,
            customer_external_id=_id_of(sub.customer),
        )

    def _change_result(self, sub: stripe.Subscription, key: str) -> Charge | None:
        invoice = self._invoice_for(key, subscription=sub.id)
        if invoice is None:
            return None
        if invoice.status != "paid":
            raise self._declined(invoice, sub.id)
        return self._charge(invoice)

    def _declined(
        self, invoice: str | stripe.Invoice | None, sub_id: str | None
    ) -> PaymentDeclined:
        """The decline of a change whose invoice Stripe could not collect (a pending update):
        the customer's message by the reason of the failed payment (`decline_message`), only
        that the card was declined when no reason is found. The codes stay in the details."""
        error = self._payment_error(invoice)
        # Stripe leaves out the keys it has no value for (no decline_code for an expired card)
        code = getattr(error, "code", None)
        decline_code = getattr(error, "decline_code", None)
        log.info(
            "card declined on the change of %s: code %s, decline_code %s",
            sub_id,
            code,
            decline_code,
        )
        return PaymentDeclined(
            decline_message(code, decline_code),
            details={"subscription": sub_id, "code": code, "decline_code": decline_code},
        )

    def _payment_error(
        self, invoice: str | stripe.Invoice | None
    ) -> stripe.PaymentIntent.LastPaymentError | None:
        """Why the invoice's payment failed: its PaymentIntent's `last_payment_error`. Since
        API version 2025-03-31.basil the invoice links to it through its `payments` (an
        includable list: `payments.data[].payment.payment_intent`), not `payment_intent`.
        At most one more request: the invoice with its payments and their PaymentIntents when
        they were not expanded, or the PaymentIntent when only the payments were. None when
        there is none or Stripe cannot tell now: the decline is reported all the same."""
        if invoice is None:
            return None
        invoice_id = invoice if isinstance(invoice, str) else invoice.id
        try:
            payments = None
            if isinstance(invoice, stripe.Invoice) and "payments" in invoice:  # expanded
                payments = invoice.payments
            if payments is None and invoice_id:
                with stripe_errors(f"reading the payments of invoice {invoice_id}"):
                    payments = self.client.v1.invoices.retrieve(
                        invoice_id, {"expand": ["payments.data.payment.payment_intent"]}
                    ).payments
            if not payments or not payments.data:
                return None
            # The default payment is the one Stripe collects the invoice with.
            payment = next((p for p in payments.data if p.is_default), payments.data[0])
            intent = getattr(payment.payment, "payment_intent", None)  # by its type
            if isinstance(intent, str):
                with stripe_errors(f"reading PaymentIntent {intent}"):
                    intent = self.client.v1.payment_intents.retrieve(intent)
        except TiergateError as exc:
            log.warning("no decline reason for invoice %s: %s", invoice_id, exc)
            return None
        return intent.last_payment_error if intent is not None else None

    def _restore_schedule(self, request: ChangeRequest, attempt: str) -> None:
        """Put back the period-end change a failed change unscheduled (best effort: the
        caller raises its own error, which the customer must see)."""
        current = request.current
        restore = ScheduleRequest(
            f"{request.idempotency_key}:restore:{attempt}",
            request.customer,
            current,
            current.next_plan,
            current.next_addons,
            current.cancel_at_period_end,
        )
        try:
            self.schedule(restore)
        except TiergateError as exc:
            log.error("could not restore the schedule of %s: %s", current.external_id, exc)

    def _set_items(
        self, sub: stripe.Subscription, prices: tuple[Price, ...], key: str, attempt: str
    ) -> stripe.Subscription:
        """Put back the entitled items before a change (no proration: they were paid for)."""
        items, _ = self._items_param(sub, prices[0], prices[1:])
        params: SubscriptionUpdateParams = {
            "items": items,
            "proration_behavior": "none",
            "metadata": {"tiergate_entitled": UNSET, "tiergate_switch_at": UNSET},
        }
        return self._update(_required(sub.id), params, key, f"unschedule:{attempt}")

    def _resubscribe(self, ended: stripe.Subscription, key: str) -> Result:
        """The period-end interval switch: the next subscription, charged now, same card.

        Once per ended subscription, whoever asks (the webhook of its end, reconcile, `renew`):
        the next one is tagged with the ended one's id (`tiergate_follows`) and found by it, and
        its creation is keyed by that id, so two callers at once cannot start two."""
        meta = _meta(ended)
        ended_id = _required(ended.id)
        customer = _required(_id_of(ended.customer))
        found = self._follower(customer, ended_id)
        if found is not None:
            return Result(
                Outcome.DONE,
                subscription=self._state(found),
                charge=self._first_charge(found),
                customer_external_id=customer,
            )
        prices = self._from_refs(meta["tiergate_next"])
        tags = self._metadata(key, meta.get("tiergate_account", ""), prices[0])
        params: SubscriptionCreateParams = {
            "customer": customer,
            "items": [{"price": self._price_id(p), "quantity": p.quantity} for p in prices],
            "metadata": {**tags, "tiergate_change_kind": "change", "tiergate_follows": ended_id},
            "billing_mode": {"type": "classic"},
            "payment_behavior": "error_if_incomplete",
            "off_session": True,
            "expand": ["latest_invoice"],
        }
        method = _id_of(ended.default_payment_method)
        if method:
            params["default_payment_method"] = method
        with stripe_errors(f"starting the next subscription of {customer}"):
            sub = self.client.v1.subscriptions.create(
                params, {"idempotency_key": f"tiergate-next:{ended_id}"}
            )
        return Result(
            Outcome.DONE,
            subscription=self._state(sub),
            charge=self._charge(sub.latest_invoice),
            customer_external_id=customer,
        )

    def _follower(self, customer: str, ended_id: str) -> stripe.Subscription | None:
        """The subscription started to continue `ended_id`, if there is one."""
        with stripe_errors(f"listing the subscriptions of customer {customer}"):
            subs = self.client.v1.subscriptions.list(
                {"customer": customer, "status": "all", "limit": RECENT}
            )
        return next((s for s in subs.data if _meta(s).get("tiergate_follows") == ended_id), None)

    def _first_charge(self, sub: stripe.Subscription) -> Charge | None:
        """The invoice that started `sub` (its later renewals are not the switch's charge)."""
        with stripe_errors(f"listing the invoices of {sub.id}"):
            invoices = self.client.v1.invoices.list({"subscription": sub.id, "limit": RECENT})
        first = [i for i in invoices.data if i.billing_reason == "subscription_create"]
        return self._charge(first[-1]) if first else None

    def _items_param(
        self, sub: stripe.Subscription, plan: Price, addons: Iterable[Price]
    ) -> tuple[list[SubscriptionUpdateParamsItem], bool]:
        """Item edits turning the subscription's items into plan + addons (and any deletions)."""
        wanted = {(ItemKind.TIER, ""): plan} | {(p.kind, p.item_id): p for p in addons}
        edits: list[SubscriptionUpdateParamsItem] = []
        deleting = False
        for item in sub["items"].data:
            have = self._price_of(item.price, item.quantity or 1)
            slot = (ItemKind.TIER, "") if have.kind is ItemKind.TIER else (have.kind, have.item_id)
            want = wanted.pop(slot, None)
            if want is None:
                edits.append({"id": item.id, "deleted": True})
                deleting = True
            elif want.lookup_key != have.lookup_key or want.quantity != have.quantity:
                edits.append(
                    {"id": item.id, "price": self._price_id(want), "quantity": want.quantity}
                )
        for price in wanted.values():
            edits.append({"price": self._price_id(price), "quantity": price.quantity})
        return edits, deleting

    def _invoice_item(self, price: Price) -> SubscriptionUpdateParamsAddInvoiceItem:
        return {"price": self._price_id(price), "quantity": price.quantity}

    # ---- Stripe objects -> provider terms -----------------------------------------------------

    def _state(self, sub: stripe.Subscription) -> SubscriptionState:
        """The subscription in provider terms, reading a pending period-end change from metadata."""
        items = list(sub["items"].data)
        prices = tuple(self._price_of(i.price, i.quantity or 1) for i in items)
        plan = next((p for p in prices if p.kind is ItemKind.TIER), None)
        if plan is None:
            raise StripeRejected(f"Stripe subscription {sub.id} has no tiergate tier price.")
        addons = tuple(p for p in prices if p.kind is ItemKind.ADDON)
        start = _time(items[0].current_period_start)
        end = _time(items[0].current_period_end)
        meta = _meta(sub)
        pending = int(meta.get("tiergate_switch_at") or 0) > start.timestamp()
        next_plan: Price | None = None
        next_addons: tuple[Price, ...] | None = None
        cancel = sub.cancel_at_period_end
        if pending and meta.get("tiergate_entitled"):
            entitled = self._from_refs(meta["tiergate_entitled"])
            next_plan, next_addons = plan, addons
            plan = entitled[0]
            addons = entitled[1:]
        elif pending and meta.get("tiergate_next"):
            upcoming = self._from_refs(meta["tiergate_next"])
            next_plan, next_addons = upcoming[0], upcoming[1:]
            cancel = meta.get("tiergate_cancel") == "1"
        if next_plan == plan:
            next_plan = None
        if next_addons == addons:
            next_addons = None
        return SubscriptionState(
            plan=plan,
            addons=addons,
            status=str(sub.status),
            period_start=start,
            period_end=end,
            trial_end=_time(sub.trial_end) if sub.trial_end else None,
            cancel_at_period_end=cancel,
            next_plan=next_plan,
            next_addons=next_addons,
            external_id=sub.id,
            item_ids={
                price.item_id: item.id
                for price, item in zip(prices, items, strict=True)
                if price.kind is ItemKind.ADDON
            },
        )

    def _charge(self, invoice: str | stripe.Invoice | None) -> Charge | None:
        if invoice is None:
            return None
        if isinstance(invoice, str):
            with stripe_errors(f"reading invoice {invoice}"):
                invoice = self.client.v1.invoices.retrieve(invoice)
        lines = []
        for line in invoice.lines.auto_paging_iter():
            details = line.pricing.price_details if line.pricing else None
            price_id = _id_of(details.price) if details else None
            parent = line.parent
            source = parent and (parent.subscription_item_details or parent.invoice_item_details)
            proration = bool(source and source.proration)
            item_id = self._item_of(price_id)
            lines.append(Line(line.description or "", line.amount, item_id, proration))
        return Charge(
            currency=invoice.currency,
            amount_due=invoice.amount_due,
            amount_paid=invoice.amount_paid,
            status=str(invoice.status),
            lines=tuple(lines),
            external_id=invoice.id,
            ending_balance=invoice.ending_balance if invoice.status != "draft" else None,
        )

    def _price_of(self, price: stripe.Price, quantity: int) -> Price:
        meta = _meta(price)
        if meta.get("tiergate") != "1":
            raise StripeRejected(f"Stripe price {price.id} was not created by tiergate.")
        self._prices[price.id] = price
        return Price(
            ItemKind(meta["tiergate_kind"]),
            meta["tiergate_item"],
            price.nickname or meta["tiergate_item"],
            price.recurring.interval if price.recurring else None,
            price.currency,
            price.unit_amount or 0,
            quantity,
        )

    def _price_by_id(self, price_id: str, quantity: int = 1) -> Price:
        price = self._prices.get(price_id)
        if price is None:
            with stripe_errors(f"reading price {price_id}"):
                price = self.client.v1.prices.retrieve(price_id)
        return self._price_of(price, quantity)

    def _item_of(self, price_id: str | None) -> str | None:
        """The catalog item a line's price is for (None for prices tiergate did not create)."""
        if not price_id:
            return None
        try:
            return self._price_by_id(price_id).item_id
        except StripeRejected:
            return None

    def _refs(self, prices: Iterable[Price]) -> str:
        """Prices as metadata: "price_...*quantity,..." (Stripe metadata values are strings)."""
        return ",".join(f"{self._price_id(p)}*{p.quantity}" for p in prices)

    def _from_refs(self, refs: str) -> tuple[Price, ...]:
        out = []
        for ref in refs.split(","):
            price_id, _, quantity = ref.partition("*")
            out.append(self._price_by_id(price_id, int(quantity or 1)))
        return tuple(out)

    # ---- Stripe objects we create on demand ---------------------------------------------------

    def _price_id(self, price: Price) -> str:
        found = self._price_ids.get(price.lookup_key)
        if found is None:
            created = ensure_price(self.client, price, self._catalog_version())
            found = self._price_ids[price.lookup_key] = created.id
            self._prices[created.id] = created
        return found

    def _customer_id(self, customer: Customer) -> str:
        if customer.external_id:
            return customer.external_id
        params: CustomerCreateParams = {
            "metadata": {"tiergate": "1", "tiergate_account": customer.account_id}
        }
        if customer.email:
            params["email"] = customer.email
        if customer.name:
            params["name"] = customer.name
        # Keyed by account (and details): two changes in a row do not make two customers.
        digest = _digest(customer.account_id, customer.email, customer.name)
        with stripe_errors(f"creating the Stripe customer of {customer.account_id}"):
            created = self.client.v1.customers.create(
                params, {"idempotency_key": f"tiergate-customer:{customer.account_id}:{digest}"}
            )
        return _required(created.id)

    def _coupon_id(self, discount: Discount, plan: Price) -> str:
        """A coupon with the promotion's terms, limited to the plan's product; made once."""
        terms = (discount.percent_off, discount.amount_off, discount.duration)
        coupon_id = (
            f"tg_{discount.promotion_id}_{plan.currency}_{plan.item_id}_"
            f"{_digest(*terms, discount.duration_in_months)}"
        )
        with stripe_errors(f"setting up the coupon for {discount.promotion_id}"):
            try:
                self.client.v1.coupons.retrieve(coupon_id)
                return coupon_id
            except stripe.InvalidRequestError as exc:
                if exc.code != "resource_missing":
                    raise
            params: stripe.params.CouponCreateParams = {
                "id": coupon_id,
                "duration": _duration(discount.duration),
                "applies_to": {"products": [product_id(plan.kind, plan.item_id)]},
                "metadata": {"tiergate": "1", "tiergate_promotion": discount.promotion_id},
            }
            if discount.percent_off is not None:
                params["percent_off"] = float(discount.percent_off)
            else:
                params["amount_off"] = discount.amount_off or 0
                params["currency"] = plan.currency
            if discount.duration == "repeating" and discount.duration_in_months:
                params["duration_in_months"] = discount.duration_in_months
            self.client.v1.coupons.create(params, {"idempotency_key": f"tiergate-{coupon_id}"})
        return coupon_id

    # ---- reading and writing ------------------------------------------------------------------

    def _subscription(self, sub_id: str) -> stripe.Subscription:
        with stripe_errors(f"reading subscription {sub_id}"):
            return self.client.v1.subscriptions.retrieve(sub_id, {"expand": ["latest_invoice"]})

    def _update(
        self, sub_id: str, params: SubscriptionUpdateParams, key: str, step: str
    ) -> stripe.Subscription:
        with stripe_errors(f"updating subscription {sub_id} ({step})"):
            return self.client.v1.subscriptions.update(sub_id, params, _key(key, step))

    def _swap_pending(self, sub: stripe.Subscription) -> bool:
        """Whether the items are the next period's, swapped in by `schedule` (see above)."""
        meta = _meta(sub)
        start = sub["items"].data[0].current_period_start
        switch_at = int(meta.get("tiergate_switch_at") or 0)
        return bool(meta.get("tiergate_entitled")) and switch_at > start

    def _invoice_for(
        self, key: str, *, customer: str | None = None, subscription: str | None = None
    ) -> stripe.Invoice | None:
        """The invoice written for change `key`, among the newest invoices (reconcile)."""
        params: stripe.params.InvoiceListParams = {"limit": RECENT}
        if customer:
            params["customer"] = customer
        if subscription:
            params["subscription"] = subscription
        with stripe_errors("looking for the invoice of a change"):
            invoices = self.client.v1.invoices.list(params).data
        for invoice in reversed(invoices):  # oldest first: a renewal also carries the key
            if _meta(invoice).get("tiergate_change") == key:
                return invoice
            if invoice.billing_reason in ("subscription_create", "subscription_update"):
                details = invoice.parent.subscription_details if invoice.parent else None
                if details and _meta(details).get("tiergate_change") == key:
                    return invoice
        return None

    def _payment_method(self, customer_id: str) -> str | None:
        """The card to charge: the customer's default, else the one Checkout saved on a sub."""
        with stripe_errors(f"reading customer {customer_id}"):
            customer = self.client.v1.customers.retrieve(customer_id)
            settings = customer.invoice_settings
            if settings and settings.default_payment_method:
                return _id_of(settings.default_payment_method)
            subs = self.client.v1.subscriptions.list({"customer": customer_id, "limit": 10})
        methods = [_id_of(s.default_payment_method) for s in subs.data]
        return next((m for m in methods if m), None)

    def _metadata(self, key: str, account_id: str, plan: Price | None) -> dict[str, str]:
        meta = {"tiergate": "1", "tiergate_account": account_id, "tiergate_change": key}
        if plan is not None:
            meta["tiergate_tier"] = plan.item_id
            meta["tiergate_interval"] = plan.interval or "once"
        version = self._catalog_version()
        if version is not None:
            meta["tiergate_catalog_version"] = str(version)
        return meta


# ---- helpers --------------------------------------------------------------------------------


T = TypeVar("T")


def _unless_missing(doing: str, fetch: Callable[[], T]) -> T | None:
    """`fetch()`, or None when Stripe has no such object (`resource_missing`)."""
    with stripe_errors(doing):
        try:
            return fetch()
        except stripe.InvalidRequestError as exc:
            if exc.code == "resource_missing":
                return None
            raise


def _key(key: str, step: str) -> stripe.RequestOptions:
    return {"idempotency_key": f"{key}:{step}"}


def _items_after(request: ChangeRequest) -> tuple[Price, ...]:
    """The subscription's recurring items once the change is made."""
    return (request.plan, *request.addons)


def _running_trial_end(current: SubscriptionState, now: datetime) -> int | None:
    """The trial's end, sent with a change made during the trial: the trial goes on and the
    new plan (or interval) is first charged when it ends, as the quote says. Stripe would
    otherwise start a new period now for a change of interval, and charge it."""
    if current.status != "trialing" or current.trial_end is None or current.trial_end <= now:
        return None
    return int(current.trial_end.timestamp())


def _due_now(preview: stripe.Invoice, period_end: int, one_time: int = 0) -> int:
    """What the change invoices now: the prorated lines (with nothing to prorate, every line
    rounding to zero, Stripe previews the next renewal instead: nothing of it is due today)
    and the one-time items added to that invoice, less the customer's balance, applied once
    as Stripe applies it when it finalizes the invoice."""
    prorated = 0
    for line in preview.lines.data:
        parent = line.parent
        source = parent and (parent.subscription_item_details or parent.invoice_item_details)
        if (source and source.proration) or line.period.start < period_end:
            prorated = preview.total
            break
    return max(0, prorated + one_time + (preview.starting_balance or 0))


def _switches(sub: stripe.Subscription) -> bool:
    """Whether the subscription ended into a scheduled interval switch: it was set to end at
    the period end only to start the next plan (`schedule`), not canceled, and did end then
    (not earlier, e.g. canceled at once in the Dashboard)."""
    meta = _meta(sub)
    switch_at = int(meta.get("tiergate_switch_at") or 0)
    return (
        meta.get("tiergate") == "1"
        and bool(meta.get("tiergate_next"))
        and meta.get("tiergate_cancel") != "1"
        and switch_at > 0
        and (sub.ended_at or 0) >= switch_at
    )


def _check_quote(amount: int, expected: int, currency: str | None) -> None:
    if amount != expected:
        raise quote_mismatch(amount, expected, currency)


def _subscription_id(state: SubscriptionState) -> str:
    if not state.external_id:
        raise Conflict(
            "This subscription is not billed through Stripe (it has no Stripe subscription id)."
        )
    return state.external_id


def _invoice_subscription(invoice: stripe.Invoice) -> str | None:
    details = invoice.parent.subscription_details if invoice.parent else None
    return _id_of(details.subscription) if details else None


def _meta(obj: Any) -> dict[str, str]:
    """An object's metadata as a dict (the SDK's StripeObject is not a dict)."""
    meta = getattr(obj, "metadata", None)
    if meta is None:
        return {}
    plain = meta.to_dict() if hasattr(meta, "to_dict") else dict(meta)
    return {str(k): str(v) for k, v in plain.items()}


def _plan_key(plan: Price) -> tuple[str, str | None]:
    return plan.item_id, plan.interval


def _id_of(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    found = getattr(value, "id", None)
    return str(found) if found else None


def _required(value: str | None) -> str:
    if not value:
        raise StripeRejected("Stripe answered without an object id.")
    return value


def _time(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _keys(prices: Iterable[Price]) -> list[tuple[str, int]]:
    return [(p.lookup_key, p.quantity) for p in prices]


def _digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:10]


def _duration(value: str) -> Any:
    if value not in ("once", "forever", "repeating"):
        raise InvalidRequest(f"Unknown promotion duration {value!r}.")
    return value


def _with_session_id(url: str) -> str:
    """Stripe fills {CHECKOUT_SESSION_ID} in, so the return page can verify the session."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}session_id={{CHECKOUT_SESSION_ID}}"


def _newest_catalog_version() -> int | None:
    """The newest published catalog version, for metadata (None outside the app)."""
    from flask import has_app_context

    from tiergate.db import get_db
    from tiers.store import latest_version

    if not has_app_context():
        return None
    with get_db().session() as session:
        return latest_version(session)
