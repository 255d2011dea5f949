"""When digests go out: the period a daily or weekly digest covers, by the wall clock in Europe/London."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

__all__ = ["LONDON", "WEEKDAYS", "Period", "latest_period"]

LONDON = ZoneInfo("Europe/London")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Period:
    """What one digest covers: changes received in [start, end); `key` names it uniquely."""

    key: str
    start: dt.datetime
    end: dt.datetime


def _at(day: dt.date, hour: int) -> dt.datetime:
    # Local wall-clock time; zoneinfo resolves the clocks going back or forward.
    return dt.datetime.combine(day, dt.time(hour), tzinfo=LONDON)


def latest_period(now: dt.datetime, frequency: str, *, hour: int, weekday: str = "mon") -> Period:
    """The most recent period that has ended by `now` (an aware datetime).

    Daily: from `hour` yesterday to `hour` today (local time, so 23 or 25 hours when the clocks
    change). Weekly: the seven days up to `hour` on the latest `weekday`.
    """
    local = now.astimezone(LONDON)
    end_day = local.date()
    if local < _at(end_day, hour):
        end_day -= dt.timedelta(days=1)
    if frequency == "daily":
        start_day = end_day - dt.timedelta(days=1)
    elif frequency == "weekly":
        end_day -= dt.timedelta(days=(end_day.weekday() - WEEKDAYS.index(weekday)) % 7)
        start_day = end_day - dt.timedelta(days=7)
    else:
        raise ValueError(f"no digest for frequency {frequency!r}")
    end = _at(end_day, hour)
    return Period(
        f"{frequency}:{end_day.isoformat()}", _at(start_day, hour).astimezone(dt.UTC), end.astimezone(dt.UTC)
    )
