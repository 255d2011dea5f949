"""Where an area is: GeoJSON geometry and bounding box of a street, unit or ward from the gazetteer."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import asyncpg
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from shared.gazetteer import repository
from shared.gazetteer.model import Gazetteer

__all__ = ["AreaGeometry", "load_gazetteer"]

log = logging.getLogger(__name__)
_PRECISION = 6  # decimal places: ~0.1 m, as RFC 7946 §11.2 suggests no more is useful


class AreaGeometry:
    """Looks up area shapes in a gazetteer (WGS84, x = longitude, y = latitude).

    Without a gazetteer, or for an area it does not know, there is no geometry: GeoJSON features
    then carry `"geometry": null` (allowed by RFC 7946 §3.2) and the area never matches a bbox.
    """

    def __init__(self, gazetteer: Gazetteer | None = None) -> None:
        self.gazetteer = gazetteer
        # Each change of a need stores its area's box, and an area's streets rarely change: the
        # union of its streets' lines was a fifth of the service's CPU at 1,000 changes/s.
        self._bbox = lru_cache(maxsize=20_000)(self._bounds)

    def shape(self, area_id: str, area_kind: str, street_ids: Iterable[str]) -> BaseGeometry | None:
        if self.gazetteer is None:
            return None
        return self.gazetteer.area_shape(area_kind, area_id, street_ids)

    def geojson(self, area_id: str, area_kind: str, street_ids: Iterable[str]) -> dict[str, Any] | None:
        shape = self.shape(area_id, area_kind, street_ids)
        if shape is None or shape.is_empty:
            return None
        geo = mapping(shape)
        if geo["type"] == "GeometryCollection":  # a ward may be stored that way; keep it simple
            return {
                "type": geo["type"],
                "geometries": [
                    {"type": g["type"], "coordinates": _rounded(g["coordinates"])} for g in geo["geometries"]
                ],
            }
        return {"type": geo["type"], "coordinates": _rounded(geo["coordinates"])}

    def bbox(self, area_id: str, area_kind: str, street_ids: Iterable[str]) -> tuple[float, ...] | None:
        """(min_lon, min_lat, max_lon, max_lat), or None when the area has no geometry."""
        return self._bbox(area_id, area_kind, tuple(street_ids))

    def _bounds(self, area_id: str, area_kind: str, street_ids: tuple[str, ...]) -> tuple[float, ...] | None:
        shape = self.shape(area_id, area_kind, street_ids)
        if shape is None or shape.is_empty:
            return None
        return tuple(float(v) for v in shape.bounds)


def _rounded(coords: Any) -> Any:
    if isinstance(coords, (int, float)):
        return round(float(coords), _PRECISION)
    return [_rounded(c) for c in coords]


async def load_gazetteer(conn: asyncpg.Connection) -> Gazetteer | None:
    """The persisted gazetteer, or None (logged) where its schema has not been migrated yet."""
    try:
        return await repository.load(conn)
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        log.warning("no gazetteer in this database: GeoJSON geometry will be null, bbox matches nothing")
        return None
