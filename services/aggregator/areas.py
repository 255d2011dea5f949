"""Publication areas from the gazetteer: where each street's needs are published, names, geometry."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import asyncpg
from shapely.geometry.base import BaseGeometry

from shared.contracts import AreaKind

from .disclosure import DisclosurePolicy, StreetInfo, UnitInfo, place_counts

if TYPE_CHECKING:
    from shared.gazetteer.model import Gazetteer, Unit

__all__ = ["Area", "Areas", "load_areas"]

log = logging.getLogger(__name__)
Bounds = tuple[float | None, float | None, float | None, float | None]


@dataclass(frozen=True, slots=True)
class Area:
    area_id: str
    area_kind: AreaKind
    name: str
    ward_code: str | None
    street_ids: tuple[str, ...]


class Areas:
    """Lookups over one gazetteer under one policy; computed once, shared by consumer, releases, API.

    Without a gazetteer (not imported yet) every street is unknown and nothing is published.
    """

    def __init__(self, gazetteer: Gazetteer | None, policy: DisclosurePolicy) -> None:
        self.policy = policy
        self._gaz = gazetteer
        streets = gazetteer.streets if gazetteer else {}
        self.streets: dict[str, StreetInfo] = {}
        place_units: dict[str, list[str]] = {}
        self._areas: dict[str, Area] = {}
        self._bounds: dict[str, Bounds] = {}
        for sid, gstreet in streets.items():
            unit = self._unit(sid, policy.min_street_addresses)
            self.streets[sid] = StreetInfo(gstreet.address_count, unit.id if unit else None)
            if unit is not None:
                place_units.setdefault(unit.id, []).append(sid)
            self._areas[sid] = Area(sid, "street", gstreet.name, gstreet.ward_code, (sid,))
        units = gazetteer.units if gazetteer else []
        for unit in units:
            kind: AreaKind = "ward" if unit.is_ward else "unit"
            self._areas.setdefault(
                unit.id, Area(unit.id, kind, unit.name, unit.ward_code, tuple(unit.street_ids))
            )
        # Wards by code, for quarterly ward trends: named from the gazetteer, covering their streets.
        ward_names = {w.code: w.name for w in gazetteer.wards} if gazetteer else {}
        ward_streets: dict[str, list[str]] = {}
        for sid, gstreet in streets.items():
            if gstreet.ward_code:
                ward_streets.setdefault(gstreet.ward_code, []).append(sid)
                ward_names.setdefault(gstreet.ward_code, gstreet.ward_name or gstreet.ward_code)
        self.wards: dict[str, Area] = {
            code: Area(code, "ward", ward_names[code], code, tuple(sorted(sids)))
            for code, sids in sorted(ward_streets.items())
        }
        for code, ward in self.wards.items():
            self._areas.setdefault(code, ward)
        self.place_area_of: dict[str, Area] = {}
        for sid, street in self.streets.items():
            # Whether a unit is merged depends only on its own members, so each street needs only
            # its unit's members to find where the disclosure rules publish it.
            members = place_units.get(street.place_unit_id or "", [])
            subset = {m: self.streets[m] for m in members} | {sid: street}
            found = list(place_counts({sid: 1}, subset, policy))
            if found:
                self.place_area_of[sid] = self._areas[found[0].area_id]
        self.person_units: dict[str, UnitInfo] = {
            u.id: UnitInfo(u.address_count, u.ward_code or "", u.publishable)
            for u in units
            if u.min_addresses == policy.min_unit_addresses
        }
        if gazetteer is not None and not self.person_units:
            log.warning(
                "the gazetteer has no person units of %d addresses: no person releases",
                policy.min_unit_addresses,
            )

    def _unit(self, street_id: str, min_addresses: int) -> Unit | None:
        try:
            return self._gaz.unit_of(street_id, min_addresses) if self._gaz else None
        except KeyError:
            return None

    def person_unit_of(self, street_id: str) -> str | None:
        unit = self._unit(street_id, self.policy.min_unit_addresses)
        return unit.id if unit else None

    def area(self, area_id: str) -> Area | None:
        return self._areas.get(area_id)

    def areas_of_street(self, street_id: str) -> list[Area]:
        """Every area covering a street: the street itself and the units containing it."""
        return [a for a in self._by_street.get(street_id, ())]

    @cached_property
    def _by_street(self) -> dict[str, list[Area]]:
        out: dict[str, list[Area]] = {}
        for area in self._areas.values():
            for sid in area.street_ids:
                out.setdefault(sid, []).append(area)
        return out

    def geometry(self, area: Area) -> BaseGeometry | None:
        """WGS84 geometry of an area: its streets' lines."""
        if self._gaz is None:
            return None
        return self._gaz.area_shape(area.area_kind, area.area_id, area.street_ids)

    def bounds(self, area: Area) -> Bounds:
        """(min lon, min lat, max lon, max lat) of an area's streets, computed once per area."""
        found = self._bounds.get(area.area_id)
        if found is None:
            geometry = self.geometry(area)
            found = geometry.bounds if geometry is not None else (None, None, None, None)
            self._bounds[area.area_id] = found
        return found

    def ward_codes(self) -> set[str]:
        return {a.ward_code for a in self._areas.values() if a.ward_code}


async def load_areas(conn: asyncpg.Connection, policy: DisclosurePolicy) -> Areas:
    """Areas from the gazetteer stored in the database (empty when none is imported yet)."""
    try:
        from shared.gazetteer.repository import load
    except ImportError:
        log.warning("shared.gazetteer.repository is not available: publishing nothing")
        return Areas(None, policy)
    try:
        gazetteer = await load(conn)
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        log.warning("no gazetteer imported (run `streetneeds gazetteer import`): publishing nothing")
        return Areas(None, policy)
    return Areas(gazetteer if gazetteer.streets else None, policy)
