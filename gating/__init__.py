"""The feature gate: accounts, entitlements, atomic usage, upgrade offers."""
