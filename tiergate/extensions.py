"""Per-app services kept in app.extensions: the clock (injectable) and the billing provider."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app

from tiergate.clock import Clock, SystemClock
from tiergate.config import ConfigError


def init_app(app: Flask) -> None:
    app.extensions["tiergate.clock"] = app.config.get("CLOCK") or SystemClock()
    app.extensions["tiergate.billing"] = app.config.get("BILLING") or make_billing(app.config)


def make_billing(config: Any) -> Any:
    """The billing provider the settings ask for: manual unless Stripe is configured."""
    choice = config.get("BILLING_PROVIDER")
    if choice is None:
        choice = "stripe" if config.get("STRIPE_SECRET_KEY") else "manual"
    if choice == "manual":
        from billing.manual import ManualBilling

        return ManualBilling()
    try:
        from billing.stripe_provider import StripeBilling
    except ModuleNotFoundError as exc:
        if exc.name != "billing.stripe_provider":
            raise
        raise ConfigError(
            "TIERGATE_BILLING_PROVIDER is 'stripe' (or TIERGATE_STRIPE_SECRET_KEY is set) but "
            "this build has no Stripe provider (billing/stripe_provider.py): "
            "set TIERGATE_BILLING_PROVIDER=manual"
        ) from None
    return StripeBilling.from_config(config)


def get_billing() -> Any:
    """The app's billing provider (billing.provider.BillingProvider)."""
    return current_app.extensions["tiergate.billing"]


def get_clock() -> Clock:
    clock: Clock = current_app.extensions["tiergate.clock"]
    return clock
