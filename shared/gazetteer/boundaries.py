"""Area files (wards, LSOAs, the council boundary) as GeoJSON, and assigning streets to areas."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from .geo import Projector
from .model import Street

__all__ = ["Area", "assign_areas", "read_areas", "read_boundary", "within_boundary"]

# Ward shapes are simplified: a street just outside every ward goes to the nearest one this close.
NEAREST_AREA_M = 200.0
# A street along the council boundary may lie just outside the (simplified) line: keep it.
BOUNDARY_MARGIN_M = 50.0


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    geometry: BaseGeometry  # WGS84


def _find_key(keys: Sequence[str], prefixes: tuple[str, ...], suffixes: tuple[str, ...]) -> str:
    for k in keys:
        low = k.lower()
        if low.startswith(prefixes) and low.endswith(suffixes):
            return k
    raise ValueError(f"no property like {prefixes[0]}*_{suffixes[0]} among {list(keys)}")


def read_areas(path: Path, kind: str) -> list[Area]:
    """Areas of a FeatureCollection, sorted by code. `kind` ("ward", "lsoa") finds the properties:
    the first named like `<kind>NN_code`/`<kind>NNcd` and `<kind>NN_name`/`<kind>NNnm`."""
    features = json.loads(Path(path).read_text())["features"]
    if not features:
        return []
    keys = list(features[0]["properties"])
    prefixes = (kind, "wd") if kind == "ward" else (kind,)
    code_key = _find_key(keys, prefixes, ("code", "cd"))
    name_key = _find_key(keys, prefixes, ("name", "nm"))
    areas = [
        Area(str(f["properties"][code_key]), str(f["properties"][name_key]), shape(f["geometry"]))
        for f in features
    ]
    return sorted(areas, key=lambda a: a.code)


def read_boundary(path: Path) -> BaseGeometry:
    """The union of every feature of a GeoJSON FeatureCollection (WGS84)."""
    features = json.loads(Path(path).read_text())["features"]
    return shapely.make_valid(shapely.union_all([shape(f["geometry"]) for f in features]))


def within_boundary(streets: Sequence[Street], boundary: BaseGeometry, projector: Projector) -> list[Street]:
    """The streets that reach into the boundary (within BOUNDARY_MARGIN_M of it)."""
    area = projector.to_metric(boundary).buffer(BOUNDARY_MARGIN_M)
    lines = projector.to_metric(np.asarray([s.geometry for s in streets], dtype=object))
    return [s for s, inside in zip(streets, shapely.intersects(area, lines), strict=True) if inside]


def assign_areas(streets: Sequence[Street], areas: Sequence[Area], projector: Projector) -> list[Area | None]:
    """For each street, the area holding most of its length; else the nearest within
    NEAREST_AREA_M; else None."""
    if not streets or not areas:
        return [None] * len(streets)
    lines = projector.to_metric(np.asarray([s.geometry for s in streets], dtype=object))
    polys = projector.to_metric(np.asarray([a.geometry for a in areas], dtype=object))
    tree = shapely.STRtree(polys)
    si, ai = tree.query(lines, predicate="intersects")
    lengths = shapely.length(shapely.intersection(lines[si], polys[ai]))
    best: list[tuple[float, int] | None] = [None] * len(streets)
    for s, a, length in zip(si.tolist(), ai.tolist(), lengths.tolist(), strict=True):
        # Longest share wins; equal shares go to the lower area code (areas are sorted).
        if length > 0 and (best[s] is None or (-length, a) < (-best[s][0], best[s][1])):
            best[s] = (length, a)
    out: list[Area | None] = [areas[b[1]] if b else None for b in best]
    missing = np.asarray([i for i, b in enumerate(best) if b is None], dtype=int)
    if missing.size:
        src, dst = tree.query_nearest(lines[missing], max_distance=NEAREST_AREA_M, all_matches=False)
        for s, a in zip(missing[src].tolist(), dst.tolist(), strict=True):
            out[s] = areas[a]
    return out
