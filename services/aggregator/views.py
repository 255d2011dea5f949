"""The publishable view (pure): place counts per area, person bands per release, and what changed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.contracts import CATALOGUE, Band, Category, Sensitivity, StreetNeedChanged, Trend

from .areas import Area, Areas
from .disclosure import QuarterResult, ReleaseResult, period_start, trend
from .state import PlaceStats

__all__ = [
    "Change",
    "NeedKey",
    "NeedView",
    "PlaceTotals",
    "Previous",
    "diff",
    "is_ward_trend",
    "person_views",
    "place_views",
    "place_withheld",
    "views_of_totals",
    "ward_trend_views",
]

NeedKey = tuple[str, str]  # (area_id, category)
LIVE = "live"
_SENSITIVITY: dict[str, Sensitivity] = {c: i.sensitivity for c, i in CATALOGUE.items()}  # StrEnum keys: str


@dataclass(frozen=True, slots=True)
class NeedView:
    """What may be shown for one area and category, without version or publication time."""

    area: Area
    category: str
    band: Band | None = None
    count: int | None = None
    trend: Trend | None = None
    period: str = LIVE

    @property
    def key(self) -> NeedKey:
        return (self.area.area_id, self.category)

    @property
    def sensitivity(self) -> Sensitivity:
        return _SENSITIVITY[self.category]

    def content(self) -> dict[str, Any]:
        """The comparable public content: a change here, and only here, is published."""
        a = self.area
        return {
            "area_id": a.area_id,
            "area_kind": a.area_kind,
            "area_name": a.name,
            "ward_code": a.ward_code,
            "street_ids": list(a.street_ids),
            "category": self.category,
            "band": self.band,
            "count": self.count,
            "trend": self.trend,
        }


@dataclass(frozen=True, slots=True)
class Previous:
    """The last published state of a key."""

    content: Mapping[str, Any]
    version: int
    since: dt.date
    live: bool


@dataclass(frozen=True, slots=True)
class Change:
    key: NeedKey
    view: NeedView | None  # None: a tombstone
    version: int
    since: dt.date
    message: StreetNeedChanged | None


PlaceTotals = Sequence[int]  # an area's (open, this_window, last_window) in one category


def place_views(
    stats: PlaceStats, areas: Areas, area_ids: Iterable[str] | None = None
) -> dict[NeedKey, NeedView]:
    """Exact open counts and trends per place area (rule 2); areas with no open report are absent.

    Each street counts in `areas.place_area_of`, the one area `place_counts` publishes it in
    (a small street's whole place unit, the large streets of that unit included).
    """
    wanted = set(area_ids) if area_ids is not None else None
    totals: dict[NeedKey, list[int]] = {}
    for i, counts in enumerate((stats.open, stats.this_window, stats.last_window)):
        for (street_id, category), n in counts.items():
            area = areas.place_area_of.get(street_id)
            if area is not None and (wanted is None or area.area_id in wanted):
                totals.setdefault((area.area_id, category), [0, 0, 0])[i] += n
    return views_of_totals(totals, areas)


def views_of_totals(totals: Mapping[NeedKey, PlaceTotals], areas: Areas) -> dict[NeedKey, NeedView]:
    """`place_views` of counts already summed per area (as a batch reads its areas' kept counts)."""
    views = {}
    for key, (n, this, last) in totals.items():
        if n > 0 and (area := areas.area(key[0])) is not None:
            views[key] = NeedView(area, key[1], count=n, trend=trend(this, last))
    return views


def place_withheld(stats: PlaceStats, areas: Areas) -> dict[NeedKey, str]:
    """Streets with open reports that have nowhere safe to be published, and why (rule 8)."""
    out = {}
    for (street_id, category), n in stats.open.items():
        if n > 0 and street_id not in areas.place_area_of:
            out[(street_id, category)] = (
                "unknown_street" if street_id not in areas.streets else "street_too_small_no_place_unit"
            )
    return out


def person_views(release: ReleaseResult, areas: Areas) -> dict[NeedKey, NeedView]:
    """Bands of one monthly release (rules 3-5); trends for person categories are ward-level only."""
    views = {}
    for cell in release.published:
        area = areas.area(cell.unit_id)
        if area is not None:
            views[(cell.unit_id, cell.category)] = NeedView(
                area, cell.category, band=cell.band, period=release.period
            )
    return views


def ward_trend_views(result: QuarterResult, areas: Areas) -> dict[NeedKey, NeedView]:
    """A quarter's ward trends (rule 5): a direction only, no band and no count, keyed by ward code."""
    views = {}
    for t in result.trends:
        area = areas.wards.get(t.ward_code)
        if area is not None:
            views[(t.ward_code, t.category)] = NeedView(
                area, t.category, trend=t.trend, period=result.quarter
            )
    return views


def is_ward_trend(key: NeedKey, previous: Previous) -> bool:
    """Whether a published person key is a ward trend (keyed by the ward's own code), not a band."""
    return previous.content.get("area_kind") == "ward" and previous.content.get("ward_code") == key[0]


def _minute(now: dt.datetime) -> dt.datetime:
    return now.astimezone(dt.UTC).replace(second=0, microsecond=0)


def diff(
    views: Mapping[NeedKey, NeedView],
    previous: Mapping[NeedKey, Previous],
    scope: Iterable[NeedKey],
    now: dt.datetime,
) -> list[Change]:
    """The changes to publish for the keys in `scope`: new or changed views, and tombstones.

    A key is republished only when its public content changes; `since` is the day of that change
    for place needs and the first day of the release's month (or quarter, for ward trends) for
    person needs.
    """
    changes = []
    for key in sorted(set(scope)):
        view, prev = views.get(key), previous.get(key)
        if view is None:
            if prev is not None and prev.live:
                changes.append(Change(key, None, prev.version + 1, prev.since, None))
            continue
        content = view.content()
        if prev is not None and prev.live and dict(prev.content) == content:
            continue
        version = prev.version + 1 if prev else 1
        since = now.astimezone(dt.UTC).date() if view.period == LIVE else period_start(view.period)
        a = view.area
        message = StreetNeedChanged(
            area_id=a.area_id,
            area_kind=a.area_kind,
            area_name=a.name,
            ward_code=a.ward_code,
            street_ids=a.street_ids,
            category=Category(view.category),
            sensitivity=view.sensitivity,
            band=view.band,
            count=view.count,
            trend=view.trend,
            since=since,
            period=view.period,
            published_at=_minute(now),
            version=version,
        )
        changes.append(Change(key, view, version, since, message))
    return changes
