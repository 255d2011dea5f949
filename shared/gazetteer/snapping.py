"""Snap WGS84 points to the nearest gazetteer street, in metres, with a maximum distance."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from .geo import Projector

__all__ = ["DEFAULT_MAX_DISTANCE_M", "Snapper", "TooFarFromStreet"]

DEFAULT_MAX_DISTANCE_M = 150.0


class TooFarFromStreet(ValueError):
    """The point is further than the allowed distance from every street."""

    def __init__(self, distance_m: float, max_distance_m: float) -> None:
        self.distance_m = distance_m
        self.max_distance_m = max_distance_m
        super().__init__(
            f"point is {distance_m:.0f} m from the nearest street (maximum {max_distance_m:.0f} m)"
        )


class Snapper:
    """Nearest-street lookup over streets' geometries (WGS84 in, metric STRtree inside)."""

    def __init__(
        self,
        street_ids: Sequence[str],
        geometries: Sequence[BaseGeometry],
        *,
        projector: Projector | None = None,
        max_distance_m: float = DEFAULT_MAX_DISTANCE_M,
    ) -> None:
        if len(street_ids) != len(geometries) or not street_ids:
            raise ValueError("need one geometry per street, and at least one street")
        self.projector = projector or Projector.for_geometries(geometries)
        self.max_distance_m = max_distance_m
        self._ids = np.asarray(street_ids, dtype=object)
        self._tree = shapely.STRtree(self.projector.to_metric(np.asarray(geometries, dtype=object)))

    def snap_many(
        self, lons, lats, max_distance_m: float | None = None
    ) -> tuple[list[str | None], np.ndarray]:
        """Street id of each point (None beyond the maximum distance) and its distance in metres.

        Distances are always the true distance to the nearest street, also for points too far.
        """
        limit = self.max_distance_m if max_distance_m is None else max_distance_m
        x, y = self.projector.xy(np.atleast_1d(lons), np.atleast_1d(lats))
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise ValueError("coordinates must be finite WGS84 longitudes and latitudes")
        points = shapely.points(x, y)
        ids: list[str | None] = [None] * len(points)
        distances = np.full(len(points), np.nan)
        (src, dst), dist = self._tree.query_nearest(
            points, max_distance=limit, return_distance=True, all_matches=False
        )
        for i, j, d in zip(src.tolist(), dst.tolist(), dist.tolist(), strict=True):
            ids[i], distances[i] = self._ids[j], d
        missed = np.flatnonzero(np.isnan(distances))
        if missed.size:
            # Only the misses pay for an unbounded search, to report how far they really are.
            (src, _), dist = self._tree.query_nearest(points[missed], return_distance=True, all_matches=False)
            distances[missed[src]] = dist
        return ids, distances

    def snap_one(self, lon: float, lat: float, max_distance_m: float | None = None) -> tuple[str, float]:
        """(street id, distance in metres); raises TooFarFromStreet beyond the maximum distance."""
        if not (math.isfinite(lon) and math.isfinite(lat)):
            raise ValueError("coordinates must be finite WGS84 longitudes and latitudes")
        limit = self.max_distance_m if max_distance_m is None else max_distance_m
        ids, distances = self.snap_many([lon], [lat], limit)
        if ids[0] is None:
            raise TooFarFromStreet(float(distances[0]), limit)
        return ids[0], float(distances[0])
