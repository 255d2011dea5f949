"""The gazetteer as small GeoJSON for maps: simplified streets, ward boundaries and the council boundary.

This is the default, offline basemap (no tile server needed). Coordinates are rounded to 5 decimal
places (about 1 m) and lines simplified by a few metres, which keeps Camden's streets well under 1 MB.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np
import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from .model import Gazetteer, Street

__all__ = [
    "collection",
    "dumps",
    "feature",
    "shape_json",
    "street_feature",
    "streets_collection",
    "wards_collection",
]

# Simplification tolerances in degrees (~2 m and ~5 m at London's latitude).
STREET_TOLERANCE = 0.00002
AREA_TOLERANCE = 0.00005


def shape_json(geometry: BaseGeometry, tolerance: float = STREET_TOLERANCE) -> dict[str, Any]:
    """A GeoJSON geometry, simplified and rounded to ~1 m."""
    simple = shapely.simplify(geometry, tolerance, preserve_topology=True)
    shape: dict[str, Any] = mapping(shapely.transform(simple, lambda c: np.round(c, 5)))
    return shape


def feature(
    geometry: BaseGeometry, properties: dict[str, Any], tolerance: float = STREET_TOLERANCE
) -> dict[str, Any]:
    return {"type": "Feature", "geometry": shape_json(geometry, tolerance), "properties": properties}


def collection(features: Iterable[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features), **extra}


def street_feature(street: Street, **extra: Any) -> dict[str, Any]:
    return feature(street.geometry, {"id": street.id, "name": street.name, "ward": street.ward_name, **extra})


def streets_collection(gazetteer: Gazetteer) -> dict[str, Any]:
    """Every street: id, name and ward (a click opens its page)."""
    streets = sorted(gazetteer.streets.values(), key=lambda s: s.id)
    return collection(street_feature(s) for s in streets)


def wards_collection(gazetteer: Gazetteer) -> dict[str, Any]:
    """Ward boundaries (`kind: ward`) and the council boundary (`kind: boundary`), if imported."""
    features = [
        feature(w.geometry, {"kind": "ward", "code": w.code, "name": w.name}, AREA_TOLERANCE)
        for w in sorted(gazetteer.wards, key=lambda w: w.code)
    ]
    if gazetteer.boundary is not None:
        features.append(feature(gazetteer.boundary, {"kind": "boundary"}, AREA_TOLERANCE))
    return collection(features)


def dumps(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
