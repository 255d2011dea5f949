"""Which registered opportunities are "nearby" a need: same category, and an area that covers it.

An opportunity's area is any mix of ward codes, street ids and a point with a radius. It covers a
need when one of the need's streets is listed, lies in a listed ward, or is within the radius of
the point (distance to the street's geometry, from the gazetteer). Pure: the gazetteer is reached
through the small `Places` protocol so tests can pass a fake.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from shared.contracts import Category, OpportunityLink, StreetNeedChanged

__all__ = [
    "MAX_LINKED",
    "NO_PLACES",
    "Area",
    "Opportunity",
    "Places",
    "covers",
    "covers_ward",
    "is_current",
    "nearby",
]

MAX_LINKED = 3  # a prompt links at most this many: a short list gets read, a long one doesn't


class Places(Protocol):
    """What matching needs from the gazetteer."""

    def ward_of(self, street_id: str) -> str | None: ...

    def ward_of_point(self, lat: float, lon: float) -> str | None:
        """The ward of the street nearest the point (None if unknown)."""
        ...

    def distance_m(self, lat: float, lon: float, street_ids: Sequence[str]) -> float | None:
        """Metres from the point to the nearest of the streets (None if none is known)."""
        ...


class _NoPlaces:
    """Used when no gazetteer is loaded: only listed streets and the need's own ward can match."""

    def ward_of(self, street_id: str) -> str | None:
        return None

    def ward_of_point(self, lat: float, lon: float) -> str | None:
        return None

    def distance_m(self, lat: float, lon: float, street_ids: Sequence[str]) -> float | None:
        return None


NO_PLACES: Places = _NoPlaces()


@dataclass(frozen=True, slots=True)
class Area:
    ward_codes: tuple[str, ...] = ()
    street_ids: tuple[str, ...] = ()
    lat: float | None = None
    lon: float | None = None
    radius_m: float | None = None


@dataclass(frozen=True, slots=True)
class Opportunity:
    """A way to help, registered by the council or a VCS partner (the service's internal model)."""

    id: str
    title: str
    organisation: str
    categories: frozenset[Category]
    area: Area
    url: str | None = None
    times: str | None = None
    starts_on: dt.date | None = None
    ends_on: dt.date | None = None
    retired: bool = False
    paused: bool = False
    what: str = ""
    time_needed: str | None = None
    dbs_needed: bool = False
    contact_email: str | None = None
    contact_phone: str | None = None
    organisation_id: str | None = None

    def link(self) -> OpportunityLink:
        return OpportunityLink(
            opportunity_id=self.id,
            title=self.title,
            organisation=self.organisation,
            url=self.url,
            when=self.times,
            kind="local",
            what=self.what[:500] or None,
            time_needed=self.time_needed,
            dbs_needed=self.dbs_needed,
            contact_email=self.contact_email,
            contact_phone=self.contact_phone,
            organisation_id=self.organisation_id,
        )


def is_current(opp: Opportunity, today: dt.date) -> bool:
    """Not retired or paused, already started and not yet ended."""
    return (
        not opp.retired
        and not opp.paused
        and (opp.starts_on is None or opp.starts_on <= today)
        and (opp.ends_on is None or today <= opp.ends_on)
    )


def _closeness(opp: Opportunity, need: StreetNeedChanged, places: Places) -> float | None:
    """How specifically the opportunity covers the need (smaller is closer); None if it doesn't.

    A listed street beats a point within its radius, which beats a whole ward.
    """
    area, streets = opp.area, need.street_ids
    if set(area.street_ids) & set(streets):
        return 0.0
    if area.lat is not None and area.lon is not None and area.radius_m is not None:
        distance = places.distance_m(area.lat, area.lon, streets)
        if distance is not None and distance <= area.radius_m:
            return 1.0 + distance
    wards = set(area.ward_codes)
    if wards and (need.ward_code in wards or any(places.ward_of(s) in wards for s in streets)):
        return 1e9
    return None


def covers(opp: Opportunity, need: StreetNeedChanged, places: Places) -> bool:
    """Whether the opportunity's area covers/intersects the need's streets (ignores category)."""
    return _closeness(opp, need, places) is not None


def covers_ward(opp: Opportunity, ward_code: str, places: Places) -> bool:
    """Whether the opportunity is in (or reaches into) a ward, for the public list's filter."""
    area = opp.area
    if ward_code in area.ward_codes or any(places.ward_of(s) == ward_code for s in area.street_ids):
        return True
    return (
        area.lat is not None
        and area.lon is not None
        and (places.ward_of_point(area.lat, area.lon) == ward_code)
    )


def nearby(
    need: StreetNeedChanged,
    candidates: Iterable[Opportunity],
    places: Places,
    today: dt.date,
    limit: int = MAX_LINKED,
) -> tuple[OpportunityLink, ...]:
    """The opportunities to link to a need: current, same category, covering it; closest first.

    The order is deterministic (closeness, then title, then id) so the same inputs always give the
    same prompt content — the content hash relies on it.
    """
    ranked = []
    for opp in candidates:
        if need.category not in opp.categories or not is_current(opp, today):
            continue
        closeness = _closeness(opp, need, places)
        if closeness is not None:
            ranked.append((closeness, opp.title.casefold(), opp.id, opp))
    ranked.sort(key=lambda r: r[:3])
    return tuple(r[3].link() for r in ranked[:limit])
