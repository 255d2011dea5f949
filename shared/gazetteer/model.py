"""In-memory gazetteer: streets, publication units, wards, and the lookups services need."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from shared.privacy import MIN_STREET_ADDRESSES

from .geo import Projector, choose_crs
from .names import name_key, plain_name
from .snapping import Snapper

__all__ = ["HULL_BUFFER_M", "Gazetteer", "Street", "Unit", "Ward"]

# Without an imported boundary, the covered area is the streets' hull plus this margin.
HULL_BUFFER_M = 200.0


@dataclass
class Street:
    """A named street: connected OSM ways with the same name (ids `way/<n>`), geometry in WGS84."""

    id: str
    name: str
    norm_name: str
    geometry: BaseGeometry
    segment_ids: tuple[str, ...]
    address_count: int = 0
    ward_code: str | None = None
    ward_name: str | None = None
    lsoa_code: str | None = None


@dataclass(frozen=True)
class Unit:
    """A publication unit: adjoining streets of one ward covering >= min_addresses addresses."""

    id: str
    min_addresses: int
    street_ids: tuple[str, ...]
    ward_code: str | None
    is_ward: bool
    publishable: bool
    address_count: int
    name: str


@dataclass(frozen=True)
class Ward:
    code: str
    name: str
    geometry: BaseGeometry


@dataclass(eq=False)
class Gazetteer:
    """Everything the services look up. Build with `build.build_gazetteer` or `repository.load`."""

    streets: dict[str, Street]
    units: list[Unit] = field(default_factory=list)
    wards: list[Ward] = field(default_factory=list)
    boundary: BaseGeometry | None = None
    # Postcode ("NW1 9LS") -> ids of the streets its addresses are on, most addresses first.
    postcodes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def address_count(self) -> int:
        return sum(s.address_count for s in self.streets.values())

    @cached_property
    def projector(self) -> Projector:
        if not self.streets:
            raise ValueError("the gazetteer has no streets")
        xmin, ymin, xmax, ymax = shapely.total_bounds(
            np.asarray([s.geometry for s in self.streets.values()], dtype=object)
        )
        return Projector(choose_crs((xmin + xmax) / 2, (ymin + ymax) / 2))

    @cached_property
    def snapper(self) -> Snapper:
        ids = sorted(self.streets)
        return Snapper(ids, [self.streets[i].geometry for i in ids], projector=self.projector)

    @cached_property
    def _area(self) -> BaseGeometry:
        if self.boundary is not None:
            area = self.projector.to_metric(self.boundary)
        else:
            lines = self.projector.to_metric(
                np.asarray([s.geometry for s in self.streets.values()], dtype=object)
            )
            area = shapely.convex_hull(shapely.union_all(lines)).buffer(HULL_BUFFER_M)
        shapely.prepare(area)
        return area

    def contains_many(self, lons: Any, lats: Any) -> np.ndarray:
        """Whether each point is inside the imported boundary (or the streets' buffered hull)."""
        x, y = self.projector.xy(np.atleast_1d(lons), np.atleast_1d(lats))
        inside: np.ndarray = shapely.contains_xy(self._area, x, y)
        return inside

    def contains(self, lon: float, lat: float) -> bool:
        return bool(self.contains_many([lon], [lat])[0])

    def search(self, prefix: str, limit: int = 10) -> list[Street]:
        """Streets whose name, or a word of it, starts with `prefix` (case/punctuation-insensitive;
        'st'/'street', 'rd'/'road' and similar abbreviations are interchangeable)."""
        plain, key = plain_name(prefix), name_key(prefix)
        if not plain:
            return []
        ranked = []
        for plain_s, s in self._search_rows:
            names = ((plain_s, plain), (s.norm_name, key))
            if any(n.startswith(p) for n, p in names):
                ranked.append((0, s.norm_name, s.id, s))
            elif any(f" {p}" in f" {n}" for n, p in names):
                ranked.append((1, s.norm_name, s.id, s))
        return [r[3] for r in sorted(ranked, key=lambda r: r[:3])[:limit]]

    @cached_property
    def _search_rows(self) -> list[tuple[str, Street]]:
        return [(plain_name(s.name), s) for s in self.streets.values()]

    def match_address(self, address: str) -> Street | None:
        """The street a free-text postal address names, when exactly one street has that name.

        The longest street name found as whole words wins ("Agar Grove" over "Grove").
        """
        words = name_key(address).split()
        phrases = (" ".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, len(words) + 1))
        found = [p for p in phrases if p in self._by_key]
        if not found:
            return None
        candidates = self._by_key[max(found, key=len)]
        return candidates[0] if len(candidates) == 1 else None

    @cached_property
    def _by_key(self) -> dict[str, list[Street]]:
        out: dict[str, list[Street]] = {}
        for s in self.streets.values():
            out.setdefault(s.norm_name, []).append(s)
        return out

    def area_shape(self, area_kind: str, area_id: str, street_ids: Iterable[str]) -> BaseGeometry | None:
        """WGS84 shape of a published area: a ward's polygon, or the lines of its streets."""
        if area_kind == "ward":
            ward = next((w for w in self.wards if w.code == area_id), None)
            if ward is not None:
                return ward.geometry
        lines = [self.streets[s].geometry for s in street_ids if s in self.streets]
        if not lines:
            return None
        return lines[0] if len(lines) == 1 else shapely.union_all(lines)

    def units_for(self, min_addresses: int) -> list[Unit]:
        return [u for u in self.units if u.min_addresses == min_addresses]

    def unit_of(self, street_id: str, min_addresses: int) -> Unit:
        """The publication unit (at this threshold) that contains the street."""
        return self._unit_index[(street_id, min_addresses)]

    def partition_key(self, street_id: str) -> str:
        """What a street's anonymised signals are partitioned by (`SIGNALS_ANONYMISED`, whose records
        are keyed by street): the id of its place unit (of MIN_STREET_ADDRESSES), or its own id when
        it is in none.

        Every area a street's place needs can be published in is the street or that unit, so all the
        signals of an area share a partition. The aggregator splits partitions between its lanes and
        replicas; partitioned by street, an area's streets fell on every partition, so each lane's
        batch refreshed nearly every area and waited for the other lane's locks on them (measured on
        100k events in process, alternated: 36-48k events/s by unit against 34-41k by street).
        """
        unit = self._unit_index.get((street_id, MIN_STREET_ADDRESSES))
        return unit.id if unit is not None else street_id

    @cached_property
    def _unit_index(self) -> dict[tuple[str, int], Unit]:
        return {(sid, u.min_addresses): u for u in self.units for sid in u.street_ids}
