"""Usage periods (pure): when a counter's count starts and resets. Gauges never reset."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

from tiers.model import Feature, FeatureKind, ResetPeriod

GAUGE_PERIOD = datetime(1970, 1, 1, tzinfo=UTC)

# The account's stored billing period: (start, end), (start, end, "month" | "year"), or
# (start, end, interval, trial end or None).
BillingAnchor = (
    tuple[datetime, datetime]
    | tuple[datetime, datetime, str]
    | tuple[datetime, datetime, str, datetime | None]
)

# A stored period longer than this is yearly (the shortest year is 365 days).
_YEARLY_AFTER = timedelta(days=62)


def add_months(anchor: datetime, months: int, day: int | None = None) -> datetime:
    """`anchor` moved by whole months, on `day` (default: its own) clamped to the month's end."""
    index = anchor.month - 1 + months
    year, month = anchor.year + index // 12, index % 12 + 1
    day = min(day or anchor.day, calendar.monthrange(year, month)[1])
    return anchor.replace(year=year, month=month, day=day)


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    """The calendar month (UTC) containing `now`."""
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    return start, add_months(start, 1)


def day_bounds(now: datetime) -> tuple[datetime, datetime]:
    """The calendar day (UTC) containing `now`."""
    start = datetime(now.year, now.month, now.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def billing_bounds(now: datetime, anchor: BillingAnchor) -> tuple[datetime, datetime]:
    """The billing period containing `now`: the stored one, or rolled forward by whole intervals
    when it has ended (renewals not recorded yet), clamping day 29-31 anchors like Stripe."""
    start, end = anchor[0], anchor[1]
    if now < end or end <= start:
        return start, end
    interval = anchor[2] if len(anchor) >= 3 else None
    trial_end = anchor[3] if len(anchor) == 4 else None
    if interval is None:
        interval = "year" if end - start > _YEARLY_AFTER else "month"
    months = 12 if interval == "year" else 1
    # As billing renews (billing/quotes.py next_period_end, renewal_quote): a clamped boundary
    # (Jan 31 -> Feb 28, or Feb 28 -> Mar 31) hides the anchor day on one side only, so the
    # later of the two days is the anchor of a regular period; an irregular one (a trial, a
    # switch) makes its end the anchor. A trial is irregular even when its length happens to
    # be a clamped month (30 days from January 29 end on February 28: then the 28th).
    day = max(start.day, end.day)
    if trial_end == end or add_months(start, months, day) != end:
        day = end.day
    # Whole intervals elapsed since the stored end, estimated by months then corrected.
    k = max(0, ((now.year - end.year) * 12 + now.month - end.month) // months - 1)
    while True:
        period_start = add_months(end, k * months, day)
        period_end = add_months(end, (k + 1) * months, day)
        if now < period_start:
            k -= 1
        elif now >= period_end:
            k += 1
        else:
            return period_start, period_end


def current_period(
    feature: Feature, now: datetime, billing_anchor: BillingAnchor | None
) -> tuple[datetime, datetime | None]:
    """(start, end) of the period a feature's usage counts in now; gauges: (GAUGE_PERIOD, None).

    The end is when the count resets (`resets_at`). Billing-period counters of accounts without
    a subscription (`billing_anchor` None) use the calendar month.
    """
    if feature.kind is not FeatureKind.COUNTER:
        return GAUGE_PERIOD, None
    if feature.resets is ResetPeriod.DAY:
        return day_bounds(now)
    if feature.resets is ResetPeriod.BILLING_PERIOD and billing_anchor is not None:
        return billing_bounds(now, billing_anchor)
    return month_bounds(now)
