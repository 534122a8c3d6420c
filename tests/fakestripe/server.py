"""FakeStripe: a stateful fake of the Stripe HTTP API served on 127.0.0.1 for the real SDK.

Request pipeline (in this order): optional injected delay -> request log -> injected 5xx ->
``Authorization: Bearer sk_test_...`` -> route -> params decoding -> ``Idempotency-Key``
(replay or 400 idempotency_error) -> unknown/unsupported parameters -> the handler, run on a
snapshot of the state (a Stripe error rolls everything back unless it is a committed payment
failure) -> clock-driven processes due now -> ``expand``.
"""

from __future__ import annotations

import html
import json
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from . import scheduler
from .errors import StripeError, invalid
from .forms import decode
from .params import validate
from .render import check_expand, expand, render
from .resources import Ctx, load_all, match
from .state import API_VERSION, Store
from .webhooks import Delivery, Target, deliver

load_all()

DEFAULT_NOW = int(datetime(2026, 11, 15, 12, 0, tzinfo=UTC).timestamp())


@dataclass
class RecordedRequest:
    """One API request the fake received (``fake.requests``), for assertions in tests."""

    method: str
    path: str
    params: dict[str, Any]
    api_key: str | None
    idempotency_key: str | None
    stripe_version: str | None
    status: int = 0
    request_id: str = ""


class FakeClock:
    """The fake's clock. ``now()`` returns an aware UTC datetime, so it also satisfies
    tiergate's ``Clock`` protocol and the app and the fake can share one time line."""

    def __init__(self, fake: FakeStripe) -> None:
        self._fake = fake

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._fake.now, UTC)

    def timestamp(self) -> int:
        return self._fake.now

    def set(self, at: int | datetime) -> None:
        self._fake.set_time(at)

    def advance(self, seconds: int | float | timedelta = 0, **delta: float) -> datetime:
        if isinstance(seconds, timedelta):
            seconds = seconds.total_seconds()
        self._fake.advance(int(seconds + timedelta(**delta).total_seconds()))
        return self.now()


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


def _ts(at: int | float | datetime) -> int:
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValueError("use a timezone-aware datetime")
        return int(at.timestamp())
    return int(at)


class FakeStripe:
    """A fake Stripe API on ``http://127.0.0.1:<ephemeral port>``.

    >>> with FakeStripe() as fake:
    ...     client = stripe.StripeClient("sk_test_x", base_addresses={"api": fake.api_base})
    ...     customer = client.v1.customers.create({"email": "a@example.com"})
    """

    def __init__(self, *, now: int | datetime = DEFAULT_NOW, api_key: str | None = None,
                 seed: str = "fakestripe", host: str = "127.0.0.1") -> None:
        self.store = Store(now=_ts(now), seed=seed)
        self.required_api_key = api_key
        self.host = host
        self.requests: list[RecordedRequest] = []
        self.internal_errors: list[str] = []
        self.clock = FakeClock(self)
        self._lock = threading.RLock()
        self._idempotency: dict[tuple[str, str], dict[str, Any]] = {}
        self._failures: list[tuple[int, bool | None]] = []
        self._delays: list[float] = []
        self._delivered: dict[Any, int] = {}
        self._req_n = 0
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> FakeStripe:
        if self._server is None:
            self._server = make_server(self.host, 0, self._wsgi, threaded=True,
                                       request_handler=_QuietHandler)
            self.store.public_base = self.api_base
            self._thread = threading.Thread(target=self._server.serve_forever,
                                            name="fakestripe", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = None
            self._thread = None

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeStripe is not started")
        return int(self._server.server_port)

    @property
    def api_base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client(self, api_key: str = "sk_test_fakestripe", **kwargs: Any) -> Any:
        """A ``stripe.StripeClient`` pointed at this fake (no retries unless asked)."""
        import stripe

        kwargs.setdefault("max_network_retries", 0)
        return stripe.StripeClient(api_key, base_addresses={"api": self.api_base}, **kwargs)

    def reset(self, *, now: int | datetime | None = None) -> None:
        """Forget every object, event, request and injected failure (the server keeps
        running on the same port)."""
        with self._lock:
            base = self.store.public_base
            self.store = Store(now=_ts(now) if now is not None else DEFAULT_NOW,
                               seed=self.store.seed, public_base=base)
            self.requests.clear()
            self.internal_errors.clear()
            self._idempotency.clear()
            self._failures.clear()
            self._delays.clear()
            self._delivered.clear()

    # --- clock ---------------------------------------------------------------------------------
    @property
    def now(self) -> int:
        return self.store.now

    def set_time(self, at: int | datetime) -> None:
        """Move the clock (forward: renewals, trial ends, expiries that fall due on the way are
        processed in time order, like a Stripe test clock; backward: nothing is undone)."""
        target = _ts(at)
        with self._lock:
            if target < self.store.now:
                self.store.now = target
                return
            self._transaction(lambda: scheduler.run_until(self.store, target))

    def advance(self, seconds: int | float | timedelta) -> None:
        if isinstance(seconds, timedelta):
            seconds = seconds.total_seconds()
        self.set_time(self.store.now + int(seconds))

    def advance_to_period_end(self, subscription_id: str) -> dict[str, Any]:
        """Jump to the end of the subscription's current period: it renews (next invoice,
        paid or failed, events) or, if set to cancel at period end, is canceled.
        Returns the subscription."""
        with self._lock:
            sub = self.store.get(subscription_id, "subscription")
            self.set_time(sub["_period"][1])
            return render(self.store, sub)

    # --- failure injection ---------------------------------------------------------------
    def decline_next_payment(self, customer_id: str, times: int = 1, *,
                             decline_code: str = "generic_decline") -> None:
        """The customer's next ``times`` payment attempts fail with a 402 card_error: code
        card_declined with ``decline_code`` (e.g. insufficient_funds), or, for the declines
        Stripe reports under an error code of their own (expired_card, incorrect_cvc,
        incorrect_number, processing_error), that code without a decline_code."""
        with self._lock:
            self.store.get(customer_id, "customer")
            self.store.decline_next.setdefault(customer_id, []).extend([decline_code] * times)

    def fail_next(self, n: int = 1, status: int = 500, *, should_retry: bool | None = None
                  ) -> None:
        """The next ``n`` API requests answer ``status`` (an api_error; 429 is a rate limit)
        without doing anything. ``should_retry`` sets the ``Stripe-Should-Retry`` header."""
        with self._lock:
            self._failures.extend([(status, should_retry)] * n)

    def delay_next(self, seconds: float, n: int = 1) -> None:
        """The next ``n`` API requests wait ``seconds`` before being processed (the work
        still happens after the wait, even if the client has timed out)."""
        with self._lock:
            self._delays.extend([seconds] * n)

    # --- test helpers ------------------------------------------------------------------
    def attach_card(self, customer_id: str, *, declining: bool = False, default: bool = True
                    ) -> str:
        """Attach a test card to the customer (``pm_card_chargeCustomerFail`` when
        ``declining``: it attaches fine but every charge is declined); returns its id."""
        from .resources.customers import attach

        def run() -> str:
            cus = self.store.get(customer_id, "customer")
            token = "pm_card_chargeCustomerFail" if declining else "pm_card_visa"
            pm = attach(self.store, cus, token, param="payment_method")
            from .events import Tracker, emit

            emit(self.store, "payment_method.attached", pm)
            if default:
                with Tracker(self.store, cus, "customer.updated"):
                    cus["invoice_settings"]["default_payment_method"] = pm["id"]
            return str(pm["id"])

        return self._transaction(run)

    def complete_checkout(self, session_id: str, *, payment_method: str = "pm_card_visa",
                          email: str | None = None, name: str | None = None,
                          promotion_code: str | None = None) -> dict[str, Any]:
        """Pay a Checkout Session as a customer would: creates the customer and, in
        subscription mode, the subscription and its first invoice; records
        ``checkout.session.completed`` last. Raises StripeError if the card is declined (the
        session then stays open and nothing is kept)."""
        from .resources.checkout import complete

        return self._transaction(lambda: render(self.store, complete(
            self.store, session_id, payment_method=payment_method, email=email, name=name,
            promotion_code=promotion_code)))

    def expire_checkout(self, session_id: str) -> dict[str, Any]:
        from .resources.checkout import expire_session

        def run() -> dict[str, Any]:
            cs = self.store.get(session_id, "checkout.session")
            if cs["status"] != "open":
                raise invalid("Only open Checkout Sessions can be expired.")
            expire_session(self.store, cs)
            return render(self.store, cs)

        return self._transaction(run)

    def get(self, obj_id: str) -> dict[str, Any]:
        """The current JSON of any object, without going through HTTP."""
        with self._lock:
            obj = self.store.find(obj_id)
            if obj is None:
                raise KeyError(obj_id)
            return render(self.store, obj)

    # --- events and webhooks ---------------------------------------------------------------------
    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event so far, oldest first."""
        with self._lock:
            return [render(self.store, e) for e in self.store.events]

    def events_of(self, *types: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] in types]

    def event_types(self) -> list[str]:
        return [e["type"] for e in self.events]

    def deliver(self, event: dict[str, Any], target: Target, secret: str, *,
                timestamp: int | None = None) -> Delivery:
        """Sign ``event`` as Stripe does and POST it to a URL or hand it to a callable
        ``target(body_bytes, headers)``."""
        return deliver(event, target, secret, timestamp=timestamp)

    def deliver_pending(self, target: Target, secret: str) -> list[Delivery]:
        """Deliver, oldest first, every event not yet delivered to this target."""
        key = target if isinstance(target, str) else id(target)
        events = self.events
        start = self._delivered.get(key, 0)
        out = []
        for i, event in enumerate(events[start:], start):
            out.append(self.deliver(event, target, secret))
            self._delivered[key] = i + 1
        return out

    # --- plumbing --------------------------------------------------------------------------------
    def _transaction(self, fn: Callable[[], Any]) -> Any:
        with self._lock:
            snap = self.store.snapshot()
            try:
                result = fn()
                scheduler.run_until(self.store, self.store.now)
                return result
            except BaseException:
                self.store.restore(snap)
                raise

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            if request.path.startswith("/c/pay/"):
                response = self._checkout_page(request)
            else:
                response = self._api(request)
        except Exception:  # pragma: no cover - last resort
            self.internal_errors.append(traceback.format_exc())
            print(self.internal_errors[-1], file=sys.stderr)
            response = _json(500, {"error": {"type": "api_error",
                                             "message": "fakestripe internal error"}})
        return response(environ, start_response)

    def _api(self, request: Request) -> Response:
        with self._lock:
            delay = self._delays.pop(0) if self._delays else 0.0
        if delay:
            time.sleep(delay)
        with self._lock:
            self._req_n += 1
            req_id = "req_" + f"{self._req_n:014d}"
            auth = request.headers.get("Authorization", "")
            api_key = auth[7:] if auth.startswith("Bearer ") else None
            idem = request.headers.get("Idempotency-Key")
            method = request.method
            try:
                raw = decode(list(request.args.items(multi=True)) + (
                    list(request.form.items(multi=True)) if method == "POST" else []))
            except StripeError as e:
                raw = {}
                early: StripeError | None = e
            else:
                early = None
            rec = RecordedRequest(method, request.path, raw, api_key, idem,
                                  request.headers.get("Stripe-Version"), request_id=req_id)
            self.requests.append(rec)
            headers = {"Request-Id": req_id,
                       "Stripe-Version": request.headers.get("Stripe-Version") or API_VERSION}
            if idem:
                headers["Idempotency-Key"] = idem

            def respond(status: int, body: dict[str, Any], extra: dict[str, str] | None = None
                        ) -> Response:
                rec.status = status
                return _json(status, body, {**headers, **(extra or {})})

            if self._failures:
                status, retry = self._failures.pop(0)
                extra = {} if retry is None else {"Stripe-Should-Retry": str(retry).lower()}
                if status == 429:
                    body = {"error": {"type": "invalid_request_error", "code": "rate_limit",
                                      "message": "Request rate limit exceeded (injected by "
                                                 "fakestripe)."}}
                else:
                    body = {"error": {"type": "api_error", "message": "An unknown error "
                                      "occurred (injected by fakestripe)."}}
                return respond(status, body, extra)

            auth_error = self._check_auth(api_key)
            if auth_error is not None:
                return respond(401, auth_error)

            found = match(method, request.path)
            if found is None:
                return respond(404, {"error": {
                    "type": "invalid_request_error",
                    "message": f"Unrecognized request URL ({method}: {request.path}). Please "
                               "see https://stripe.com/docs or we can help at "
                               "https://support.stripe.com/."}})
            route, path_args = found
            if early is not None:
                return respond(early.status, early.body(req_id))

            idem_key = (api_key or "", idem) if idem and method == "POST" else None
            if idem_key is not None and idem_key in self._idempotency:
                saved = self._idempotency[idem_key]
                if (saved["method"], saved["path"]) != (method, request.path):
                    return respond(400, {"error": {
                        "type": "idempotency_error",
                        "message": "Keys for idempotent requests can only be used for the same "
                                   f"endpoint they were first used for ('{saved['method']} "
                                   f"{saved['path']}' vs '{method} {request.path}'). Try using "
                                   f"a key other than '{idem}' if you meant to execute a "
                                   "different request."}})
                if saved["params"] != raw:
                    return respond(400, {"error": {
                        "type": "idempotency_error",
                        "message": "Keys for idempotent requests can only be used with the same "
                                   "parameters they were first used with. Try using a key other "
                                   f"than '{idem}' if you meant to execute a different "
                                   "request."}})
                return respond(saved["status"], saved["body"],
                               {"Idempotent-Replayed": "true",
                                "Original-Request": saved["request_id"]})

            status, body, keep = self._execute(route, path_args, raw, req_id, idem)
            if idem_key is not None and keep:
                self._idempotency[idem_key] = {"method": method, "path": request.path,
                                               "params": raw, "status": status, "body": body,
                                               "request_id": req_id}
            return respond(status, body)

    def _check_auth(self, api_key: str | None) -> dict[str, Any] | None:
        if not api_key:
            return {"error": {"type": "invalid_request_error", "message": (
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for "
                "details, or we can help at https://support.stripe.com/.")}}
        ok = api_key.startswith(("sk_test_", "rk_test_"))
        if self.required_api_key is not None:
            ok = api_key == self.required_api_key
        if not ok:
            shown = api_key[:8] + "*" * max(len(api_key) - 12, 0) + api_key[-4:]
            return {"error": {"type": "invalid_request_error",
                              "message": f"Invalid API Key provided: {shown}"}}
        return None

    def _execute(self, route: Any, path_args: dict[str, str], raw: dict[str, Any],
                 req_id: str, idem: str | None) -> tuple[int, dict[str, Any], bool]:
        """Run a handler in a transaction. Returns (status, body, keep for idempotency)."""
        store = self.store
        try:
            params = validate(raw, route.spec, route.sdk)
            check_expand(params.get("expand"))
        except StripeError as e:
            return e.status, e.body(req_id), False
        snap = store.snapshot()
        store.request = {"id": req_id, "idempotency_key": idem}
        try:
            result = route.handler(Ctx(store, self), params, **path_args)
            scheduler.run_until(store, store.now)
            result = expand(store, result, params.get("expand"))
            return 200, result, True
        except StripeError as e:
            if not e.commit:
                store.restore(snap)
            else:
                scheduler.run_until(store, store.now)
            # Stripe saves the result of requests that ran (a declined payment), not of
            # requests refused by validation
            return e.status, e.body(req_id), e.commit
        except Exception:
            store.restore(snap)
            self.internal_errors.append(traceback.format_exc())
            print(self.internal_errors[-1], file=sys.stderr)
            return 500, {"error": {"type": "api_error",
                                   "message": "fakestripe internal error (see "
                                              "fake.internal_errors)"}}, False
        finally:
            store.request = None

    # --- the hosted checkout page ----------------------------------------------------------
    def _checkout_page(self, request: Request) -> Response:
        session_id = request.path.rsplit("/", 1)[-1]
        with self._lock:
            cs = self.store.find(session_id)
            if cs is None or cs["object"] != "checkout.session":
                return Response("No such checkout session", status=404)
            error = ""
            if request.method == "POST" and cs["status"] == "open":
                try:
                    self.complete_checkout(
                        session_id,
                        payment_method=request.form.get("payment_method") or "pm_card_visa",
                        email=request.form.get("email") or None,
                        promotion_code=request.form.get("promotion_code") or None)
                except StripeError as e:
                    error = e.message
                else:
                    url = (cs["success_url"] or "about:blank").replace(
                        "{CHECKOUT_SESSION_ID}", session_id)
                    return Response("", status=303, headers={"Location": url})
            lines = "".join(
                f"<li>{html.escape(self.store.objects[pid]['id'])} × {q}</li>"
                for pid, q in cs["_lines"])
            promo = ('<label>Promotion code <input name="promotion_code"></label>'
                     if cs["allow_promotion_codes"] else "")
            cancel = (f'<a id="cancel" href="{html.escape(cs["cancel_url"])}">Cancel</a>'
                      if cs["cancel_url"] else "")
            body = f"""<!doctype html><html><head><title>FakeStripe Checkout</title></head>
<body><h1>FakeStripe Checkout</h1><p id="status">{html.escape(cs['status'])}</p>
<p id="error" role="alert">{html.escape(error)}</p><ul>{lines}</ul>
<p>Total: <span id="total">{cs['amount_total']}</span> {html.escape(cs['currency'] or '')}</p>
<form method="post"><label>Email <input name="email" value="{html.escape(
                cs['customer_email'] or '')}"></label>
<label>Card <select name="payment_method"><option value="pm_card_visa">4242 (succeeds)</option>
<option value="pm_card_chargeCustomerFail">0341 (charges decline)</option>
<option value="pm_card_chargeDeclined">0002 (declined)</option></select></label>{promo}
<button id="pay" type="submit">Pay</button></form>{cancel}</body></html>"""
            return Response(body, status=402 if error else 200, mimetype="text/html")


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {},
                    mimetype="application/json")
