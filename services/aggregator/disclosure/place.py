"""Place categories (rule 2): exact counts per street, small streets merged into place units."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from .policy import DisclosurePolicy

__all__ = ["PlaceArea", "StreetInfo", "place_area", "place_counts"]


@dataclass(frozen=True, slots=True)
class StreetInfo:
    address_count: int
    place_unit_id: str | None = None  # adjoining streets with >= 8 addresses, from the gazetteer


@dataclass(frozen=True, slots=True)
class PlaceArea:
    area_id: str
    area_kind: Literal["street", "unit"]


def place_area(street_id: str, street: StreetInfo, policy: DisclosurePolicy) -> PlaceArea | None:
    """Where one street's place needs are published; None when it has nowhere safe to go."""
    if street.address_count >= policy.min_street_addresses:
        return PlaceArea(street_id, "street")
    if street.place_unit_id is not None:
        return PlaceArea(street.place_unit_id, "unit")
    return None


def place_counts(
    open_counts: Mapping[str, int], streets: Mapping[str, StreetInfo], policy: DisclosurePolicy
) -> dict[PlaceArea, int]:
    """Exact open counts per published place area.

    A place unit that takes in a small street is published as one figure for all its streets,
    the large ones too: publishing a large member street on its own as well would give the small
    streets' count by subtraction. Which units those are follows from the gazetteer alone.
    Streets unknown to the gazetteer, or small with no place unit, are not published.
    """
    merged = {
        s.place_unit_id
        for s in streets.values()
        if s.address_count < policy.min_street_addresses and s.place_unit_id is not None
    }
    totals: Counter[PlaceArea] = Counter()
    for street_id, count in open_counts.items():
        street = streets.get(street_id)
        if street is None:
            continue
        if street.place_unit_id is not None and street.place_unit_id in merged:
            area: PlaceArea | None = PlaceArea(street.place_unit_id, "unit")
        else:
            area = place_area(street_id, street, policy)
        if area is not None:
            totals[area] += count
    return dict(totals)
