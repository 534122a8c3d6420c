"""Signing and delivering webhook events exactly as Stripe does.

Stripe signs ``f"{timestamp}.{payload}"`` with HMAC-SHA256 using the endpoint's signing secret
and sends ``Stripe-Signature: t=<timestamp>,v1=<hex digest>``. The SDK's
``stripe.Webhook.construct_event(payload, header, secret)`` verifies that header and, by
default, rejects timestamps more than 300 seconds older than the *wall clock* (``time.time()``),
which is why deliveries are stamped with the wall clock unless a timestamp is given.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Target = str | Callable[[bytes, dict[str, str]], Any]


def sign_payload(payload: bytes | str, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header value for ``payload`` (use a wrong secret or an old
    timestamp to build forged or stale signatures in tests)."""
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8")
    ts = int(time.time()) if timestamp is None else int(timestamp)
    digest = hmac.new(secret.encode("utf-8"), f"{ts}.{payload}".encode(),
                      hashlib.sha256).hexdigest()
    return f"t={ts},v1={digest}"


def event_payload(event: dict[str, Any]) -> bytes:
    """The body Stripe POSTs: the event as pretty-printed JSON."""
    return json.dumps(event, indent=2).encode("utf-8")


@dataclass
class Delivery:
    """The outcome of one delivery: HTTP status, response body, what was sent."""

    status: int
    body: bytes
    payload: bytes
    headers: dict[str, str]
    response: Any = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def deliver(event: dict[str, Any], target: Target, secret: str, *,
            timestamp: int | None = None, timeout: float = 10.0) -> Delivery:
    """POST a signed event to a URL (with urllib), or call ``target(body_bytes, headers)``
    (e.g. a lambda wrapping a Flask test client's ``post``)."""
    payload = event_payload(event)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "Stripe-Signature": sign_payload(payload, secret, timestamp),
    }
    if callable(target):
        resp = target(payload, headers)
        status = getattr(resp, "status_code", None) or getattr(resp, "status", None) or 200
        body = getattr(resp, "data", None) or getattr(resp, "body", None) or b""
        if isinstance(body, str):
            body = body.encode()
        return Delivery(int(status), body, payload, headers, resp)
    request = urllib.request.Request(target, data=payload, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 (tests)
            return Delivery(resp.status, resp.read(), payload, headers)
    except urllib.error.HTTPError as e:
        return Delivery(e.code, e.read(), payload, headers)
