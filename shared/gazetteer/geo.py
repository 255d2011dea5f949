"""Projection from WGS84 to a metric CRS chosen from the data: British National Grid in GB, else UTM."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

__all__ = ["Projector", "choose_crs"]

# Great Britain's extent (with a margin); inside it the national grid is more accurate than UTM.
# The rectangle also takes in Ireland and the Calais coast, where the grid is still within ~0.3%.
_GB = (-8.8, 49.8, 2.1, 60.9)


def choose_crs(lon: float, lat: float) -> str:
    """EPSG:27700 for a centroid in Great Britain, otherwise the WGS84 UTM zone containing it."""
    west, south, east, north = _GB
    if west <= lon <= east and south <= lat <= north:
        return "EPSG:27700"
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


class Projector:
    """Vectorised WGS84 <-> metric transforms for points and shapely geometries."""

    def __init__(self, crs: str) -> None:
        self.crs = crs
        self._forward = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        self._inverse = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)

    @classmethod
    def for_geometries(cls, geometries: Sequence[BaseGeometry]) -> Projector:
        """A projector whose CRS suits the centre of `geometries` (WGS84)."""
        if len(geometries) == 0:
            raise ValueError("no geometries to choose a projection for")
        xmin, ymin, xmax, ymax = shapely.total_bounds(np.asarray(geometries, dtype=object))
        return cls(choose_crs((xmin + xmax) / 2, (ymin + ymax) / 2))

    def xy(self, lons: Any, lats: Any) -> tuple[np.ndarray, np.ndarray]:
        x, y = self._forward.transform(np.asarray(lons, dtype=float), np.asarray(lats, dtype=float))
        return np.asarray(x, dtype=float), np.asarray(y, dtype=float)

    def to_metric(self, geometries: Any) -> Any:  # shapely has no type hints: a geometry or an array of them
        """Project a geometry or an array of geometries from WGS84 to the metric CRS."""
        return shapely.transform(geometries, self._forward_coords)

    def to_wgs84(self, geometries: Any) -> Any:
        return shapely.transform(geometries, self._inverse_coords)

    def _forward_coords(self, coords: np.ndarray) -> np.ndarray:
        return np.column_stack(self._forward.transform(coords[:, 0], coords[:, 1]))

    def _inverse_coords(self, coords: np.ndarray) -> np.ndarray:
        return np.column_stack(self._inverse.transform(coords[:, 0], coords[:, 1]))
