"""Resolve what a resident follows (street, streets, ward, radius) to gazetteer streets and units.

Shared by every service that serves residents (feeds, notifier): person prompts match only whole
published units (privacy rule 3), so a radius never makes an ad-hoc area for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import shapely
from shapely.geometry import Point

from shared.privacy import MIN_UNIT_ADDRESSES

from .model import Gazetteer, Street
from .search import Found, StreetFinder

__all__ = ["Areas", "Selection", "UnknownArea"]


class UnknownArea(ValueError):
    """A street id, ward code or point the gazetteer does not know (or an empty area)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


@dataclass(frozen=True)
class Selection:
    """What one feed covers.

    Place prompts match on street ids. Person prompts are only ever published on fixed units (or
    wards), so they match when their unit is one the selection touches: a radius never makes an
    ad-hoc area for them, it picks whole published units. Ward prompts match by ward code.
    """

    kind: str
    label: str
    street_ids: tuple[str, ...]
    unit_ids: tuple[str, ...] = ()
    ward_codes: tuple[str, ...] = ()
    streets: tuple[Street, ...] = field(default=(), compare=False, repr=False)

    def matches(self, *, area_id: str, area_kind: str, street_ids: Iterable[str], sensitivity: str) -> bool:
        if area_kind == "ward":
            return area_id in self.ward_codes
        if sensitivity == "person" and area_id in self.unit_ids:
            return True
        return not set(street_ids).isdisjoint(self.street_ids)


class Areas:
    """Look-ups over one loaded gazetteer."""

    def __init__(self, gazetteer: Gazetteer) -> None:
        self.gazetteer = gazetteer

    @cached_property
    def _ids(self) -> list[str]:
        return sorted(self.gazetteer.streets)

    @cached_property
    def _tree(self) -> shapely.STRtree:
        geoms = np.asarray([self.gazetteer.streets[i].geometry for i in self._ids], dtype=object)
        return shapely.STRtree(self.gazetteer.projector.to_metric(geoms))

    @cached_property
    def wards(self) -> dict[str, str]:
        names = {w.code: w.name for w in self.gazetteer.wards}
        for s in self.gazetteer.streets.values():
            if s.ward_code and s.ward_code not in names:
                names[s.ward_code] = s.ward_name or s.ward_code
        return names

    def street(self, street_id: str) -> Street:
        try:
            return self.gazetteer.streets[street_id]
        except KeyError:
            raise UnknownArea("street_id", f"no street with id {street_id!r}") from None

    def ward_streets(self, ward_code: str) -> list[Street]:
        if ward_code not in self.wards:
            raise UnknownArea("ward_code", f"no ward with code {ward_code!r}")
        return sorted(
            (s for s in self.gazetteer.streets.values() if s.ward_code == ward_code),
            key=lambda s: (s.name, s.id),
        )

    @cached_property
    def finder(self) -> StreetFinder:
        return StreetFinder(self.gazetteer)

    def search(self, q: str, limit: int = 10) -> list[Street]:
        """Streets by name, forgiving typos and abbreviations (see search.StreetFinder)."""
        return self.finder.streets(q, limit=limit)

    def find(self, q: str, limit: int = 20) -> Found:
        """A postcode's streets, candidates for a partial postcode, or streets by name."""
        return self.finder.find(q, limit=limit)

    def label(self, street: Street) -> str:
        return self.finder.label(street)

    def _units(self, streets: Sequence[Street]) -> tuple[str, ...]:
        units: set[str] = set()
        for s in streets:
            try:
                units.add(self.gazetteer.unit_of(s.id, MIN_UNIT_ADDRESSES).id)
            except KeyError:  # a street in no unit: person categories never show there
                continue
        return tuple(sorted(units))

    def _selection(
        self, kind: str, label: str, streets: list[Street], ward_codes: tuple[str, ...] | None = None
    ) -> Selection:
        wards = (
            ward_codes
            if ward_codes is not None
            else tuple(sorted({s.ward_code for s in streets if s.ward_code}))
        )
        return Selection(
            kind, label, tuple(s.id for s in streets), self._units(streets), wards, tuple(streets)
        )

    def for_streets(self, street_ids: list[str]) -> Selection:
        streets = [self.street(i) for i in dict.fromkeys(street_ids)]
        if not streets:
            raise UnknownArea("street_ids", "give at least one street")
        if len(streets) == 1:
            return self._selection("street", streets[0].name, streets)
        label = ", ".join(s.name for s in streets[:3]) + (
            f" and {len(streets) - 3} more" if len(streets) > 3 else ""
        )
        return self._selection("streets", label, streets)

    def for_ward(self, ward_code: str) -> Selection:
        streets = self.ward_streets(ward_code)
        return self._selection("ward", f"{self.wards[ward_code]} ward", streets, (ward_code,))

    def for_all(self, label: str) -> Selection:
        """Everything the gazetteer covers (the council-wide map of needs)."""
        streets = sorted(self.gazetteer.streets.values(), key=lambda s: (s.name, s.id))
        return self._selection("all", label, streets, tuple(sorted(self.wards)))

    def for_circle(self, lat: float, lon: float, radius_m: float) -> Selection:
        """Streets any part of which lies within `radius_m` of the point."""
        if not self.gazetteer.contains(lon, lat):
            raise UnknownArea("lat", "that point is outside the area this service covers")
        x, y = self.gazetteer.projector.xy([lon], [lat])
        circle = Point(float(x[0]), float(y[0])).buffer(radius_m)
        hits = self._tree.query(circle, predicate="intersects")
        streets = sorted((self.gazetteer.streets[self._ids[i]] for i in hits), key=lambda s: (s.name, s.id))
        if not streets:
            raise UnknownArea("radius_m", "no street lies within that distance of the point")
        return self._selection("area", f"Streets within {radius_m:g} m of a point", streets)
