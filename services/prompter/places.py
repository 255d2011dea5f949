"""The gazetteer behind matching: wards of streets and metric distances from a point to streets."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import asyncpg
import shapely

from shared.gazetteer import repository
from shared.gazetteer.model import Gazetteer
from shared.gazetteer.snapping import TooFarFromStreet

from .matching import NO_PLACES, Places

__all__ = ["GazetteerPlaces", "load_places"]

log = logging.getLogger(__name__)
# How far a point may be from a street and still be "in" that street's ward (list filter only).
_WARD_SNAP_M = 500.0


class GazetteerPlaces:
    """`matching.Places` over a loaded gazetteer (WGS84 in, metres out)."""

    def __init__(self, gazetteer: Gazetteer) -> None:
        self._gaz = gazetteer
        self._metric = lru_cache(maxsize=50_000)(self._metric_geometry)
        # Every change of a need composes its prompt again, measuring each point opportunity of its
        # category against the same streets: remembered, a change costs a look-up, not a projection
        # and a distance per street (a seventh of the prompter's CPU at 1,000 changes/s before).
        self._distance = lru_cache(maxsize=50_000)(self._distance_m)

    def _metric_geometry(self, street_id: str) -> Any:  # a shapely geometry (no type hints) or None
        street = self._gaz.streets.get(street_id)
        return None if street is None else self._gaz.projector.to_metric(street.geometry)

    def ward_of(self, street_id: str) -> str | None:
        street = self._gaz.streets.get(street_id)
        return street.ward_code if street else None

    def ward_of_point(self, lat: float, lon: float) -> str | None:
        try:
            street_id, _ = self._gaz.snapper.snap_one(lon, lat, _WARD_SNAP_M)
        except TooFarFromStreet:
            return None
        return self.ward_of(street_id)

    def distance_m(self, lat: float, lon: float, street_ids: Sequence[str]) -> float | None:
        return self._distance(lat, lon, tuple(street_ids))

    def _distance_m(self, lat: float, lon: float, street_ids: tuple[str, ...]) -> float | None:
        geometries = [g for g in map(self._metric, street_ids) if g is not None]
        if not geometries:
            return None
        x, y = self._gaz.projector.xy([lon], [lat])
        return float(shapely.distance(shapely.Point(x[0], y[0]), geometries).min())

    def has_street(self, street_id: str) -> bool:
        return street_id in self._gaz.streets

    def ward_names(self) -> dict[str, str]:
        """Ward code -> name, from the boundaries and, failing those, from the streets."""
        names = {s.ward_code: s.ward_name for s in self._gaz.streets.values() if s.ward_code and s.ward_name}
        names.update({w.code: w.name for w in self._gaz.wards})
        return names


async def load_places(conn: asyncpg.Connection) -> Places:
    """The gazetteer from the database, or NO_PLACES (with a warning) where none is imported yet."""
    try:
        gazetteer = await repository.load(conn)
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        log.warning("gazetteer schema missing: matching by listed streets and wards only")
        return NO_PLACES
    if not gazetteer.streets:
        log.warning("gazetteer is empty: matching by listed streets and wards only")
        return NO_PLACES
    return GazetteerPlaces(gazetteer)
