"""Calendar-month release periods (`YYYY-MM`) and when each may be released."""

from __future__ import annotations

import datetime as dt
import re

__all__ = ["ReleaseNotDue", "parse_period", "period_end", "release_due"]

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class ReleaseNotDue(ValueError):
    """A person release was asked for a month that has not ended (plus the release delay)."""


def parse_period(period: str) -> tuple[int, int]:
    """(year, month) of a `YYYY-MM` period; ValueError otherwise."""
    match = _PERIOD.match(period)
    if match is None:
        raise ValueError(f"period must be YYYY-MM, got {period!r}")
    return int(match[1]), int(match[2])


def period_end(period: str) -> dt.datetime:
    """The first instant (UTC) after the period's month."""
    year, month = parse_period(period)
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return dt.datetime(year, month, 1, tzinfo=dt.UTC)


def release_due(period: str, now: dt.datetime, delay_days: int = 0) -> dt.datetime:
    """When the period may be released; raises ReleaseNotDue if that is after `now`."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    due = period_end(period) + dt.timedelta(days=delay_days)
    if now < due:
        raise ReleaseNotDue(f"{period} may be released from {due.isoformat()}, not before")
    return due
