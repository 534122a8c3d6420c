"""Signed, expiring customer links: the host app hands them to its signed-in user.

An offer link (salt "offer") opens one offer for one account, and nothing else; an account
link (salt "account") opens that account's billing pages (plan changes, cancel, add-ons). After
an offer is paid, its cross-sell add-on is bought with an account token limited to that
add-on. Both are itsdangerous URLSafeTimedSerializer tokens signed with the app's SECRET_KEY,
so tiergate needs no login of its own: whoever holds the link acts for that account until the
link expires.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from tiergate.exceptions import Forbidden, TiergateError

OFFER_SALT = "offer"
ACCOUNT_SALT = "account"
DEFAULT_MAX_AGE = 3600  # seconds; BILLING_LINK_MAX_AGE overrides


def _serializer(config: Mapping[str, Any], salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(str(config["SECRET_KEY"]), salt=salt)


def max_age(config: Mapping[str, Any]) -> int:
    """How long a link stays valid, in seconds."""
    return int(config.get("BILLING_LINK_MAX_AGE") or DEFAULT_MAX_AGE)


def _base(config: Mapping[str, Any]) -> str:
    return str(config["BASE_URL"]).rstrip("/")


def offer_token(config: Mapping[str, Any], account_id: str, offer_id: str) -> str:
    """A token carrying (account_id, offer_id)."""
    return _serializer(config, OFFER_SALT).dumps({"a": account_id, "o": offer_id})


def offer_link(
    config: Mapping[str, Any],
    account_id: str,
    offer_id: str,
    return_url: str | None = None,
    billing: str | None = None,
) -> str:
    """The customer-facing URL of one offer's upgrade page. `billing`: the account token of a
    customer who came from the billing pages (the offer page may then link back to them; an
    offer link alone never opens them)."""
    query = {"t": offer_token(config, account_id, offer_id)}
    if return_url:
        query["return_url"] = return_url
    if billing:
        query["b"] = billing
    return f"{_base(config)}/offers/{offer_id}?{urlencode(query)}"


def read_offer_token(
    config: Mapping[str, Any], token: str, offer_id: str, *, max_age: int | None = None
) -> str:
    """The account id a valid token for `offer_id` carries; Forbidden when invalid or expired
    (older than `max_age` seconds, by default the billing links' age)."""
    data = _load(config, OFFER_SALT, token, max_age)
    if (
        not isinstance(data, dict)
        or data.get("o") != offer_id
        or not isinstance(data.get("a"), str)
        or "\x00" in data["a"]  # no account id has one (and PostgreSQL could not look it up)
    ):
        raise Forbidden("This link is not valid for this offer. Open the offer again from the app.")
    return str(data["a"])


def account_token(config: Mapping[str, Any], account_id: str, only: str | None = None) -> str:
    """A token carrying account_id for the account's billing pages; `only` (an add-on id)
    limits it to buying that add-on (the cross-sell after an offer was paid)."""
    data = {"a": account_id} if only is None else {"a": account_id, "only": only}
    return _serializer(config, ACCOUNT_SALT).dumps(data)


def account_link(config: Mapping[str, Any], account_id: str, return_url: str | None = None) -> str:
    """The customer-facing URL of the account's billing page (plan, cancel, add-ons)."""
    query = {"t": account_token(config, account_id)}
    if return_url:
        query["return_url"] = return_url
    return f"{_base(config)}/billing?{urlencode(query)}"


def read_account_token(config: Mapping[str, Any], token: str) -> str:
    """The account id a valid account token for all the billing pages carries; Forbidden
    when invalid, expired, or limited to one add-on."""
    account_id, only = read_account_grant(config, token)
    if only is not None:
        raise Forbidden(ONLY_ADDON)
    return account_id


ONLY_ADDON = (
    "This link opens only the add-on it was made for. Open Billing from the app to see or "
    "change your plan."
)


def read_account_grant(
    config: Mapping[str, Any], token: str, *, max_age: int | None = None
) -> tuple[str, str | None]:
    """(account id, the add-on the token is limited to or None); Forbidden when invalid."""
    data = _load(config, ACCOUNT_SALT, token, max_age)
    if not isinstance(data, dict) or not isinstance(data.get("a"), str) or "\x00" in data["a"]:
        raise Forbidden("This billing link is not valid. Open billing again from the app.")
    only = data.get("only")
    return str(data["a"]), (only if isinstance(only, str) else None)


def _load(config: Mapping[str, Any], salt: str, token: str, age: int | None = None) -> Any:
    if not token:
        raise Forbidden(
            "This page needs a signed link from the app (the `t` parameter is missing)."
        )
    try:
        return _serializer(config, salt).loads(token, max_age=age or max_age(config))
    except SignatureExpired:
        raise Forbidden("This link has expired. Open it again from the app.") from None
    except BadSignature:
        raise Forbidden("This link is not valid. Open it again from the app.") from None


# Stripe keeps an unpaid Checkout page payable for 24 hours: the links it sends the customer
# back on (carrying the page's session_id) open for that long, with an hour's margin.
CHECKOUT_RETURN_MAX_AGE = 25 * 3600


def safe_return_url(config: Mapping[str, Any], url: str | None) -> str | None:
    """`url` when it points at BASE_URL's origin or an allowed origin, else None (no open redirect).

    Allowed origins: BASE_URL's and BILLING_RETURN_ORIGINS (a list or a comma-separated string).
    """
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # "http://[" (a bad IPv6 address), a host that NFKC turns into "/" or "?"
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc or "\\" in url:
        return None
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):  # urlsplit drops tabs and newlines
        return None
    return url if _origin(url) in allowed_origins(config) else None


def allowed_origins(config: Mapping[str, Any]) -> set[str]:
    """BASE_URL's origin and BILLING_RETURN_ORIGINS (a list or a comma-separated string): where
    the customer pages may send the customer back, and which pages may frame them."""
    allowed = {_origin(_base(config))}
    extra = config.get("BILLING_RETURN_ORIGINS") or ()
    if isinstance(extra, str):
        extra = [o for o in extra.split(",") if o.strip()]
    allowed.update(_origin(str(o).strip().rstrip("/")) for o in extra)
    return allowed


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def way_back(
    config: Mapping[str, Any], values: Mapping[str, Any], view_args: Mapping[str, Any] | None
) -> dict[str, str]:
    """For an error page shown to a customer: their billing page (when the request carries a
    valid billing token: `t` on the billing pages, `b` on an offer's) and the app's return URL
    (when it is an allowed one), so an error (Back after a purchase, a change already made) is
    never a dead end."""
    found: dict[str, str] = {}
    # An offer's pages carry the billing pages' token in `b` when the customer came from them:
    # an offer link alone does not open the account's billing pages.
    offer_id = (view_args or {}).get("offer_id")
    token = values.get("b" if isinstance(offer_id, str) else "t")
    account_id = None
    if isinstance(token, str) and token:
        try:
            account_id = read_account_token(config, token)
        except TiergateError:
            account_id = None
    raw = values.get("return_url")
    back = safe_return_url(config, raw if isinstance(raw, str) else None)
    if account_id is not None:
        found["billing_url"] = account_link(config, account_id, back)
    if back:
        found["return_url"] = back
    return found
