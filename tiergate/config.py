"""Settings: defaults, then TIERGATE_* environment variables, then test overrides."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


DEV_SECRET = "dev-only-not-secret"  # public: refused unless the service is local


class ConfigError(Exception):
    """A required setting is missing or invalid; the message is one line for the operator."""


def defaults(instance_path: str) -> dict[str, Any]:
    """The embedded default: SQLite under instance/, manual billing, a development secret."""
    return {
        "SECRET_KEY": DEV_SECRET,
        "DATABASE_URL": f"sqlite:///{Path(instance_path) / 'tiergate.sqlite3'}",
        "BASE_URL": "http://127.0.0.1:5000",
        "STRIPE_SECRET_KEY": None,
        "STRIPE_WEBHOOK_SECRET": None,
        "STRIPE_API_BASE": None,
        "STRIPE_WEBHOOK_TOLERANCE": 300,
        "PAST_DUE_GRACE_DAYS": 7,
        "GATE_CACHE_SECONDS": 1,
        "MAX_CONTENT_LENGTH": 1024 * 1024,  # bytes of a request body; larger: 413, unread
        "BILLING_LINK_MAX_AGE": 3600,  # seconds a signed customer link stays valid
        "BILLING_RETURN_ORIGINS": "",  # more origins billing pages may link back to
        "BILLING_PROVIDER": None,  # "stripe" or "manual"; chosen from STRIPE_SECRET_KEY when unset
        "NOTIFY_URL": None,  # the host app's endpoint for notifications (billing/notifications.py)
        "NOTIFY_SECRET": None,  # the key their signatures are made with
        "ENV": "development",
        "SQL_ECHO": False,
        "JSON_SORT_KEYS": False,
    }


# Secrets, URLs and names: read as written. `from_prefixed_env` reads values as JSON, so a
# secret of digits would otherwise become a number (and `null` would become None).
TEXT_SETTINGS = (
    "SECRET_KEY",
    "DATABASE_URL",
    "BASE_URL",
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_API_BASE",
    "BILLING_PROVIDER",
    "BILLING_RETURN_ORIGINS",
    "NOTIFY_URL",
    "NOTIFY_SECRET",
)


def text_from_env(config: dict[str, Any], environ: Mapping[str, str]) -> None:
    """Put the TIERGATE_* text settings back as the strings they were written as."""
    for name in TEXT_SETTINGS:
        value = environ.get(f"TIERGATE_{name}")
        if value is not None:
            config[name] = value


def validate(config: dict[str, Any]) -> None:
    """Fail at start with one clear line when a required setting is missing or invalid."""
    try:
        url = make_url(str(config["DATABASE_URL"]))
    except ArgumentError:
        raise ConfigError(
            f"TIERGATE_DATABASE_URL is not a database URL: {config['DATABASE_URL']!r}"
        ) from None
    try:
        url.get_dialect().import_dbapi()
        if url.get_backend_name() not in ("postgresql", "sqlite"):
            raise ImportError(url.get_backend_name())
    except (NoSuchModuleError, ImportError):
        hint = " (did you mean postgresql://?)" if url.drivername == "postgres" else ""
        raise ConfigError(
            f"TIERGATE_DATABASE_URL names a database tiergate cannot use: "
            f"{url.drivername!r}{hint}; use postgresql:// or sqlite://"
        ) from None
    if not str(config.get("BASE_URL", "")).startswith(("http://", "https://")):
        raise ConfigError(
            f"TIERGATE_BASE_URL must start with http:// or https://: {config.get('BASE_URL')!r}"
        )
    ttl = config.get("GATE_CACHE_SECONDS")
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 <= ttl <= 60:
        raise ConfigError(f"TIERGATE_GATE_CACHE_SECONDS must be a number from 0 to 60, not {ttl!r}")
    link_age = config.get("BILLING_LINK_MAX_AGE")
    if isinstance(link_age, bool) or not isinstance(link_age, int) or not 60 <= link_age <= 86400:
        raise ConfigError(
            "TIERGATE_BILLING_LINK_MAX_AGE must be whole seconds from 60 to 86400, "
            f"not {link_age!r}"
        )
    body = config.get("MAX_CONTENT_LENGTH")
    if isinstance(body, bool) or not isinstance(body, int) or body < 1024:
        raise ConfigError(
            f"TIERGATE_MAX_CONTENT_LENGTH must be whole bytes, at least 1024, not {body!r}"
        )
    _check_return_origins(config.get("BILLING_RETURN_ORIGINS"))
    _check_samesite(config)
    notify_url = config.get("NOTIFY_URL")
    if notify_url:
        problem = _url_problem(str(notify_url))
        if problem:
            raise ConfigError(f"TIERGATE_NOTIFY_URL {problem}: {notify_url!r}")
        if len(str(config.get("NOTIFY_SECRET") or "")) < 16:
            raise ConfigError(
                "TIERGATE_NOTIFY_SECRET must be set (at least 16 random characters) when "
                "TIERGATE_NOTIFY_URL is set: the host app checks notifications with it"
            )
    provider = config.get("BILLING_PROVIDER")
    if provider not in (None, "stripe", "manual"):
        raise ConfigError(
            f"TIERGATE_BILLING_PROVIDER must be 'stripe' or 'manual', not {provider!r}"
        )
    if provider == "stripe" and not config.get("STRIPE_SECRET_KEY"):
        raise ConfigError(
            "TIERGATE_BILLING_PROVIDER is 'stripe' but TIERGATE_STRIPE_SECRET_KEY is not set"
        )
    grace = config.get("PAST_DUE_GRACE_DAYS")
    if isinstance(grace, bool) or not isinstance(grace, int) or not 0 <= grace <= 365:
        raise ConfigError(
            f"TIERGATE_PAST_DUE_GRACE_DAYS must be whole days from 0 to 365, not {grace!r}"
        )
    tolerance = config.get("STRIPE_WEBHOOK_TOLERANCE")
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or not 1 <= tolerance <= 3600:
        raise ConfigError(
            "TIERGATE_STRIPE_WEBHOOK_TOLERANCE must be whole seconds from 1 to 3600, "
            f"not {tolerance!r}"
        )
    echo = config.get("SQL_ECHO")
    if not isinstance(echo, bool) and echo != "debug":
        raise ConfigError(f'TIERGATE_SQL_ECHO must be true, false or "debug", not {echo!r}')
    env = config.get("ENV")
    if env not in ("development", "production"):
        raise ConfigError(f"TIERGATE_ENV must be 'development' or 'production', not {env!r}")
    # The development secret is public (it is in the source): anyone could sign a customer
    # link with it. It only serves a service reached on this machine.
    local = _loopback(str(config["BASE_URL"]))
    if env == "production" or not local:
        why = "in production" if env == "production" else "when TIERGATE_BASE_URL is public"
        if not config.get("SECRET_KEY") or config["SECRET_KEY"] == DEV_SECRET:
            raise ConfigError(
                f"TIERGATE_SECRET_KEY must be set to a random value {why} "
                f"({config['BASE_URL']}): it signs the customers' billing links"
            )
        if len(str(config["SECRET_KEY"])) < 24:
            raise ConfigError("TIERGATE_SECRET_KEY is too short: use at least 24 random characters")
    stripe_key = config.get("STRIPE_SECRET_KEY")
    if env == "production" and stripe_key and not config.get("STRIPE_WEBHOOK_SECRET"):
        raise ConfigError(
            "TIERGATE_STRIPE_WEBHOOK_SECRET must be set when TIERGATE_STRIPE_SECRET_KEY is set"
        )


def _loopback(url: str) -> bool:
    """Whether `url` names this machine (a local development or demo service)."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name, not an address
        return host == "localhost"


def _url_problem(url: str) -> str | None:
    """Why `url` cannot be posted to (None: it can)."""
    if not url.startswith(("http://", "https://")):
        return "must start with http:// or https://"
    if any(c.isspace() for c in url):
        return "must not contain spaces"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if not parts.hostname:
        return "has no host name"
    return None


def _check_samesite(config: Mapping[str, Any]) -> None:
    """TIERGATE_SESSION_COOKIE_SAMESITE, when the operator sets it (unset: tiergate chooses,
    tiergate/web.py): a value browsers take, else every customer page would fail on it."""
    value = config.get("SESSION_COOKIE_SAMESITE")
    if value is None:
        return
    if not isinstance(value, str) or value.title() not in ("Strict", "Lax", "None"):
        raise ConfigError(
            "TIERGATE_SESSION_COOKIE_SAMESITE must be Strict, Lax or None (or unset: Lax, or "
            f"None when another site frames the pages over HTTPS), not {value!r}"
        )
    https = str(config.get("BASE_URL", "")).startswith("https://")
    if value.title() == "None" and not (https or config.get("SESSION_COOKIE_SECURE")):
        raise ConfigError(
            "TIERGATE_SESSION_COOKIE_SAMESITE=None needs HTTPS (an https:// TIERGATE_BASE_URL): "
            "browsers drop such a cookie without Secure, and every billing form would fail"
        )


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


def _check_return_origins(value: Any) -> None:
    """TIERGATE_BILLING_RETURN_ORIGINS: comma-separated origins (scheme, host, optional port),
    written into every customer page's Content-Security-Policy: nothing else is accepted."""
    origins = value.split(",") if isinstance(value, str) else list(value or ())
    for origin in origins:
        text = str(origin).strip()
        if not text:
            continue
        if not _ORIGIN.fullmatch(text):
            raise ConfigError(
                "TIERGATE_BILLING_RETURN_ORIGINS must be comma-separated origins like "
                f"https://app.example.com (scheme, host, optional port; no path), not {text!r}"
            )
