"""Where a place report may be shown (docs/privacy.md rule 2): its street, its place unit, or nowhere.

The same rule as the aggregator's place publication, from the gazetteer alone: a street of at least
MIN_STREET_ADDRESSES addresses is shown as itself unless its place unit takes in a smaller street (then
every member is shown only as the unit, so nothing can be recovered by subtraction); a smaller
street is shown only as its place unit; with no place unit, nowhere.
`tests/unit/ingest/test_ingest_places.py` checks this agrees with the aggregator street by street.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from shapely.geometry.base import BaseGeometry

from shared.gazetteer.model import Gazetteer
from shared.privacy import MIN_STREET_ADDRESSES

__all__ = ["PlaceArea", "place_area"]


@dataclass(frozen=True)
class PlaceArea:
    """A published place area: id, kind, name and a representative point (lon, lat)."""

    area_id: str
    area_kind: str  # "street" or "unit"
    name: str
    point: tuple[float, float] | None


def _point(shape: BaseGeometry | None) -> tuple[float, float] | None:
    if shape is None or shape.is_empty:
        return None
    p = shape.representative_point()
    return (p.x, p.y)


def place_area(gazetteer: Gazetteer, street_id: str) -> PlaceArea | None:
    """The area a place report on `street_id` is shown under, or None (shown without a place)."""
    return _cached(gazetteer, street_id)


@lru_cache(maxsize=20_000)
def _cached(gazetteer: Gazetteer, street_id: str) -> PlaceArea | None:
    street = gazetteer.streets.get(street_id)
    if street is None:
        return None
    try:
        unit = gazetteer.unit_of(street_id, MIN_STREET_ADDRESSES)
    except KeyError:
        unit = None
    merged = unit is not None and any(
        (s := gazetteer.streets.get(m)) is not None and s.address_count < MIN_STREET_ADDRESSES
        for m in unit.street_ids
    )
    if unit is not None and merged:
        shape = gazetteer.area_shape("unit", unit.id, unit.street_ids)
        return PlaceArea(unit.id, "unit", unit.name, _point(shape))
    if street.address_count >= MIN_STREET_ADDRESSES:
        return PlaceArea(street.id, "street", street.name, _point(street.geometry))
    return None
