"""Check a notification from tiergate (TIERGATE_NOTIFY_URL) before trusting it.

    from tiergate_client import verify_notification, InvalidNotification

    @app.post("/tiergate/notifications")
    def tiergate_notification():
        try:
            note = verify_notification(request.get_data(), request.headers.get(
                "Tiergate-Signature", ""), secret=os.environ["TIERGATE_NOTIFY_SECRET"])
        except InvalidNotification as exc:
            return {"error": str(exc)}, 400
        if note["type"] == "trial.will_end":
            ...  # e-mail the account's owner: the trial ends at note["data"]["trial_end"]
        return "", 204

Answer 2xx once it is handled: anything else is retried with backoff. A notification can
arrive more than once (a lost answer), so act on each `id` once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

DEFAULT_TOLERANCE = 300  # seconds between tiergate signing and you checking


class InvalidNotification(ValueError):
    """The body or its signature is not a genuine, recent notification from tiergate."""


def verify_notification(
    body: bytes,
    signature: str,
    secret: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> dict[str, Any]:
    """The notification in `body` when `signature` (the Tiergate-Signature header) is valid."""
    parts = dict(part.split("=", 1) for part in signature.split(",") if "=" in part)
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        raise InvalidNotification("the Tiergate-Signature header has no timestamp") from None
    given = parts.get("v1", "")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    if not given or not given.isascii() or not hmac.compare_digest(given, expected.hexdigest()):
        raise InvalidNotification("the signature does not match the body and secret")
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise InvalidNotification(f"the signature is older than {tolerance} seconds")
    try:
        note = json.loads(body)
    except ValueError:
        raise InvalidNotification("the body is not JSON") from None
    if not isinstance(note, dict) or not isinstance(note.get("type"), str):
        raise InvalidNotification("the body is not a tiergate notification")
    return note
