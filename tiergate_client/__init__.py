"""tiergate_client: call tiergate from a host app; `tiergate_client.flask` gates Flask views."""

from tiergate_client.client import (
    Entitlements,
    FeatureState,
    GateResult,
    TiergateClient,
    TiergateError,
    TiergateUnavailable,
)
from tiergate_client.notifications import InvalidNotification, verify_notification

__all__ = [
    "Entitlements",
    "FeatureState",
    "GateResult",
    "InvalidNotification",
    "TiergateClient",
    "TiergateError",
    "TiergateUnavailable",
    "verify_notification",
]
