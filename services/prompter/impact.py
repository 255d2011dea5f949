"""Impact figures from what passed disclosure (pure): needs raised and resolved, offers of help, trends.

The prompter only ever sees `street-needs.v1`, which obeys docs/privacy.md: place categories carry an
exact count of open reports per street (rule 2: only streets with enough addresses), person
categories only a band (rule 4) on a publication unit of at least MIN_UNIT_ADDRESSES addresses
(rule 3), or a ward's quarterly trend (rule 5). These figures keep to the same rules:

* place categories: reports raised and resolved per month, exact (sums of published counts);
* person categories: never a number of people. Only how many published areas were at each band
  word in a month, and how many areas began or stopped being flagged; a ward's trend is "more" or
  "fewer". Any count that reaches a person row is ignored (the property test checks this).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from shared.contracts import Category, Sensitivity, info

__all__ = [
    "BANDS",
    "HistoryRow",
    "PersonMonth",
    "PlaceMonth",
    "Summary",
    "before_after",
    "month_of",
    "summarise",
]

BANDS = ("some", "several", "many")


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One change of a need as consumed (see needs_history); rows are given in the order they happened."""

    prompt_id: str
    category: str
    active: bool
    on_day: dt.date
    count: int | None = None
    band: str | None = None
    trend: str | None = None


@dataclass
class PlaceMonth:
    raised: int = 0  # reports newly counted
    resolved: int = 0  # reports no longer counted


@dataclass
class PersonMonth:
    areas_by_band: dict[str, int] = field(default_factory=dict)  # band word -> published areas
    areas_raised: int = 0  # areas that began to be flagged
    areas_resolved: int = 0  # areas that stopped being flagged
    trend: str | None = None  # a ward's quarterly trend: "up" or "down"


@dataclass
class Summary:
    place: dict[str, dict[dt.date, PlaceMonth]] = field(default_factory=dict)
    person: dict[str, dict[dt.date, PersonMonth]] = field(default_factory=dict)
    open_reports: dict[str, int] = field(default_factory=dict)  # place category -> open now


def month_of(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _is_person(category: str) -> bool:
    return info(Category(category)).sensitivity is Sensitivity.PERSON


def _count_place(cell: PlaceMonth, row: HistoryRow, open_count: dict[str, int]) -> None:
    """Place categories are exact: reports raised and resolved are the change in the open count."""
    before = open_count.get(row.prompt_id, 0)
    now = max(0, row.count or 0) if row.active else 0
    if now > before:
        cell.raised += now - before
    else:
        cell.resolved += before - now
    open_count[row.prompt_id] = now


def summarise(rows: Iterable[HistoryRow]) -> Summary:
    out = Summary()
    open_count: dict[str, int] = {}
    categories: dict[str, str] = {}
    flagged: dict[str, bool] = {}
    band_in_month: dict[tuple[str, str, dt.date], str] = {}
    # An area flagged, cleared and flagged again within a month began (or stopped) once that month:
    # the figures count areas, not transitions, so they never exceed the areas there are.
    raised_in_month: set[tuple[str, str, dt.date]] = set()
    resolved_in_month: set[tuple[str, str, dt.date]] = set()
    for row in rows:
        month = month_of(row.on_day)
        categories[row.prompt_id] = row.category
        if not _is_person(row.category):
            _count_place(
                out.place.setdefault(row.category, {}).setdefault(month, PlaceMonth()), row, open_count
            )
            continue
        # Person categories: band words and area counts only; `row.count` is never read.
        cell = out.person.setdefault(row.category, {}).setdefault(month, PersonMonth())
        if row.active and row.band is None:
            if row.trend in ("up", "down"):
                cell.trend = row.trend
            continue
        was = flagged.get(row.prompt_id, False)
        if row.active and not was:
            raised_in_month.add((row.category, row.prompt_id, month))
        elif not row.active and was:
            resolved_in_month.add((row.category, row.prompt_id, month))
        flagged[row.prompt_id] = row.active
        if row.active and row.band in BANDS:
            band_in_month[(row.category, row.prompt_id, month)] = row.band
    for category, _, month in raised_in_month:
        out.person[category][month].areas_raised += 1
    for category, _, month in resolved_in_month:
        out.person[category][month].areas_resolved += 1
    for (category, _, month), band in band_in_month.items():
        bands = out.person[category][month].areas_by_band
        bands[band] = bands.get(band, 0) + 1
    totals: dict[str, int] = defaultdict(int)
    for prompt_id, n in open_count.items():
        totals[categories[prompt_id]] += n
    out.open_reports = dict(totals)
    return out


def before_after(
    place: dict[str, dict[dt.date, PlaceMonth]], started: dt.date | None, this_month: dt.date
) -> tuple[float | None, float | None]:
    """Average place reports resolved a month before the first prompt's month and from it on."""
    if started is None:
        return None, None
    start = month_of(started)
    months: dict[dt.date, int] = defaultdict(int)
    for cells in place.values():
        for month, cell in cells.items():
            months[month] += cell.resolved
    before = [n for m, n in months.items() if m < start]
    after_months = max(1, _months_between(start, month_of(this_month)) + 1)
    after = sum(n for m, n in months.items() if m >= start)
    return (sum(before) / len(before) if before else None), after / after_months


def _months_between(a: dt.date, b: dt.date) -> int:
    return (b.year - a.year) * 12 + b.month - a.month
