"""Accounts, their subscription state, overrides, usage counters, API keys and offers."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tiergate.db import Base, UTCDateTime


def _enum(cls: type[StrEnum]) -> SAEnum:
    return SAEnum(cls, values_callable=lambda e: [m.value for m in e], native_enum=False, length=32)


class SubscriptionStatus(StrEnum):
    """Values match Stripe's subscription statuses."""

    ACTIVE = "active"
    TRIALING = "trialing"
    PAST_DUE = "past_due"
    CANCELED = "canceled"
    INCOMPLETE = "incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired"
    UNPAID = "unpaid"
    PAUSED = "paused"


class Account(Base):
    """The host app's customer, identified by the host's own id."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    # The invoice balance, as Stripe keeps it on the customer: negative is a credit taken off
    # the next invoices (a change that nets to a credit), positive an amount added to them.
    balance: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    balance_currency: Mapped[str | None] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    subscription: Mapped[Subscription | None] = relationship(
        back_populates="account", uselist=False, lazy="selectin"
    )


class Subscription(Base):
    """The account's current paid (or trial) subscription; no row means the free tier."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), unique=True)
    tier_id: Mapped[str] = mapped_column(String(64))
    interval: Mapped[str] = mapped_column(String(16))  # month | year
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[SubscriptionStatus] = mapped_column(_enum(SubscriptionStatus))
    catalog_version: Mapped[int] = mapped_column(ForeignKey("catalog_versions.version"))
    current_period_start: Mapped[datetime] = mapped_column(UTCDateTime)
    current_period_end: Mapped[datetime] = mapped_column(UTCDateTime)
    trial_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    past_due_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A downgrade or interval change waiting for the period end.
    scheduled_tier_id: Mapped[str | None] = mapped_column(String(64))
    scheduled_interval: Mapped[str | None] = mapped_column(String(16))
    # The catalog version it was scheduled under: its price is the one the customer was shown
    scheduled_catalog_version: Mapped[int | None] = mapped_column(Integer)
    provider: Mapped[str] = mapped_column(String(16), default="manual")  # manual | stripe
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    # `created` of the newest Stripe event applied, so an older event never regresses state.
    stripe_state_at: Mapped[int | None] = mapped_column(BigInteger)
    # Manual billing: a promotion still discounting renewals (billing.provider.RunningDiscount).
    running_discount: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    account: Mapped[Account] = relationship(back_populates="subscription")


class AccountAddOn(Base):
    """An add-on the account bought (recurring: active until removed; one-time: a record)."""

    __tablename__ = "account_addons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    addon_id: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    stripe_subscription_item_id: Mapped[str | None] = mapped_column(String(64))
    purchased_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The catalog version its price comes from: the one it was bought at, kept across plan
    # changes that keep its price (None: the subscription's, for rows from before 0004).
    catalog_version: Mapped[int | None] = mapped_column(Integer)


class OverrideKind(StrEnum):
    LIMIT = "limit"  # a custom limit for one metered feature
    FEATURE = "feature"  # an extra boolean feature
    TRIAL_EXTENSION = "trial_extension"  # days added to the trial


class Override(Base):
    """A per-account exception set by the product team, with a reason and optional expiry."""

    __tablename__ = "overrides"
    # Ids are shown to API callers, who remove an override by its id: SQLite never gives the
    # id of a removed override to a new one (PostgreSQL's sequences never do).
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    kind: Mapped[OverrideKind] = mapped_column(_enum(OverrideKind))
    feature_id: Mapped[str | None] = mapped_column(String(64))
    limit: Mapped[int | None] = mapped_column(BigInteger)  # None with kind=limit: unlimited
    days: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UsageCounter(Base):
    """Units used of one metered feature in one period (gauges use one never-resetting period).

    Check-and-consume is one atomic INSERT ... ON CONFLICT DO UPDATE ... WHERE used + n <= limit.
    """

    __tablename__ = "usage_counters"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    feature_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    used: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UsageRequest(Base):
    """An idempotent usage request: a retry with the same key returns the first answer."""

    __tablename__ = "usage_requests"
    __table_args__ = (UniqueConstraint("account_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))  # same key, other request: 409
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiKey(Base):
    """A server-to-server key: shown once, stored as a SHA-256 hash, looked up by prefix."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[str] = mapped_column(String(200))  # space separated: gate accounts admin
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OfferTrigger(StrEnum):
    LIMIT_REACHED = "limit_reached"
    NUDGE = "nudge"
    POST_PURCHASE = "post_purchase"
    PRICING_PAGE = "pricing_page"
    CHECKOUT = "checkout"


class OfferStatus(StrEnum):
    CREATED = "created"
    SHOWN = "shown"
    CLICKED = "clicked"
    DISMISSED = "dismissed"
    ACCEPTED = "accepted"
    PAID = "paid"
    EXPIRED = "expired"
    FAILED = "failed"


class Offer(Base):
    """An upgrade (and optional add-on) quoted to an account; billing acts on its exact amounts."""

    __tablename__ = "offers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # off_...
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    trigger: Mapped[OfferTrigger] = mapped_column(_enum(OfferTrigger))
    feature_id: Mapped[str | None] = mapped_column(String(64), index=True)
    quantity: Mapped[int | None] = mapped_column(BigInteger)
    catalog_version: Mapped[int] = mapped_column(ForeignKey("catalog_versions.version"))
    from_tier_id: Mapped[str | None] = mapped_column(String(64))
    to_tier_id: Mapped[str | None] = mapped_column(String(64))
    from_interval: Mapped[str | None] = mapped_column(String(16))
    interval: Mapped[str | None] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    addon_id: Mapped[str | None] = mapped_column(String(64))
    promotion_id: Mapped[str | None] = mapped_column(String(64))
    contact_sales: Mapped[bool] = mapped_column(Boolean, default=False)
    new_recurring_amount: Mapped[int | None] = mapped_column(BigInteger)
    amount_due_today: Mapped[int | None] = mapped_column(BigInteger)
    next_renewal_amount: Mapped[int | None] = mapped_column(BigInteger)
    proration_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    prompt: Mapped[bool] = mapped_column(Boolean, default=True)  # False during a cooldown
    status: Mapped[OfferStatus] = mapped_column(_enum(OfferStatus), default=OfferStatus.CREATED)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the full quote shown
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)

    events: Mapped[list[OfferEvent]] = relationship(
        back_populates="offer", order_by="OfferEvent.id", lazy="selectin"
    )


class OfferEvent(Base):
    """One step of an offer's funnel: shown, clicked, dismissed, accepted, paid."""

    __tablename__ = "offer_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    offer_id: Mapped[str] = mapped_column(ForeignKey("offers.id"), index=True)
    type: Mapped[OfferStatus] = mapped_column(_enum(OfferStatus))
    amount: Mapped[int | None] = mapped_column(BigInteger)  # paid: the amount charged
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    offer: Mapped[Offer] = relationship(back_populates="events")
