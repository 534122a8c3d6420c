"""A small HTTP client for tiergate's gate API (v1): check, consume, release, entitlements.

One `requests.Session` per client keeps connections alive. Transient failures (connection
errors, timeouts, 5xx, 429) are retried with a short exponential backoff; 4xx answers are not.
A consume carries an idempotency key, generated when the caller gives none and reused on every
retry, so a consume whose answer was lost counts once.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, LocationParseError

__all__ = [
    "Entitlements",
    "FeatureState",
    "GateResult",
    "TiergateClient",
    "TiergateError",
    "TiergateUnavailable",
]

# Transport failures that mean "tiergate could not be reached or did not answer": retried, then
# TiergateUnavailable. Any other requests error (a bad URL or header) is a setup bug.
UNREACHABLE = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)
BACKOFF_BASE = 0.05  # seconds: 0.05, 0.1, 0.2, ... plus jitter
BACKOFF_CAP = 1.0


class TiergateError(Exception):
    """tiergate refused the request (4xx other than a 402 denial): a bug or bad input."""

    def __init__(
        self, code: str, message: str, status: int | None = None, details: Any = None
    ) -> None:
        super().__init__(f"{code}: {message}" if status is None else f"{status} {code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.details = details


class TiergateUnavailable(TiergateError):
    """tiergate could not be reached or kept failing (connection error, timeout, 5xx, 429)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__("unavailable", message, status)


@dataclass(frozen=True)
class GateResult:
    """The answer to a check or a usage change; a denial is a result, not an exception."""

    allowed: bool
    feature: str
    limit: int | None = None
    used: int | None = None
    remaining: int | None = None
    reason: str | None = None
    offer: dict[str, Any] | None = None
    nudge: bool = False  # allowed, but usage crossed the nudge threshold (offer attached)
    message: str | None = None  # tiergate's words for a denial or nudge, to show as they are

    @classmethod
    def from_json(cls, body: dict[str, Any], feature: str) -> GateResult:
        return cls(
            allowed=bool(body.get("allowed")),
            feature=body.get("feature") or feature,
            limit=body.get("limit"),
            used=body.get("used"),
            remaining=body.get("remaining"),
            reason=body.get("reason"),
            offer=body.get("offer"),
            nudge=bool(body.get("nudge")),
            message=body.get("message") if isinstance(body.get("message"), str) else None,
        )


@dataclass(frozen=True)
class FeatureState:
    """One feature of an account's entitlements."""

    id: str
    type: str  # boolean | counter | gauge
    enabled: bool
    limit: int | None = None
    used: int | None = None
    remaining: int | None = None
    resets_at: datetime | None = None


@dataclass(frozen=True)
class Entitlements:
    """Everything an account may use right now, as GET /v1/accounts/{id}/entitlements says."""

    account_id: str
    tier_id: str | None
    tier_name: str | None
    status: str | None
    catalog_version: int | None
    features: dict[str, FeatureState] = field(default_factory=dict)

    def is_enabled(self, feature: str) -> bool:
        """True when the tier includes `feature` (unknown features are not enabled)."""
        state = self.features.get(feature)
        return state is not None and state.enabled

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Entitlements:
        tier = body.get("tier") or {}
        features = {
            fid: FeatureState(
                id=fid,
                type=str(f.get("type", "boolean")),
                enabled=bool(f.get("enabled")),
                limit=f.get("limit"),
                used=f.get("used"),
                remaining=f.get("remaining"),
                resets_at=_parse_time(f.get("resets_at")),
            )
            for fid, f in (body.get("features") or {}).items()
        }
        return cls(
            account_id=body["account_id"],
            tier_id=tier.get("id"),
            tier_name=tier.get("name"),
            status=body.get("status"),
            catalog_version=body.get("catalog_version"),
            features=features,
        )


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class TiergateClient:
    """Talks to one tiergate server with one API key; safe to share between threads."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 2.0,
        retries: int = 2,
        session: requests.Session | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://: {base_url!r}")
        if not api_key:
            raise ValueError("api_key is empty: create one with `tiergate apikey create`")
        if any(not "!" <= char <= "~" for char in api_key):  # printable ASCII, no space
            raise ValueError(
                "api_key contains whitespace, a control or a non-ASCII character (a trailing "
                "newline read from a file?): pass the key as `tiergate apikey create` printed it"
            )
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, not {retries}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.session = session or _pooled_session()
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self._json_headers = {**self._headers, "Content-Type": "application/json"}

    # -- the gate ---------------------------------------------------------------------------

    def check(self, account_id: str, feature: str, quantity: int = 1) -> GateResult:
        """Would `quantity` units of `feature` be allowed now? Changes nothing."""
        body = {"account_id": account_id, "feature": feature, "quantity": quantity}
        return GateResult.from_json(self._post("/v1/check", body), feature)

    def consume(
        self,
        account_id: str,
        feature: str,
        quantity: int = 1,
        idempotency_key: str | None = None,
    ) -> GateResult:
        """Use `quantity` units if the limit allows; retries reuse one idempotency key."""
        body = {
            "account_id": account_id,
            "feature": feature,
            "quantity": quantity,
            "idempotency_key": idempotency_key or uuid.uuid4().hex,
        }
        return GateResult.from_json(self._post("/v1/usage", body), feature)

    def set_usage(self, account_id: str, feature: str, value: int) -> GateResult:
        """Set a gauge to an absolute value (e.g. after a sync); repeating it is harmless."""
        body = {"account_id": account_id, "feature": feature, "value": value}
        return GateResult.from_json(self._post("/v1/usage/set", body), feature)

    def release(self, account_id: str, feature: str, quantity: int = 1) -> GateResult:
        """Give back `quantity` units of a gauge (a project was deleted)."""
        body = {"account_id": account_id, "feature": feature, "quantity": quantity}
        # No idempotency key in the API: retry only when the request surely never arrived.
        return GateResult.from_json(
            self._post("/v1/usage/release", body, retry_unsent_only=True), feature
        )

    def entitlements(self, account_id: str) -> Entitlements:
        """The account's tier, status and every feature with its limit and usage."""
        path = f"/v1/accounts/{_quote(account_id)}/entitlements"
        return Entitlements.from_json(self._request("GET", path))

    def upsert_account(
        self,
        account_id: str,
        *,
        email: str | None = None,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Create the account or update the details given; returns tiergate's account JSON."""
        given = {"email": email, "name": name, "metadata": metadata}
        body = {k: v for k, v in given.items() if v is not None}  # left out: kept as they are
        return self._request("PUT", f"/v1/accounts/{_quote(account_id)}", body)

    def billing_link(self, account_id: str, return_url: str | None = None) -> str:
        """A fresh signed link to the account's billing pages, for the signed-in user: create
        it when they click "Billing" and redirect them; never store it (it expires)."""
        body = {"return_url": return_url} if return_url else {}
        path = f"/v1/accounts/{_quote(account_id)}/billing_link"
        return str(self._post(path, body)["url"])

    def close(self) -> None:
        self.session.close()

    # -- transport --------------------------------------------------------------------------

    def _post(
        self, path: str, body: dict[str, Any], *, retry_unsent_only: bool = False
    ) -> dict[str, Any]:
        return self._request("POST", path, body, retry_unsent_only=retry_unsent_only)

    def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        retry_unsent_only: bool = False,
    ) -> dict[str, Any]:
        url = self.base_url + path
        try:  # bad input is the caller's, not an outage: refused here, never retried
            data = None if body is None else json.dumps(body, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TiergateError("invalid_request", f"the request is not JSON: {exc}") from None
        headers = self._headers if data is None else self._json_headers
        attempt = 0
        while True:
            try:
                response = self.session.request(
                    method, url, data=data, headers=headers, timeout=self.timeout
                )
            except UNREACHABLE as exc:
                if attempt >= self.retries or (retry_unsent_only and not _surely_unsent(exc)):
                    raise TiergateUnavailable(f"{method} {url} failed: {_describe(exc)}") from None
            except requests.RequestException as exc:  # a bad URL, a redirect loop: not an outage
                raise TiergateError("request_failed", f"{method} {url} failed: {exc}") from None
            except (LocationParseError, ValueError) as exc:  # a host urllib3 cannot parse
                # ("tiergate..internal"): requests lets it through unwrapped
                raise TiergateError("request_failed", f"{method} {url} failed: {exc}") from None
            else:
                status = response.status_code
                if not _transient(status):
                    return _decode(response, method, url)
                if attempt >= self.retries or (retry_unsent_only and status != 429):
                    raise TiergateUnavailable(
                        f"{method} {url} answered {status} after {attempt + 1} attempts",
                        status,
                    )
                retry_after = _retry_after(response)
                if retry_after is not None:
                    time.sleep(min(retry_after, BACKOFF_CAP))
                    attempt += 1
                    continue
            time.sleep(min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.0))
            attempt += 1


def _pooled_session() -> requests.Session:
    session = requests.Session()
    # Enough keep-alive connections for a threaded host app (gthread workers, threaded dev server).
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _transient(status: int) -> bool:
    """429 and every 5xx: retried, then TiergateUnavailable. A 5xx may be a proxy's or CDN's own
    page (Cloudflare's 520-526 when tiergate behind it is down): an outage, not a refusal."""
    return status == 429 or status >= 500


def _decode(response: requests.Response, method: str, url: str) -> dict[str, Any]:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        snippet = response.text[:200]
        message = f"{method} {url}: not a JSON object: {snippet!r}"
        raise TiergateError("bad_response", message, status)
    if status < 400 or (status == 402 and "allowed" in body):
        return body
    error = _as_dict(body.get("error"))
    raise TiergateError(
        str(error.get("code") or "http_error"),
        str(error.get("message") or f"{method} {url} answered {status}"),
        status,
        error.get("details"),
    )


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _surely_unsent(exc: requests.RequestException) -> bool:
    """True when the connection was never made, so the server cannot have seen the request."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, ConnectTimeoutError)


def _describe(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return type(exc).__name__


def _quote(account_id: str) -> str:
    return quote(account_id, safe="")
