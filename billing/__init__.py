"""Billing: the provider interface (Stripe or manual), flows, webhooks, reconciliation."""
