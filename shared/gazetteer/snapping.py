"""Snap WGS84 points to the nearest gazetteer street, in metres, with a maximum distance."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from .geo import Projector

__all__ = ["DEFAULT_MAX_DISTANCE_M", "Snapper", "TooFarFromStreet"]

DEFAULT_MAX_DISTANCE_M = 150.0
CELL_M = 20.0  # grid resolution: smaller cells mean fewer candidates per point but a longer set-up
MAX_CELLS = 1_000_000
CHUNK = 65_536


class TooFarFromStreet(ValueError):
    """The point is further than the allowed distance from every street."""

    def __init__(self, distance_m: float, max_distance_m: float) -> None:
        self.distance_m = distance_m
        self.max_distance_m = max_distance_m
        super().__init__(
            f"point is {distance_m:.0f} m from the nearest street (maximum {max_distance_m:.0f} m)"
        )


class _Segments:
    """Every street as straight segments in metres, with the street each belongs to."""

    def __init__(self, metric: np.ndarray) -> None:
        parts, owner = shapely.get_parts(metric, return_index=True)
        coords, line = shapely.get_coordinates(parts, return_index=True)
        same = line[1:] == line[:-1]  # consecutive vertices of one line form a segment
        self.x0, self.y0 = coords[:-1, 0][same], coords[:-1, 1][same]
        dx, dy = coords[1:, 0][same] - self.x0, coords[1:, 1][same] - self.y0
        self.dx, self.dy = dx, dy
        length2 = dx * dx + dy * dy
        inv_length2 = np.divide(1.0, length2, out=np.zeros_like(length2), where=length2 > 0)
        # A segment's numbers side by side: a point's candidates are gathered in one indexing, a
        # row each, rather than five (the gathers are most of a lookup's time).
        self.rows = np.column_stack([self.x0, self.y0, dx, dy, inv_length2])
        self.street = owner[line[:-1][same]]

    def distance2(self, px: np.ndarray, py: np.ndarray, seg: np.ndarray) -> np.ndarray:
        """Squared distance from each point to its segment (arrays of equal length); the arrays of
        the point coordinates are overwritten."""
        row = self.rows[seg]
        dx, dy = row[:, 2], row[:, 3]
        px -= row[:, 0]
        py -= row[:, 1]
        t = px * dx
        t += py * dy
        t *= row[:, 4]
        np.clip(t, 0.0, 1.0, out=t)
        px -= t * dx
        py -= t * dy
        px *= px
        py *= py
        px += py
        return px


class _Grid:
    """For each square cell of the streets' surroundings, the segments that can be nearest to a
    point in it: those within D + diagonal of the cell centre, where D is the centre's nearest distance
    (a point in the cell is at most half a diagonal from the centre, so any other segment is farther).
    Looking a point up is then a few segment distances in numpy, with no search and no Python loop."""

    def __init__(self, tree: shapely.STRtree, segments: _Segments, margin: float, cell: float) -> None:
        xmin, ymin, xmax, ymax = shapely.total_bounds(tree.geometries)
        width, height = xmax - xmin + 2 * margin, ymax - ymin + 2 * margin
        # Coarser cells for a large extract keep the set-up time and memory bounded.
        cell = max(cell, math.sqrt(width * height / MAX_CELLS))
        self.x0, self.y0, self.cell = xmin - margin, ymin - margin, cell
        self.nx, self.ny = max(1, math.ceil(width / cell)), max(1, math.ceil(height / cell))
        cx = self.x0 + (np.arange(self.nx) + 0.5) * cell
        cy = self.y0 + (np.arange(self.ny) + 0.5) * cell
        gx, gy = np.meshgrid(cx, cy, indexing="ij")  # cell index = ix * ny + iy
        centres = shapely.points(gx.ravel(), gy.ravel())
        _, nearest = tree.query_nearest(centres, return_distance=True, all_matches=False)
        segment_lines = shapely.linestrings(
            np.stack(
                [
                    np.column_stack([segments.x0, segments.y0]),
                    np.column_stack([segments.x0 + segments.dx, segments.y0 + segments.dy]),
                ],
                axis=1,
            )
        )
        reach = nearest + cell * math.sqrt(2.0) + 1e-6
        cells, segs = shapely.STRtree(segment_lines).query(centres, predicate="dwithin", distance=reach)
        order = np.lexsort((segs, cells))  # grouped by cell
        self.candidates = segs[order].astype(np.int32)
        counts = np.bincount(cells, minlength=len(centres))
        self.counts = counts.astype(np.int64)
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)

    def cells(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Cell index of each point, -1 outside the grid."""
        ix = np.floor((x - self.x0) / self.cell).astype(np.int64)
        iy = np.floor((y - self.y0) / self.cell).astype(np.int64)
        inside = (ix >= 0) & (ix < self.nx) & (iy >= 0) & (iy < self.ny)
        return np.where(inside, ix * self.ny + iy, -1)


class Snapper:
    """Nearest-street lookup over streets' geometries (WGS84 in, metres inside).

    Points near the streets go through a precomputed grid of candidate segments (exact, vectorised);
    points beyond it through an STRtree.
    """

    def __init__(
        self,
        street_ids: Sequence[str],
        geometries: Sequence[BaseGeometry],
        *,
        projector: Projector | None = None,
        max_distance_m: float = DEFAULT_MAX_DISTANCE_M,
        cell_m: float = CELL_M,
    ) -> None:
        if len(street_ids) != len(geometries) or not street_ids:
            raise ValueError("need one geometry per street, and at least one street")
        self.projector = projector or Projector.for_geometries(geometries)
        self.max_distance_m = max_distance_m
        self._ids = np.asarray(street_ids, dtype=object)
        metric = self.projector.to_metric(np.asarray(geometries, dtype=object))
        self._tree = shapely.STRtree(metric)
        self._segments = _Segments(metric)
        self._grid = _Grid(self._tree, self._segments, margin=max_distance_m, cell=cell_m)

    def snap_many(
        self, lons: Any, lats: Any, max_distance_m: float | None = None
    ) -> tuple[list[str | None], np.ndarray]:
        """Street id of each point (None beyond the maximum distance) and its distance in metres.

        Distances are always the true distance to the nearest street, also for points too far.
        """
        limit = self.max_distance_m if max_distance_m is None else max_distance_m
        x, y = self.projector.xy(np.atleast_1d(lons), np.atleast_1d(lats))
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise ValueError("coordinates must be finite WGS84 longitudes and latitudes")
        n = len(x)
        street = np.zeros(n, dtype=np.int64)
        distances = np.empty(n)
        grid = self._grid
        cell = grid.cells(x, y)
        near = np.flatnonzero(cell >= 0)
        for i in range(0, near.size, CHUNK):  # chunks bound the (point, candidate) arrays' memory
            part = near[i : i + CHUNK]
            street[part], distances[part] = self._nearest_in_grid(x[part], y[part], cell[part])
        far = np.flatnonzero(cell < 0)
        if far.size:
            (src, dst), dist = self._tree.query_nearest(
                shapely.points(x[far], y[far]), return_distance=True, all_matches=False
            )
            street[far[src]], distances[far[src]] = dst, dist
        ids = self._ids[street]
        ids[distances > limit] = None
        return ids.tolist(), distances

    def _nearest_in_grid(
        self, x: np.ndarray, y: np.ndarray, cell: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        grid, segments = self._grid, self._segments
        counts = grid.counts[cell]
        ends = np.cumsum(counts)
        offsets = ends - counts
        # Each point's candidates, one after another: the k-th of point i is its cell's k-th.
        at = np.repeat(grid.starts[cell] - offsets, counts)
        at += np.arange(ends[-1])
        seg = grid.candidates[at]
        # Squared distances compare as distances do; one square root per point, for the nearest.
        dist2 = segments.distance2(np.repeat(x, counts), np.repeat(y, counts), seg)
        best = np.minimum.reduceat(dist2, offsets)
        point = np.repeat(np.arange(len(x)), counts)
        hits = np.flatnonzero(dist2 == best[point])
        first = hits[np.concatenate([[True], point[hits][1:] != point[hits][:-1]])]
        return segments.street[seg[first]], np.sqrt(best)

    def snap_one(self, lon: float, lat: float, max_distance_m: float | None = None) -> tuple[str, float]:
        """(street id, distance in metres); raises TooFarFromStreet beyond the maximum distance."""
        if not (math.isfinite(lon) and math.isfinite(lat)):
            raise ValueError("coordinates must be finite WGS84 longitudes and latitudes")
        limit = self.max_distance_m if max_distance_m is None else max_distance_m
        ids, distances = self.snap_many([lon], [lat], limit)
        if ids[0] is None:
            raise TooFarFromStreet(float(distances[0]), limit)
        return ids[0], float(distances[0])
