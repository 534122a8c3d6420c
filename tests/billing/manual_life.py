"""Helpers for a plan's long life with manual billing (review_life)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from billing import downgrade, service
from billing.cli import billing_group
from billing.manual import ManualBilling
from billing.models import Invoice
from billing.records import Urls
from gating.models import Account, Subscription
from tests.billing.conftest import add_account, gate_offer
from tests.conftest import DEMO_CATALOG
from tiergate.db import get_db
from tiers import store
from tiers.loader import load_catalog_file

URLS = Urls("http://localhost/ok", "http://localhost/cancel")
MANUAL = ManualBilling()
BASE = DEMO_CATALOG.read_text()


def publish(app: Any, clock: Any, tmp_path: Any, text: str, name: str = "c.yaml") -> int:
    path = tmp_path / name
    path.write_text(text)
    catalog, source = load_catalog_file(path)
    with get_db(app).session() as s:
        return store.publish(
            s, catalog, source=source, author="t", note="", now=clock.now()
        ).version.version


def priced(**changes: str) -> str:
    """The demo catalog with replacements old -> new (first occurrence each)."""
    text = BASE
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def checkout(app: Any, clock: Any, account_id: str, tier: str, interval: str = "month") -> Any:
    db = get_db(app)
    with db.session() as s:
        if s.get(Account, account_id) is None:
            add_account(s, account_id, clock)
    with db.session() as s:
        _, quote, _ = service.checkout_quote(s, clock, account_id, tier, interval, "usd")
    with db.session() as s:
        result = service.checkout(
            s,
            clock,
            MANUAL,
            account_id,
            tier,
            interval,
            "usd",
            expected_amount_due=quote.amount_due,
            urls=URLS,
        )
    assert result.status is service.FlowStatus.DONE, result.message
    return quote


def renew(app: Any) -> Any:
    result = app.test_cli_runner().invoke(billing_group, ["renew"])
    return result


def sub(app: Any, account_id: str) -> Subscription:
    with get_db(app).session() as s:
        row = s.get(Account, account_id).subscription
        s.expunge(row)
        return row


def invoices(app: Any, account_id: str) -> list[Invoice]:
    with get_db(app).session() as s:
        q = select(Invoice).where(Invoice.account_id == account_id).order_by(Invoice.id)
        rows = list(s.scalars(q))
        for r in rows:
            s.expunge(r)
        return rows


def to_period_end(
    app: Any, clock: Any, account_id: str, extra: timedelta = timedelta(minutes=1)
) -> Any:
    clock.set(sub(app, account_id).current_period_end + extra)
    return renew(app)


def buy_addon(app: Any, clock: Any, account_id: str, addon_id: str) -> tuple[int, Any]:
    now = clock.now()
    with get_db(app).session() as s:
        _, due = service.addon_quote(s, clock, account_id, addon_id, now)
    with get_db(app).session() as s:
        result = service.buy_addon(
            s,
            clock,
            MANUAL,
            account_id,
            addon_id,
            proration_date=now,
            expected_amount_due=due,
            urls=URLS,
        )
    assert result.status is service.FlowStatus.DONE, result.message
    return due, result


def remove_addon(app: Any, clock: Any, account_id: str, addon_id: str) -> Any:
    with get_db(app).session() as s:
        return service.remove_addon(s, clock, MANUAL, account_id, addon_id)


def downgrade_to(
    app: Any, clock: Any, account_id: str, tier: str, interval: str | None = None
) -> int:
    """Schedule; returns the renewal amount the page showed (preview.new_recurring_amount)."""
    with get_db(app).session() as s:
        preview = downgrade.downgrade_preview(s, clock, account_id, tier, interval)
    with get_db(app).session() as s:
        result = downgrade.confirm_downgrade(s, clock, MANUAL, account_id, tier, interval)
    assert result.status is service.FlowStatus.DONE, result.message
    return preview.new_recurring_amount


def cancel(app: Any, clock: Any, account_id: str) -> Any:
    with get_db(app).session() as s:
        return downgrade.cancel(s, clock, MANUAL, account_id)


def resume(app: Any, clock: Any, account_id: str) -> Any:
    with get_db(app).session() as s:
        return downgrade.resume(s, clock, MANUAL, account_id)


def to_yearly(app: Any, clock: Any, account_id: str) -> int:
    now = clock.now()
    with get_db(app).session() as s:
        quote, _ = service.yearly_quote(s, clock, account_id, now, MANUAL)
    with get_db(app).session() as s:
        result = service.switch_to_yearly(
            s,
            clock,
            MANUAL,
            account_id,
            proration_date=now,
            expected_amount_due=quote.amount_due,
            urls=URLS,
        )
    assert result.status is service.FlowStatus.DONE, result.message
    return quote.amount_due


def accept_gate_offer(app: Any, clock: Any, account_id: str, feature: str, used: int = 0) -> Any:
    db = get_db(app)
    with db.session() as s:
        offer = gate_offer(s, clock, account_id, feature, used=used, requested=1)
        s.expunge(offer)
    with db.session() as s:
        result = service.accept_offer(s, clock, MANUAL, offer.id, account_id, urls=URLS)
    assert result.status is service.FlowStatus.DONE, result.message
    return offer, result


def migrate(app: Any, *args: str) -> Any:
    from tiers.cli import catalog_group

    return app.test_cli_runner().invoke(catalog_group, ["migrate", *args])
