"""tiergate_client: call tiergate from a host app; `tiergate_client.flask` gates Flask views."""

from tiergate_client.client import (
    Entitlements,
    FeatureState,
    GateResult,
    TiergateClient,
    TiergateError,
    TiergateUnavailable,
)

__all__ = [
    "Entitlements",
    "FeatureState",
    "GateResult",
    "TiergateClient",
    "TiergateError",
    "TiergateUnavailable",
]
