"""Calendar arithmetic for billing periods (UTC), the way Stripe anchors them.

Period ``k`` of a subscription starts at ``boundary(anchor, interval, count, k)``. Monthly and
yearly periods keep the anchor's day of month and clamp it to the month's length, computed from
the anchor each time (anchor Jan 31 -> Feb 28 -> Mar 31), so periods never drift.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

DAY = 86_400


def add_months(ts: int, months: int) -> int:
    dt = datetime.fromtimestamp(ts, UTC)
    y, m = divmod(dt.month - 1 + months, 12)
    year, month = dt.year + y, m + 1
    day = min(dt.day, calendar.monthrange(year, month)[1])
    return int(dt.replace(year=year, month=month, day=day).timestamp())


def boundary(anchor: int, interval: str, count: int, k: int) -> int:
    """Start of period ``k`` (period 0 starts at the anchor)."""
    if interval == "day":
        return anchor + k * count * DAY
    if interval == "week":
        return anchor + k * count * 7 * DAY
    if interval == "month":
        return add_months(anchor, k * count)
    if interval == "year":
        return add_months(anchor, k * count * 12)
    raise ValueError(f"unknown interval {interval!r}")


def fmt_date(ts: int) -> str:
    """``15 Nov 2026`` as on Stripe's proration line descriptions."""
    dt = datetime.fromtimestamp(ts, UTC)
    return f"{dt.day} {dt.strftime('%b %Y')}"
