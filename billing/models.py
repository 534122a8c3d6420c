"""Webhook events, billing changes (our side of every Stripe write) and local invoices."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import Mapped, mapped_column

from tiergate.db import Base, UTCDateTime


class WebhookEvent(Base):
    """A Stripe event as received; recorded in the same transaction as the change it causes."""

    __tablename__ = "webhook_events"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # evt_...
    type: Mapped[str] = mapped_column(String(100), index=True)
    created: Mapped[int] = mapped_column(BigInteger)  # Stripe's unix timestamp
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


class ChangeStatus(StrEnum):
    PENDING = "pending"  # written before the provider call; reconcile resolves it after a crash
    APPLIED = "applied"
    FAILED = "failed"


class BillingChange(Base):
    """One change we asked the provider for; its id is the idempotency key of the provider call."""

    __tablename__ = "billing_changes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # chg_...
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    offer_id: Mapped[str | None] = mapped_column(ForeignKey("offers.id"))
    kind: Mapped[str] = mapped_column(String(32))  # upgrade | addon | downgrade | cancel | ...
    status: Mapped[ChangeStatus] = mapped_column(
        SAEnum(
            ChangeStatus,
            values_callable=lambda e: [m.value for m in e],
            native_enum=False,
            length=16,
        )
    )
    request: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    amount_due: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Invoice(Base):
    """A local record of what was charged (manual billing's invoices; a mirror of Stripe's)."""

    __tablename__ = "invoices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    provider: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)  # in_...
    change_id: Mapped[str | None] = mapped_column(ForeignKey("billing_changes.id"))
    status: Mapped[str] = mapped_column(String(16))  # draft | open | paid | void | uncollectible
    currency: Mapped[str] = mapped_column(String(3))
    amount_due: Mapped[int] = mapped_column(BigInteger)
    amount_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Notification(Base):
    """A notification to the host app (billing/notifications.py), kept until it is delivered."""

    __tablename__ = "notifications"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # ntf_...
    type: Mapped[str] = mapped_column(String(64))
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class CodeAttempt(Base):
    """A promotion code a customer typed that was refused: tries are limited per account."""

    __tablename__ = "code_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    typed: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
